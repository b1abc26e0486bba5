package engine

import (
	"golang.org/x/sys/unix"
)

// gnet gap: a peer's FIN is treated as a full close. When read(2) returns 0,
// gnet calls OnClose("read: EOF") and closes the fd as soon as OnClose
// returns, although our side may still owe the peer a response (a half-close,
// or a TLS close_notify, which RFC 8446 §6.1 says does not end our sending).
//
// The engine keeps the socket alive by duplicating the fd inside OnClose,
// before gnet closes its copy: the socket lives on through the duplicate,
// owned by the engine ("detached"). Reads are over anyway (the peer sent
// FIN), so a detached connection only writes: through the same output queue,
// with write readiness from the watcher, and the engine closes the duplicate
// itself at the end of the close sequence. Nothing is lost in the switch,
// because gnet's outbound buffer never holds our bytes (gap_output.go).

// detach takes the socket over from gnet. Called from gnet's OnClose.
func (c *Conn) detach() error {
	nfd, err := unix.FcntlInt(uintptr(c.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if c.wRegistered {
		// The watcher's registration belongs to the old fd number, which
		// gnet is about to close while the socket lives on: drop it now.
		c.l.w.forget(c.fd)
		c.wRegistered = false
	}
	c.fd = nfd
	c.gc = nil
	c.readRegistered = false
	if c.wArmed {
		c.wArmed = false
		c.armWritable()
	}
	c.l.e.met.detached.Inc()
	return nil
}
