package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// oneRequest sends one request on a fresh connection and waits for its
// response; the connection stays open (close it with the returned func).
func oneRequest(o *Options, nc net.Conn, t *tally, start time.Time) (closer func(), ok bool) {
	if o.H2 {
		h := newH2Conn(o, nc, t)
		if !h.waitSlot(1) || !h.open(start, o.h2Fields(), make([]byte, o.Body)) {
			h.mu.Lock()
			h.die(errLost)
			h.mu.Unlock()
			t.fail(errLost)
			return func() {}, false
		}
		h.mu.Lock()
		for !h.dead && len(h.streams) > 0 {
			h.cond.Wait()
		}
		ok = !h.dead
		h.mu.Unlock()
		return func() { h.mu.Lock(); h.closing = true; h.die(""); h.mu.Unlock() }, ok
	}
	h := newH1Conn(nc, o.Method == "HEAD")
	nc.SetDeadline(time.Now().Add(o.Timeout))
	x := h.roundTrip(o.h1Request(), nil)
	nc.SetDeadline(time.Time{})
	if x.kind != "" {
		t.fail(x.kind)
		nc.Close()
		return func() {}, false
	}
	t.done(x.status, x.body, start, time.Now())
	return func() { nc.Close() }, x.keep
}

// runHold opens o.Conns keep-alive connections, one request each, holds
// them idle for o.Duration and reports the target's RSS per connection.
func runHold(ctx context.Context, o *Options, r *Result, tgt *targetWatch) error {
	d := newDialer(o)
	before, _ := tgt.sample()
	start := time.Now()
	t := newTally()
	var mu sync.Mutex
	type held struct {
		nc    net.Conn
		close func()
	}
	conns := make([]held, 0, o.Conns)
	jobs := make(chan struct{})
	go func() {
		defer close(jobs)
		var tick *time.Ticker
		if o.OpenRate > 0 {
			tick = time.NewTicker(time.Duration(float64(time.Second) / o.OpenRate))
			defer tick.Stop()
		}
		for i := 0; i < o.Conns && ctx.Err() == nil; i++ {
			if tick != nil {
				<-tick.C
			}
			jobs <- struct{}{}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < min(o.Conns, 64); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wt := newTally()
			for range jobs {
				s := time.Now()
				nc, kind := o.connect(ctx, d)
				if kind != "" {
					wt.fail(kind)
					continue
				}
				closer, ok := oneRequest(o, nc, wt, s)
				if !ok {
					closer()
					continue
				}
				live.conns.Add(1)
				mu.Lock()
				conns = append(conns, held{nc, closer})
				mu.Unlock()
			}
			mu.Lock()
			t.merge(wt)
			mu.Unlock()
		}()
	}
	wg.Wait()
	opened := time.Since(start)
	// Let the target settle (freed handshake state, GC) before reading.
	time.Sleep(min(o.Duration/2, time.Second))
	heldRSS, _ := tgt.sample()
	rest := o.Duration - min(o.Duration/2, time.Second)
	select {
	case <-time.After(rest):
	case <-ctx.Done():
	}
	after, _ := tgt.sample()
	// Which connections did the target close while they were idle?
	closed := 0
	for _, c := range conns {
		if o.H2 {
			continue // the h2 reader saw it: counted below
		}
		if peekClosed(c.nc) {
			closed++
		}
	}
	if o.H2 {
		closed = int(int64(len(conns)) - live.conns.Load())
	}
	for _, c := range conns {
		c.close()
	}
	r.fill(t, opened)
	h := &HoldResult{Opened: len(conns), StillOpen: len(conns) - closed, ClosedByTarget: closed,
		OpenSeconds: opened.Seconds(), RSSBeforeBytes: before.RSS, RSSHeldBytes: heldRSS.RSS, RSSEndBytes: after.RSS}
	if len(conns) > 0 {
		h.RSSPerConnBytes = float64(heldRSS.RSS-before.RSS) / float64(len(conns))
	}
	r.Hold = h
	return nil
}

// runHandshake makes a new TLS connection per request, checks that none
// resumed a session, and reports full handshakes per second.
func runHandshake(ctx context.Context, o *Options, r *Result) error {
	d := newDialer(o)
	start := time.Now()
	src := newSource(o, start)
	hard, cancel := context.WithDeadline(ctx, src.deadline.Add(o.Timeout+time.Second))
	defer cancel()
	out := newTally()
	var full, resumed, v13, v12 atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < o.Conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := newTally()
			for {
				s, ok := src.next(hard)
				if !ok {
					break
				}
				nc, kind := o.connect(hard, d)
				if kind != "" {
					t.fail(kind)
					continue
				}
				st := nc.(*tls.Conn).ConnectionState()
				if st.DidResume {
					resumed.Add(1)
					t.fail(errResumed)
					nc.Close()
					continue
				}
				full.Add(1)
				if st.Version == tls.VersionTLS13 {
					v13.Add(1)
				} else {
					v12.Add(1)
				}
				closer, _ := oneRequest(o, nc, t, s)
				closer()
			}
			mu.Lock()
			out.merge(t)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	r.fill(out, el)
	r.Handshake = &HandshakeResult{Full: full.Load(), Resumed: resumed.Load(), TLS13: v13.Load(), TLS12: v12.Load(),
		PerSec: float64(full.Load()) / el.Seconds()}
	return nil
}

// drainSignalAt is when the drain run signalled the target (Unix ns; 0
// when not yet), read by tally.done to count responses after it.
var drainSignalAt atomic.Int64

