package engine

import "github.com/panjf2000/gnet/v2/pkg/netpoll"

// gnet gap: no read pause. gnet reads every readable socket and keeps what
// OnTraffic leaves in an unbounded ring, so a slow consumer on one side makes
// memory grow without limit (measured: a 200 MiB sender grew RSS by 1.09 GiB
// in 3 s). The engine pauses a connection by removing its fd from the loop's
// epoll set (gnet's Poller.Delete) and resumes it by adding it back for
// reading (Poller.AddRead). The kernel receive window then pushes back on
// the sender.
//
// Why this is safe with gnet v2.9.7 in its default build: gnet finds the
// connection for an epoll event by the fd in the event data, registers
// connections level-triggered for EPOLLIN only, and touches the registration
// again only from its own write path (ModRead/ModReadWrite), which the engine
// never uses: all output goes through the engine's own buffer (gap_output.go).
// gnetpriv.go checks the shape at start-up and probe.go runs a live pause test
// on every loop before the engine accepts work.

func (c *Conn) unregisterRead() {
	if !c.readRegistered || c.gc == nil {
		return
	}
	if err := c.l.poller.Delete(c.fd); err == nil {
		c.readRegistered = false
	}
}

func (c *Conn) registerRead() {
	if c.readRegistered || c.gc == nil {
		return
	}
	if err := c.l.poller.AddRead(pollAttachment(c.fd), false); err == nil {
		c.readRegistered = true
	}
}

func pollAttachment(fd int) *netpoll.PollAttachment { return &netpoll.PollAttachment{FD: fd} }
