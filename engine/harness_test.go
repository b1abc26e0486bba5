package engine

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
)

// testLogger logs to the test output when SLUICE_TEST_LOG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startEngine runs an engine with one listener on 127.0.0.1:0 and stops it
// when the test ends.
func startEngine(t testing.TB, cfg Config, accept func(c *Conn) Handler) (*Engine, string) {
	t.Helper()
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	cfg.Listeners = []Listener{{Name: "test", Addr: "127.0.0.1:0", Accept: accept}}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return e, e.Addr("test")
}

// closes collects traces of closed connections for assertions.
type closes struct {
	ch chan diag.Trace
}

func newCloses() *closes { return &closes{ch: make(chan diag.Trace, 1024)} }

func (cl *closes) add(t *diag.Trace) { cl.ch <- *t }

func (cl *closes) next(t testing.TB, d time.Duration) diag.Trace {
	t.Helper()
	select {
	case tr := <-cl.ch:
		return tr
	case <-time.After(d):
		t.Fatalf("no connection closed within %v", d)
	}
	return diag.Trace{}
}

// echo writes back what it reads and records its close.
type echo struct {
	BaseHandler
	cl     *closes
	opened chan *Conn
}

func (h *echo) OnOpen(c *Conn) {
	c.Advance(diag.DataTransfer)
	if h.opened != nil {
		h.opened <- c
	}
}

func (h *echo) OnData(c *Conn, b []byte) int    { c.Write(b); return len(b) }
func (h *echo) OnClosed(c *Conn, t *diag.Trace) { h.cl.add(t) }
func dialT(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc.(*net.TCPConn)
}

// TestEcho runs with loops on any thread and with loops locked to theirs.
func TestEcho(t *testing.T) {
	for _, lock := range []bool{false, true} {
		t.Run(map[bool]string{false: "unlocked", true: "locked"}[lock], func(t *testing.T) { testEcho(t, lock) })
	}
}

func testEcho(t *testing.T, lock bool) {
	cl := newCloses()
	_, addr := startEngine(t, Config{LockThreads: lock}, func(c *Conn) Handler { return &echo{cl: cl} })
	nc := dialT(t, addr)
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	msg := []byte("hello, sluice")
	if _, err := nc.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := ioReadFull(nc, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(msg) {
		t.Fatalf("echo = %q", got)
	}
	nc.CloseWrite()
	// The server sees FIN, closes gracefully: we read EOF.
	var one [1]byte
	if n, err := nc.Read(one[:]); n != 0 || err == nil {
		t.Fatalf("read after close = %d, %v; want EOF", n, err)
	}
	tr := cl.next(t, 5*time.Second)
	if tr.Outcome != diag.PeerClosed {
		t.Fatalf("outcome = %v, want peer_closed", tr.Outcome)
	}
	if tr.BytesIn != int64(len(msg)) || tr.BytesOut != int64(len(msg)) {
		t.Fatalf("bytes in/out = %d/%d", tr.BytesIn, tr.BytesOut)
	}
	for _, st := range []diag.State{diag.Created, diag.DataTransfer, diag.ShutdownInitiated, diag.BufferFlushed, diag.WriteShut, diag.SocketClosed} {
		if tr.Entered[st] == 0 {
			t.Errorf("state %v not recorded: %s", st, tr.CloseSequence())
		}
	}
}