// runDrain loads the target, sends it SIGTERM, and counts what the drain
// cost the clients.
func runDrain(ctx context.Context, o *Options, r *Result, tgt *targetWatch) error {
	sig := o.Signal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	drainSignalAt.Store(0)
	start := time.Now()
	src := newSource(o, start)
	hard, cancel := context.WithDeadline(ctx, src.deadline.Add(o.Timeout+time.Second))
	defer cancel()
	var signalled atomic.Bool
	var sigAt time.Time
	var sigErr error
	var sigMu sync.Mutex
	ended := false
	stopSig := make(chan struct{})
	go func() {
		wait := o.SignalAfter
		if wait == 0 {
			// One second after every connection is open and busy.
			for live.conns.Load() < int64(o.Conns) && time.Since(start) < o.Duration/2 {
				select {
				case <-stopSig:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			wait = time.Since(start) + time.Second
		}
		select {
		case <-stopSig:
			return
		case <-time.After(time.Until(start.Add(wait))):
		}
		sigMu.Lock()
		defer sigMu.Unlock()
		if ended {
			return
		}
		sigAt = time.Now()
		drainSignalAt.Store(sigAt.UnixNano())
		signalled.Store(true)
		sigErr = sendSignal(o.PID, sig)
	}()
	t := loadWorkers(hard, o, newDialer(o), src, &signalled)
	close(stopSig)
	sigMu.Lock()
	ended = true
	sigMu.Unlock()
	src.stop()
	loadEnd := time.Now()
	// Wait for the exit (sluice's -drain-timeout is 30 s by default).
	deadline := time.Now().Add(60 * time.Second)
	for signalled.Load() && tgt.exitTime().IsZero() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	r.fill(t, loadEnd.Sub(start))
	if sigErr == nil && !signalled.Load() {
		sigErr = errNotSignalled
	}
	dr := &DrainResult{Signalled: signalled.Load(), Lost: t.errs[errLost], Truncated: t.errs[errTruncated],
		TimedOut: t.errs[errTimeout], Unprocessed: t.errs[errUnprocessed], AfterSignal: t.afterSignal}
	if sigErr != nil {
		dr.SignalError = sigErr.Error()
	}
	if ex := tgt.exitTime(); !ex.IsZero() && signalled.Load() {
		dr.Exited = true
		dr.SignalToExitMS = ms(ex.Sub(sigAt))
		if !t.lastResp.IsZero() {
			dr.LastResponseToExitMS = ms(ex.Sub(t.lastResp))
		}
	}
	r.Drain = dr
	return nil
}

var errNotSignalled = errors.New("the load ended before the signal was due")

// runSlowRead has o.Conns clients each GET the URL once and read the body
// at o.ReadRate bytes per second, until it ends or o.Duration runs out.
func runSlowRead(ctx context.Context, o *Options, r *Result) error {
	d := newDialer(o)
	start := time.Now()
	end := start.Add(o.Duration)
	req := o.h1Request()
	out := newTally()
	var read, completed, unfinished atomic.Int64
	ttfb := NewHistogram()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < o.Conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := newTally()
			defer func() { mu.Lock(); out.merge(t); mu.Unlock() }()
			nc, kind := o.connect(ctx, d)
			if kind != "" {
				t.fail(kind)
				return
			}
			live.conns.Add(1)
			defer func() { nc.Close(); live.conns.Add(-1) }()
			h := newH1Conn(nc, false)
			h.buf = h.buf[:min(len(h.buf), max(4096, o.ReadRate/20))]
			nc.SetDeadline(end)
			s := time.Now()
			var got int64
			chunk := max(1, o.ReadRate/20)
			pace := func(n int) int {
				if n > 0 {
					got += int64(n)
					read.Add(int64(n))
					return 0
				}
				// Sleep until chunk more bytes are due at ReadRate.
				due := s.Add(time.Duration(float64(got+int64(chunk)) / float64(o.ReadRate) * float64(time.Second)))
				if w := time.Until(due); w > 0 {
					time.Sleep(w)
				}
				return chunk
			}
			x := h.roundTrip(req, pace)
			switch {
			case x.kind == errTimeout && !time.Now().Before(end):
				unfinished.Add(1)
			case x.kind != "":
				t.fail(x.kind)
			default:
				completed.Add(1)
				t.done(x.status, x.body, s, time.Now())
			}
			if !h.ttfb.IsZero() {
				mu.Lock()
				ttfb.Record(h.ttfb.Sub(s))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	r.fill(out, el)
	sr := &SlowReadResult{Clients: o.Conns, Completed: completed.Load(), Unfinished: unfinished.Load(),
		BytesRead: read.Load(), ReadRate: o.ReadRate, TTFB: ttfb.Summary()}
	if o.Conns > 0 && el > 0 {
		sr.AchievedRate = float64(read.Load()) / float64(o.Conns) / el.Seconds()
	}
	r.SlowRead = sr
	return nil
}

// peekClosed says whether the target closed an idle connection: a
// non-blocking peek at the socket finds EOF, an error, or bytes (an idle
// keep-alive connection is sent nothing but its close: close_notify).
// It costs one syscall, where a read with a deadline would wait.
func peekClosed(nc net.Conn) bool {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	buf := make([]byte, 1)
	rc.Read(func(fd uintptr) bool {
		_, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		closed = err != unix.EAGAIN
		return true
	})
	return closed
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
