package engine

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
)

// batchRecorder notes, in order, each read and each AfterBatch run.
type batchRecorder struct {
	mu     sync.Mutex
	events []string
}

func (r *batchRecorder) add(s string) {
	r.mu.Lock()
	r.events = append(r.events, s)
	r.mu.Unlock()
}

func (r *batchRecorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

type batchConn struct {
	BaseHandler
	r *batchRecorder
}

func (h *batchConn) OnData(c *Conn, b []byte) int {
	h.r.add("data")
	c.Loop().AfterBatch(func() {
		h.r.add("batch")
		c.Write(b[:0]) // a write after the batch is flushed like any other
		c.Write([]byte("ok"))
	})
	return len(b)
}

// Reads that one epoll_wait reports together all run before the work they
// queued with AfterBatch, and that work's writes go out.
func TestAfterBatchRunsAfterTheBatch(t *testing.T) {
	r := &batchRecorder{}
	e, addr := startEngine(t, Config{Loops: 1}, func(c *Conn) Handler { return &batchConn{r: r} })
	const n = 3
	var cs []net.Conn
	for i := 0; i < n; i++ {
		cs = append(cs, dialT(t, addr))
	}
	if !waitFor(5*time.Second, func() bool { return e.Live() == n }) {
		t.Fatalf("%d live, want %d", e.Live(), n)
	}
	// Hold the loop while every client writes: the reads form one batch.
	release, held := make(chan struct{}), make(chan struct{})
	if err := e.Loops()[0].Post(func() { close(held); <-release }); err != nil {
		t.Fatal(err)
	}
	<-held
	for _, c := range cs {
		c.Write([]byte("x"))
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	for _, c := range cs {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2)
		if _, err := ioReadFull(c, buf); err != nil || string(buf) != "ok" {
			t.Fatalf("reply %q, %v", buf, err)
		}
	}
	ev := r.snapshot()
	want := []string{"data", "data", "data", "batch", "batch", "batch"}
	if len(ev) != len(want) {
		t.Fatalf("events %v, want %v", ev, want)
	}
	for i := range want {
		if ev[i] != want[i] {
			t.Fatalf("events %v, want %v: the batch work ran before the batch ended", ev, want)
		}
	}
	// Work queued by batch work runs in a later batch, not never.
	again := make(chan struct{})
	e.Loops()[0].Post(func() {
		l := e.Loops()[0]
		l.AfterBatch(func() { l.AfterBatch(func() { close(again) }) })
	})
	select {
	case <-again:
	case <-time.After(5 * time.Second):
		t.Fatal("AfterBatch from AfterBatch work never ran")
	}
}

type drainRecorder struct {
	BaseHandler
	r *batchRecorder
}

func (h *drainRecorder) OnDrain(c *Conn) {
	h.r.add(fmt.Sprintf("conn%d", c.Loop().Index()))
	c.Close(diag.Clean)
}

// A loop's OnDrain hooks run once per process drain, on the loop, before
// its connections' OnDrain; one registered later runs at once.
func TestLoopOnDrainRunsOnceBeforeConnections(t *testing.T) {
	r := &batchRecorder{}
	e, addr := startEngine(t, Config{Loops: 2}, func(c *Conn) Handler { return &drainRecorder{r: r} })
	var cs []net.Conn
	for i := 0; i < 6; i++ {
		cs = append(cs, dialT(t, addr))
	}
	if !waitFor(5*time.Second, func() bool { return e.Live() == 6 }) {
		t.Fatalf("%d live, want 6", e.Live())
	}
	for _, l := range e.Loops() {
		l := l
		done := make(chan struct{})
		l.Post(func() {
			l.OnDrain(func() { r.add(fmt.Sprintf("hook%d", l.Index())) })
			close(done)
		})
		<-done
	}
	ctx := testCtx(t)
	for i := 0; i < 2; i++ {
		if err := e.DrainConnections(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ev := r.snapshot()
	for i := range e.Loops() {
		hook, first, conns := -1, -1, 0
		for j, s := range ev {
			switch s {
			case fmt.Sprintf("hook%d", i):
				if hook >= 0 {
					t.Fatalf("loop %d's hook ran twice: %v", i, ev)
				}
				hook = j
			case fmt.Sprintf("conn%d", i):
				conns++
				if first < 0 {
					first = j
				}
			}
		}
		if hook < 0 || first >= 0 && first < hook {
			t.Fatalf("loop %d: hook at %d, first connection drained at %d: %v", i, hook, first, ev)
		}
		if conns == 0 {
			t.Logf("loop %d had no connection", i)
		}
	}
	late := make(chan bool, 1)
	l1 := e.Loops()[1]
	l1.Post(func() { l1.OnDrain(func() { late <- l1.Draining() }) })
	select {
	case d := <-late:
		if !d {
			t.Fatal("late hook ran with Draining false")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a hook registered after the drain never ran")
	}
	for _, c := range cs {
		c.Close()
	}
	select {
	case <-e.Idle():
	case <-time.After(10 * time.Second):
		t.Fatal("not idle after the drain")
	}
}
