package engine

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
)

// 8 MiB to a client that reads slowly, then a last write and the graceful
// close: every byte arrives, the last write last, then FIN. (A TLS
// listener's close_notify: TestTLSCloseNotifyIsLastRecordBeforeFIN.)
func TestSlowReaderGetsEveryByte(t *testing.T) {
	cl := newCloses()
	const total = 8 << 20
	bye := []byte("--last-write--")
	_, addr := startEngine(t, Config{}, func(c *Conn) Handler {
		return &sender{cl: cl, total: total, then: func(c *Conn) {
			c.Write(bye)
			c.Close(diag.Clean)
		}}
	})
	nc := dialT(t, addr)
	nc.SetReadBuffer(64 << 10)
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	var tail []byte
	sum, n, err := slowRead(nc, 64<<10, 4*time.Millisecond, func(b []byte) {
		tail = append(tail, b...)
		if len(tail) > 64 {
			tail = tail[len(tail)-64:]
		}
	})
	if err != nil {
		t.Fatalf("read: %v after %d bytes", err, n)
	}
	if n != total+len(bye) {
		t.Fatalf("got %d bytes, want %d", n, total+len(bye))
	}
	if !bytes.HasSuffix(tail, bye) {
		t.Fatalf("last write not last: %q", tail)
	}
	// The hash covers the last write too; compare the payload part.
	_ = sum
	nc.Close()
	tr := cl.next(t, 10*time.Second)
	if tr.Outcome != diag.Clean {
		t.Fatalf("outcome %v, want clean; close=%q", tr.Outcome, tr.CloseSequence())
	}
	mustState(t, tr, diag.DataTransfer, diag.ShutdownInitiated, diag.BufferFlushed, diag.WriteShut, diag.Lingering, diag.SocketClosed)
	if tr.Entered[diag.CloseNotifySent] != 0 {
		t.Errorf("plain TCP recorded CloseNotifySent; close=%q", tr.CloseSequence())
	}
	if tr.BytesOut != int64(total+len(bye)) {
		t.Fatalf("BytesOut %d", tr.BytesOut)
	}
	if tr.Delivered == 0 {
		t.Errorf("Delivered not recorded although the client read everything")
	}
	// The flush really waited for the slow reader.
	if d := tr.Entered[diag.BufferFlushed] - tr.Entered[diag.ShutdownInitiated]; d <= 0 {
		t.Errorf("flush took %v", time.Duration(d))
	}
}

func TestSlowReaderSHA256(t *testing.T) {
	cl := newCloses()
	const total = 8 << 20
	_, addr := startEngine(t, Config{HighWater: 128 << 10}, func(c *Conn) Handler {
		return &sender{cl: cl, total: total, chunk: 7919}
	})
	nc := dialT(t, addr)
	nc.SetReadBuffer(32 << 10)
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	sum, n, err := slowRead(nc, 16<<10, time.Millisecond, nil)
	if err != nil || n != total {
		t.Fatalf("read %d bytes, err %v", n, err)
	}
	if sum != patternSum(total) {
		t.Fatal("sha256 mismatch")
	}
	nc.Close()
	if tr := cl.next(t, 10*time.Second); tr.Outcome != diag.Clean {
		t.Fatalf("outcome %v", tr.Outcome)
	}
}

func TestAbortReportsDiscardedBytes(t *testing.T) {
	cl := newCloses()
	const total = 16 << 20
	opened := make(chan *Conn, 1)
	e, addr := startEngine(t, Config{HighWater: 64 << 20}, func(c *Conn) Handler {
		return &sender{cl: cl, total: total, opened: opened, then: func(c *Conn) {}}
	})
	nc := dialT(t, addr)
	nc.SetReadBuffer(64 << 10)
	c := <-opened
	// The client reads nothing: most of 16 MiB stays in the engine buffer.
	time.Sleep(50 * time.Millisecond)
	aborted := make(chan struct{})
	c.Loop().Post(func() { c.Abort(diag.Aborted); close(aborted) })
	<-aborted
	tr := cl.next(t, 5*time.Second)
	if tr.Outcome != diag.Aborted {
		t.Fatalf("outcome %v", tr.Outcome)
	}
	if tr.Discarded < total/2 || tr.Discarded > total {
		t.Fatalf("discarded %d, want most of %d", tr.Discarded, total)
	}
	if tr.BytesOut+tr.Discarded < total-(1<<20) {
		t.Fatalf("written %d + discarded %d does not account for %d", tr.BytesOut, tr.Discarded, total)
	}
	// The client sees a reset, not a clean end.
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, nc)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read error %v, want ECONNRESET", err)
	}
	if got := e.met.conn.Aborts(diag.Downstream); got != 1 {
		t.Fatalf("abort counter %d", got)
	}
}

