package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// The start-up self-check. gnet offers no list of its loops, but
// Engine.Register places connections round-robin starting at loop 0, so the
// engine registers one loopback "probe" connection per loop. Each probe
// introduces its loop to the engine (inspectLoop checks the private shapes)
// and then proves the read pause on that very loop:
//
//  1. on open, the probe's fd is paused (removed from gnet's epoll);
//  2. the peer writes a byte, and the prober waits until the kernel shows it
//     queued on the probe socket (SIOCINQ > 0), so the fd is readable;
//  3. a task posted to the loop checks that no OnTraffic ran. gnet handles a
//     poll batch's I/O before its tasks, so had the fd still been in the set,
//     OnTraffic would have run first;
//  4. the task resumes the fd, and the byte must then arrive.
//
// Any failure refuses start-up.

// warmup is a connection the engine makes to its own first listener right
// after gnet boots. gnet calls OnBoot before it has registered its loops, and
// Register fails until then; an accepted connection proves the loops exist
// (they are all registered before any starts), with a happens-before edge
// through the channel.
type warmup struct {
	from string
	seen chan struct{}
	once sync.Once
}

func (e *Engine) awaitLoops() error {
	host, port, _ := net.SplitHostPort(e.boot)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	w := &warmup{seen: make(chan struct{})}
	// Bind first, so the engine knows the source address before gnet can
	// accept the connection.
	var laddr net.TCPAddr
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		laddr.IP = net.IPv6loopback
	} else {
		laddr.IP = net.IPv4(127, 0, 0, 1)
	}
	lc, err := net.ListenTCP("tcp", &laddr) // only to learn a free source port
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	laddr.Port = lc.Addr().(*net.TCPAddr).Port
	lc.Close()
	w.from = laddr.String()
	e.warmup.Store(w)
	defer e.warmup.Store(nil)
	d := net.Dialer{Timeout: probeTimeout, LocalAddr: &laddr}
	nc, err := d.Dial("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return fmt.Errorf("warm-up connection to own listener: %w", err)
	}
	defer nc.Close()
	select {
	case <-w.seen:
		return nil
	case <-time.After(probeTimeout):
		return errors.New("warm-up connection never reached a loop")
	}
}

type probe struct {
	idx     int
	gc      gnet.Conn
	l       *Loop
	opened  chan error
	traffic chan struct{}
	closed  chan struct{}
	seen    bool // loop-owned: OnTraffic ran
}

const probeTimeout = 5 * time.Second

func (e *Engine) probeLoops() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("probe listener: %w", err)
	}
	defer ln.Close()
	var loops []*Loop
	for i := 0; i < e.cfg.Loops; i++ {
		l, err := e.probeOne(ln, i)
		if err != nil {
			return fmt.Errorf("loop %d: %w", i, err)
		}
		loops = append(loops, l)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.byGnet) != e.cfg.Loops {
		return fmt.Errorf("found %d gnet loops, want %d", len(e.byGnet), e.cfg.Loops)
	}
	seen := map[*Loop]bool{}
	for i, l := range loops {
		if seen[l] {
			return errors.New("gnet did not place the probes round-robin on distinct loops")
		}
		seen[l] = true
		l.idx = i
	}
	e.loops = loops
	return nil
}

func (e *Engine) probeOne(ln net.Listener, i int) (*Loop, error) {
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	b, err := ln.Accept()
	if err != nil {
		a.Close()
		return nil, err
	}
	defer b.Close()
	p := &probe{idx: i, opened: make(chan error, 1), traffic: make(chan struct{}, 1), closed: make(chan struct{})}
	ctx := gnet.NewNetConnContext(gnet.NewContext(context.Background(), p), a)
	ch, err := e.geng.Register(ctx)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("register probe: %w", err)
	}
	timeout := time.After(probeTimeout)
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, fmt.Errorf("register probe: %w", res.Err)
		}
	case <-timeout:
		return nil, errors.New("probe registration timed out")
	}
	select {
	case err := <-p.opened:
		if err != nil {
			return nil, err
		}
	case <-timeout:
		return nil, errors.New("probe open timed out")
	}
	if _, err := b.Write([]byte{'p'}); err != nil {
		return nil, err
	}
	for {
		n, err := unix.IoctlGetInt(p.gc.Fd(), unix.SIOCINQ)
		if err != nil {
			return nil, fmt.Errorf("SIOCINQ on probe: %w", err)
		}
		if n > 0 {
			break
		}
		select {
		case <-timeout:
			return nil, errors.New("probe byte never reached the socket")
		case <-time.After(time.Millisecond):
		}
	}
	verdict := make(chan error, 1)
	if err := p.l.Post(func() {
		if p.seen {
			verdict <- errors.New("read pause failed: OnTraffic ran while the fd was out of the epoll set")
			return
		}
		if err := p.l.poller.AddRead(pollAttachment(p.gc.Fd()), false); err != nil {
			verdict <- fmt.Errorf("resume: %w", err)
			return
		}
		verdict <- nil
	}); err != nil {
		return nil, err
	}
	select {
	case err := <-verdict:
		if err != nil {
			return nil, err
		}
	case <-timeout:
		return nil, errors.New("probe check timed out")
	}
	select {
	case <-p.traffic:
	case <-timeout:
		return nil, errors.New("read resume failed: byte not delivered after re-adding the fd")
	}
	b.Close()
	select {
	case <-p.closed:
	case <-timeout:
		return nil, errors.New("probe close timed out")
	}
	return p.l, nil
}

func (e *Engine) probeOpened(gc gnet.Conn, p *probe) gnet.Action {
	l, err := e.loopFor(gc)
	if err != nil {
		p.opened <- err
		return gnet.Close
	}
	p.gc, p.l = gc, l
	if err := l.poller.Delete(gc.Fd()); err != nil {
		p.opened <- fmt.Errorf("pause: %w", err)
		return gnet.Close
	}
	p.opened <- nil
	return gnet.None
}

func (e *Engine) probeTraffic(gc gnet.Conn, p *probe) gnet.Action {
	_, _ = gc.Discard(-1)
	if !p.seen {
		p.seen = true
		p.traffic <- struct{}{}
	}
	return gnet.None
}

func (e *Engine) probeClosed(p *probe, _ error) { close(p.closed) }
