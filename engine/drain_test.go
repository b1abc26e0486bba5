package engine

import (
	"encoding/json"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
)

func TestDrainClosesIdleAndWaitsForWork(t *testing.T) {
	cl := newCloses()
	opened := make(chan *Conn, 2)
	var second atomic.Bool // Accept runs on either loop
	e, addr := startEngine(t, Config{}, func(c *Conn) Handler {
		if !second.Swap(true) {
			return &sender{cl: cl, total: 2 << 20, opened: opened}
		}
		return &echo{cl: cl, opened: opened}
	})
	busy := dialT(t, addr)
	<-opened
	idle := dialT(t, addr)
	<-opened
	ctx := testCtx(t)
	if err := e.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Idle():
		t.Fatal("idle before the busy connection finished")
	default:
	}
	// Idle one closes (echo's OnDrain = BaseHandler: Close), the sender keeps
	// sending; read both out.
	go func() {
		var b [1]byte
		idle.Read(b[:])
		idle.Close()
	}()
	if _, n, err := slowRead(busy, 64<<10, 0, nil); err != nil || n != 2<<20 {
		t.Fatalf("busy read %d %v", n, err)
	}
	busy.Close()
	select {
	case <-e.Idle():
	case <-time.After(5 * time.Second):
		t.Fatalf("not idle after both closed; live=%d", e.Live())
	}
}

func TestSnapshotListsConnectionsAndTraces(t *testing.T) {
	cl := newCloses()
	opened := make(chan *Conn, 1)
	e, addr := startEngine(t, Config{HighWater: 8 << 20}, func(c *Conn) Handler {
		return &sender{cl: cl, total: 4 << 20, opened: opened, then: func(*Conn) {}}
	})
	nc := dialT(t, addr)
	nc.SetReadBuffer(16 << 10)
	c := <-opened
	time.Sleep(20 * time.Millisecond)
	s, err := e.Snapshot(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Conns) != 1 {
		t.Fatalf("conns %+v", s.Conns)
	}
	ci := s.Conns[0]
	if ci.ID != c.String() || ci.State != "DataTransfer" || ci.Pending == 0 || ci.BytesOut == 0 || ci.Remote != nc.LocalAddr().String() {
		t.Fatalf("conn info %+v", ci)
	}
	c.Loop().Post(func() { c.Abort(diag.Aborted) })
	cl.next(t, 5*time.Second)
	s, _ = e.Snapshot(testCtx(t))
	if len(s.Conns) != 0 || len(s.Recent) != 1 || s.Recent[0].Outcome != "aborted" || s.Recent[0].Discarded == 0 {
		t.Fatalf("after abort: %+v", s)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
}

// During a drain, /debug/connections says what each connection waits
// for: its handler's work (a response), the peer reading what is queued,
// or the peer's FIN after ours.
func TestSnapshotSaysWhatHoldsTheDrain(t *testing.T) {
	cl := newCloses()
	var n atomic.Int64
	e, addr := startEngine(t, Config{HighWater: 8 << 20, LingerTimeout: 10 * time.Second}, func(c *Conn) Handler {
		switch n.Add(1) {
		case 1: // busy: ignores the drain (sender.OnDrain), stays open
			return &sender{cl: cl, total: 1 << 10, then: func(*Conn) {}}
		case 2: // closes on the drain, but the peer reads nothing
			return &drainSender{sender{cl: cl, total: 4 << 20, then: func(*Conn) {}}}
		}
		return &echo{cl: cl} // closes on the drain, then lingers for the FIN
	})
	names := []string{"response", "peer_read", "fin"}
	var clients []*net.TCPConn
	for i := range names {
		nc := dialT(t, addr)
		nc.SetReadBuffer(16 << 10)
		clients = append(clients, nc)
		for e.Live() != int64(i+1) {
			time.Sleep(time.Millisecond)
		}
	}
	s, _ := e.Snapshot(testCtx(t))
	for _, ci := range s.Conns {
		if ci.Draining != "" {
			t.Fatalf("draining %q before the drain", ci.Draining)
		}
	}
	if err := e.Drain(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	s, _ = e.Snapshot(testCtx(t))
	got := map[string]string{}
	for _, ci := range s.Conns {
		got[ci.Remote] = ci.Draining + " " + ci.State
	}
	for i, want := range []string{"response DataTransfer", "peer_read ShutdownInitiated", "fin Lingering"} {
		if g := got[clients[i].LocalAddr().String()]; g != want {
			t.Errorf("%s client: %q, want %q (all: %v)", names[i], g, want, got)
		}
	}
	if ci := s.Conns; len(ci) != 3 {
		t.Fatalf("%d connections", len(ci))
	}
}

// drainSender closes when asked to drain, whatever it still has queued.
type drainSender struct{ sender }

func (d *drainSender) OnDrain(c *Conn) { c.Close(diag.Clean) }