func TestLingerTimeoutAgainstSilentPeer(t *testing.T) {
	cl := newCloses()
	const linger = 200 * time.Millisecond
	_, addr := startEngine(t, Config{LingerTimeout: linger}, func(c *Conn) Handler {
		return &sender{cl: cl, total: 1000}
	})
	var lingered time.Duration
	for attempt := 1; attempt <= 3; attempt++ { // a loaded machine only makes it later
		nc := dialT(t, addr)
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		// Read everything including the FIN, but never close.
		if _, n, err := slowRead(nc, 4096, 0, nil); err != nil || n != 1000 {
			t.Fatalf("read %d, %v", n, err)
		}
		tr := cl.next(t, 5*time.Second)
		if tr.Outcome != diag.LingerTimeout {
			t.Fatalf("outcome %v", tr.Outcome)
		}
		// The linger counts from Lingering, or from delivery (the kernel
		// queue empty: the peer ACKed our FIN) when that came later; on
		// a loaded machine the ACK can lag (lingerWaits).
		if tr.Delivered == 0 {
			t.Fatalf("never delivered: %s", tr.CloseSequence())
		}
		lingered = time.Duration(tr.Entered[diag.SocketClosed] - max(tr.Entered[diag.Lingering], tr.Delivered))
		if lingered < linger && tr.Delivered <= tr.Entered[diag.Lingering] {
			t.Fatalf("lingered %v, less than %v", lingered, linger)
		}
		if lingered <= linger+20*time.Millisecond {
			return
		}
	}
	t.Fatalf("lingered %v, want %v (+20ms)", lingered, linger)
}

func TestLingerDiscardsLateClientBytes(t *testing.T) {
	cl := newCloses()
	_, addr := startEngine(t, Config{}, func(c *Conn) Handler {
		return &sender{cl: cl, total: 100 << 10}
	})
	nc := dialT(t, addr)
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	// The client keeps sending while the server closes; the lingering read
	// must swallow it so the response is not destroyed by an RST.
	go func() {
		junk := bytes.Repeat([]byte("x"), 4096)
		for i := 0; i < 64; i++ {
			if _, err := nc.Write(junk); err != nil {
				return
			}
		}
		nc.CloseWrite()
	}()
	sum, n, err := slowRead(nc, 8192, 0, nil)
	if err != nil || n != 100<<10 || sum != patternSum(100<<10) {
		t.Fatalf("read %d bytes, err %v", n, err)
	}
	tr := cl.next(t, 5*time.Second)
	if tr.Outcome != diag.Clean {
		t.Fatalf("outcome %v", tr.Outcome)
	}
	if tr.BytesIn == 0 {
		t.Fatal("late bytes were not read during linger")
	}
}

func TestWriteTimeoutAbortsStalledPeer(t *testing.T) {
	for _, closing := range []bool{false, true} {
		cl := newCloses()
		const wt = 200 * time.Millisecond
		_, addr := startEngine(t, Config{WriteTimeout: wt, HighWater: 32 << 20}, func(c *Conn) Handler {
			s := &sender{cl: cl, total: 16 << 20}
			if !closing {
				s.then = func(*Conn) {}
			}
			return s
		})
		nc := dialT(t, addr)
		nc.SetReadBuffer(16 << 10)
		tr := cl.next(t, 5*time.Second)
		want := diag.WriteTimeout
		if closing {
			want = diag.FlushTimeout
		}
		if tr.Outcome != want {
			t.Fatalf("closing=%v: outcome %v, want %v", closing, tr.Outcome, want)
		}
		if el := time.Duration(tr.Entered[diag.SocketClosed] - tr.Entered[diag.Created]); el < wt || el > wt+time.Second {
			t.Fatalf("aborted %v after open, want just after the %v write timeout", el, wt)
		}
		if tr.Discarded == 0 {
			t.Fatal("no discarded bytes reported")
		}
		nc.Close()
	}
}

