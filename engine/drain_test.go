package engine

import (
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"
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
	c.Loop().Post(func() { c.Abort(Aborted) })
	cl.next(t, 5*time.Second)
	s, _ = e.Snapshot(testCtx(t))
	if len(s.Conns) != 0 || len(s.Recent) != 1 || s.Recent[0].Outcome != "aborted" || s.Recent[0].Discarded == 0 {
		t.Fatalf("after abort: %+v", s)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
}
