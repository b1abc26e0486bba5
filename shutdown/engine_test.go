package shutdown

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"

	"github.com/sluice-proxy/sluice/internal/testutil/enginetest"
)

// stubborn ignores OnDrain: it is "busy" until the client closes.
type stubborn struct {
	engine.BaseHandler
	closed chan diag.Outcome
}

func (s *stubborn) OnDrain(*engine.Conn) {}
func (s *stubborn) OnClosed(c *engine.Conn, t *diag.Trace) {
	s.closed <- t.Outcome
}

func start(t *testing.T, h func() engine.Handler) *engine.Engine {
	t.Helper()
	return enginetest.Start(t, engine.Config{
		Loops:     2,
		Logger:    slog.New(slog.DiscardHandler),
		Listeners: []engine.Listener{{Name: "t", Addr: "127.0.0.1:0", Accept: func(*engine.Conn) engine.Handler { return h() }}},
	})
}

func waitLive(t *testing.T, e *engine.Engine) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); e.Live() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("connection never opened")
		}
	}
}

func TestDrainForcesAtDeadline(t *testing.T) {
	closed := make(chan diag.Outcome, 1)
	e := start(t, func() engine.Handler { return &stubborn{closed: closed} })
	c, err := net.Dial("tcp", e.Addr("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitLive(t, e)
	var ready []bool
	set := metrics.NewSet()
	res := New(Config{Drainer: e, Timeout: 200 * time.Millisecond, Metrics: set, SetReady: func(ok bool) { ready = append(ready, ok) }}).Run(nil)
	if !res.Forced || res.Left != 1 {
		t.Fatalf("result %+v", res)
	}
	if res.Duration < 200*time.Millisecond {
		t.Fatalf("forced after %v, before the deadline", res.Duration)
	}
	if len(ready) != 1 || ready[0] {
		t.Fatalf("readiness calls %v", ready)
	}
	if o := <-closed; o != diag.ForcedAtDeadline {
		t.Fatalf("outcome %v", o)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client saw %v, want a reset", err)
	}
	if got := set.GetOrCreateCounter(`sluice_drains_total{result="forced"}`).Get(); got != 1 {
		t.Fatalf("forced drains %d", got)
	}
	if got := set.GetOrCreateCounter(`sluice_drain_forced_total`).Get(); got != 1 {
		t.Fatalf("forced connections %d", got)
	}
	// The listener refuses new clients.
	if _, err := net.DialTimeout("tcp", e.Addr("t"), time.Second); err == nil {
		t.Fatal("accepting after drain")
	}
}

func TestDrainEndsWhenLastConnectionCloses(t *testing.T) {
	closed := make(chan diag.Outcome, 1)
	e := start(t, func() engine.Handler { return &stubborn{closed: closed} })
	c, err := net.Dial("tcp", e.Addr("t"))
	if err != nil {
		t.Fatal(err)
	}
	waitLive(t, e)
	go func() { time.Sleep(100 * time.Millisecond); c.Close() }()
	res := New(Config{Drainer: e, Timeout: 10 * time.Second}).Run(nil)
	if res.Forced || res.Left != 0 || res.Duration > 5*time.Second {
		t.Fatalf("result %+v", res)
	}
	if o := <-closed; o != diag.PeerClosed {
		t.Fatalf("outcome %v", o)
	}
}

func TestSecondSignalCutsDrainShort(t *testing.T) {
	closed := make(chan diag.Outcome, 1)
	e := start(t, func() engine.Handler { return &stubborn{closed: closed} })
	c, err := net.Dial("tcp", e.Addr("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitLive(t, e)
	sig := make(chan os.Signal, 1)
	sig <- syscall.SIGTERM
	res := New(Config{Drainer: e, Timeout: time.Minute}).Run(sig)
	if !res.Forced || res.Duration > 5*time.Second {
		t.Fatalf("result %+v", res)
	}
	if o := <-closed; o != diag.ForcedAtDeadline {
		t.Fatalf("outcome %v", o)
	}
}
