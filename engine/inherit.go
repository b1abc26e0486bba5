package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// gnet gap: no way to serve a listening socket it did not create. A restart
// (or systemd socket activation) hands this process sockets that another
// process may still accept on; the engine accepts on them itself, one
// goroutine per socket on Go's poller, and gives each connection to a loop
// with gnet's Enroll, as Dial does. gnet still needs a listener to boot its
// loops: when every listener is inherited it gets a private loopback one
// that the warm-up dials and that serves nobody.
//
// Sharing is the point: the predecessor and this process accept from one
// kernel queue, so while both run and after the predecessor stops polling,
// no connection is refused or reset. Stopping here closes this process's
// fds only (no shutdown(SHUT_RD), which would break the socket for the
// other holders).

// adopted is one inherited listening socket; also the gnet context of the
// connections accepted on it.
type adopted struct {
	ln   *Listener
	tcp  *net.TCPListener
	once sync.Once
}

// adopt takes listener i's inherited fds and returns its address and port.
func (e *Engine) adopt(i int) (string, int, error) {
	ln := &e.cfg.Listeners[i]
	addr, port := "", 0
	for _, fd := range ln.Inherited {
		a, err := adoptFD(fd)
		if err != nil {
			return "", 0, err
		}
		a.ln = ln
		e.adopted = append(e.adopted, a)
		ta := a.tcp.Addr().(*net.TCPAddr)
		if addr == "" {
			addr, port = ta.String(), ta.Port
		} else if ta.Port != port {
			return "", 0, fmt.Errorf("inherited sockets on two ports (%s, %s)", addr, ta)
		}
	}
	ln.Inherited = nil // owned now, closed by closeAdopted
	return addr, port, nil
}

func adoptFD(fd int) (*adopted, error) {
	soType, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inherited fd %d: %w", fd, err)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if soType != unix.SOCK_STREAM || err != nil || acc != 1 {
		unix.Close(fd)
		return nil, fmt.Errorf("inherited fd %d is not a listening TCP socket", fd)
	}
	// The file description is shared with the other holders: it must stay
	// non-blocking for them (gnet accepts until EAGAIN).
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inherited fd %d: %w", fd, err)
	}
	f := os.NewFile(uintptr(fd), "inherited-"+strconv.Itoa(fd))
	nl, err := net.FileListener(f) // a duplicate, on Go's poller
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("inherited fd %d: %w", fd, err)
	}
	tl, ok := nl.(*net.TCPListener)
	if !ok {
		nl.Close()
		return nil, fmt.Errorf("inherited fd %d is not TCP", fd)
	}
	return &adopted{tcp: tl}, nil
}

func (e *Engine) startAccepting() {
	for _, a := range e.adopted {
		go e.acceptOn(a)
	}
}

// acceptOn accepts until the socket is closed here and enrolls each
// connection on the loops in turn.
func (e *Engine) acceptOn(a *adopted) {
	loops := e.Loops()
	for n := 0; ; n++ {
		nc, err := a.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: the connection stays queued; retry soon.
			e.log.Warn("accept failed", "listener", a.ln.Name, "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go e.enroll(loops[n%len(loops)], a, nc)
	}
}

// enroll hands an accepted connection to l. Like a dial (dial.go) it holds
// e.enrolls until gnet answers, so Stop never stops a loop with this
// Enroll queued (it would go unanswered and its duplicated fd leak).
func (e *Engine) enroll(l *Loop, a *adopted, nc net.Conn) {
	e.enrolls.RLock()
	defer e.enrolls.RUnlock()
	if e.stopped.Load() {
		nc.Close()
		return
	}
	ch, err := l.gel.Enroll(gnet.NewContext(context.Background(), a), nc) // gnet dups the fd and closes nc
	if err != nil {
		nc.Close()
		e.log.Warn("accepted connection not enrolled", "listener", a.ln.Name, "err", err)
		return
	}
	if res := <-ch; res.Err != nil {
		e.log.Warn("accepted connection not enrolled", "listener", a.ln.Name, "err", res.Err)
	}
}

// closeAdopted stops accepting on the inherited sockets: this process's
// fds only.
func (e *Engine) closeAdopted() {
	for _, a := range e.adopted {
		a.once.Do(func() { _ = a.tcp.Close() })
	}
}

// HandOff says a successor process now shares the listening sockets:
// StopAccepting will then stop polling them and close this process's fds
// without shutting them down.
func (e *Engine) HandOff() { e.handoff.Store(true) }

// ListenerFD is a duplicate of one listening socket, for a successor.
type ListenerFD struct {
	Name string // the listener's name
	FD   int    // close-on-exec; the caller closes it
}

// ListenerFDs duplicates every listening socket the engine accepts on (each
// loop's own under SO_REUSEPORT, and the inherited ones), for handing to a
// successor. Call after Start and before StopAccepting.
func (e *Engine) ListenerFDs() ([]ListenerFD, error) {
	var out []ListenerFD
	fail := func(err error) ([]ListenerFD, error) {
		for _, l := range out {
			unix.Close(l.FD)
		}
		return nil, err
	}
	for _, l := range e.Loops() {
		for _, fd := range l.lnFDs {
			sa, err := unix.Getsockname(fd)
			if err != nil {
				return fail(os.NewSyscallError("getsockname", err))
			}
			port := 0
			switch a := sa.(type) {
			case *unix.SockaddrInet4:
				port = a.Port
			case *unix.SockaddrInet6:
				port = a.Port
			}
			if port == e.bootPort {
				continue
			}
			name := ""
			for i, p := range e.ports {
				if p == port {
					name = e.cfg.Listeners[i].Name
				}
			}
			if name == "" {
				continue
			}
			d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				return fail(os.NewSyscallError("dup", err))
			}
			out = append(out, ListenerFD{Name: name, FD: d})
		}
	}
	for _, a := range e.adopted {
		rc, err := a.tcp.SyscallConn()
		if err != nil {
			return fail(err)
		}
		var d int
		var derr error
		if err := rc.Control(func(fd uintptr) { d, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
			return fail(err)
		}
		if derr != nil {
			return fail(os.NewSyscallError("dup", derr))
		}
		out = append(out, ListenerFD{Name: a.ln.Name, FD: d})
	}
	return out, nil
}

// Successor reports whether a successor process serves this connection's
// listening socket (HandOff): a connection that has carried no request yet
// was opened by a client about to send one, and closing it at the drain
// would fail that request, not move it elsewhere.
func (c *Conn) Successor() bool { return c.l.e.handoff.Load() }