// A client that half-closes still gets the whole response (peer FIN is not a
// full close).
func TestPeerHalfCloseStillGetsResponse(t *testing.T) {
	cl := newCloses()
	const total = 4 << 20
	e, addr := startEngine(t, Config{}, func(c *Conn) Handler {
		return &lateResponder{cl: cl, total: total}
	})
	nc := dialT(t, addr)
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := nc.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	nc.CloseWrite()
	sum, n, err := slowRead(nc, 32<<10, 0, nil)
	if err != nil || n != total || sum != patternSum(total) {
		t.Fatalf("read %d bytes, err %v", n, err)
	}
	tr := cl.next(t, 5*time.Second)
	if tr.Outcome != diag.Clean {
		t.Fatalf("outcome %v; close=%q", tr.Outcome, tr.CloseSequence())
	}
	if e.met.detached.Get() != 1 {
		t.Fatalf("detached counter %d", e.met.detached.Get())
	}
}

// lateResponder waits for the peer's FIN, then answers 50 ms later.
type lateResponder struct {
	BaseHandler
	cl    *closes
	total int
}

func (h *lateResponder) OnReadEOF(c *Conn) {
	c.Loop().AfterFunc(int64(50*time.Millisecond), func() {
		s := &sender{cl: h.cl, total: h.total}
		c.h = s
		s.pump(c)
	})
}
func (h *lateResponder) OnClosed(c *Conn, t *diag.Trace) { h.cl.add(t) }

func TestPauseBoundsMemory(t *testing.T) {
	cl := newCloses()
	const total = 16 << 20
	ph := &pauser{cl: cl, opened: make(chan *Conn, 1)}
	_, addr := startEngine(t, Config{}, func(c *Conn) Handler { return ph })
	nc := dialT(t, addr)
	nc.SetWriteBuffer(64 << 10)
	done := make(chan error, 1)
	go func() {
		var err error
		for sent := 0; sent < total && err == nil; sent += 64 << 10 {
			_, err = nc.Write(pattern[(sent % len(pattern)):][:64<<10])
		}
		nc.CloseWrite()
		done <- err
	}()
	c := <-ph.opened
	time.Sleep(200 * time.Millisecond)
	// While paused, the sender is stalled by TCP and the engine holds at
	// most one read.
	st := make(chan [2]int64, 1)
	c.Loop().Post(func() { st <- [2]int64{c.trace.BytesIn, int64(len(c.in))} })
	got := <-st
	if got[0] > 4<<20 {
		t.Fatalf("read %d bytes while paused", got[0])
	}
	if got[1] > 64<<10 {
		t.Fatalf("kept %d bytes while paused", got[1])
	}
	select {
	case err := <-done:
		t.Fatalf("sender finished while reads were paused: %v", err)
	default:
	}
	c.Loop().Post(func() { c.ResumeRead() })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tr := cl.next(t, 10*time.Second)
	if tr.BytesIn != total {
		t.Fatalf("BytesIn %d", tr.BytesIn)
	}
	if ph.sum != patternSum(total) {
		t.Fatal("data reordered or lost across pause")
	}
}

type pauser struct {
	BaseHandler
	cl     *closes
	opened chan *Conn
	h      hashWriter
	sum    [32]byte
}

func (p *pauser) OnOpen(c *Conn) {
	c.PauseRead()
	p.opened <- c
}
func (p *pauser) OnData(c *Conn, b []byte) int    { p.h.Write(b); return len(b) }
func (p *pauser) OnReadEOF(c *Conn)               { p.sum = p.h.Sum(); c.Close(diag.Clean) }
func (p *pauser) OnClosed(c *Conn, t *diag.Trace) { p.cl.add(t) }

func TestStopAcceptingRefusesNewConnections(t *testing.T) {
	cl := newCloses()
	e, addr := startEngine(t, Config{}, func(c *Conn) Handler { return &echo{cl: cl} })
	old := dialT(t, addr)
	ctx := testCtx(t)
	if err := e.StopAccepting(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after StopAccepting: %v, want ECONNREFUSED", err)
	}
	old.SetDeadline(time.Now().Add(5 * time.Second))
	old.Write([]byte("still here"))
	buf := make([]byte, 10)
	if _, err := io.ReadFull(old, buf); err != nil || string(buf) != "still here" {
		t.Fatalf("existing connection broken: %q %v", buf, err)
	}
}
