package engine

import (
	"context"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
)

func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// waitFor polls cond (a state the kernel or runtime reaches on its own time)
// until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// After 10,000 connections open and close, no fds or goroutines are left.
func TestNoLeaksAfter10kConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("10k connections")
	}
	cl := newCloses()
	cl.ch = make(chan diag.Trace, 10001)
	e, addr := startEngine(t, Config{}, func(c *Conn) Handler { return &echo{cl: cl} })
	runtime.GC()
	fds0, g0 := openFDs(t), runtime.NumGoroutine()

	const total, workers = 10000, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [1]byte
			for i := 0; i < total/workers; i++ {
				nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					errs <- err
					return
				}
				nc.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := nc.Write([]byte{'x'}); err != nil {
					errs <- err
				} else if _, err := nc.Read(b[:]); err != nil {
					errs <- err
				}
				nc.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	outcomes := map[diag.Outcome]int{}
	for i := 0; i < total; i++ {
		outcomes[cl.next(t, 10*time.Second).Outcome]++
	}
	if outcomes[diag.PeerClosed] != total {
		t.Fatalf("outcomes %v", outcomes)
	}
	if n := e.Live(); n != 0 {
		t.Fatalf("%d connections still live", n)
	}
	if !waitFor(5*time.Second, func() bool { return openFDs(t) <= fds0 }) {
		t.Fatalf("fds: %d before, %d after", fds0, openFDs(t))
	}
	if !waitFor(5*time.Second, func() bool { return runtime.NumGoroutine() <= g0 }) {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d before, %d after\n%s", g0, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
}

// Stopping the engine releases everything it started: loops, watchers, fds.
func TestStopReleasesEverything(t *testing.T) {
	runtime.GC()
	fds0, g0 := openFDs(t), runtime.NumGoroutine()
	cfg := Config{Loops: 2, Logger: testLogger(t), Listeners: []Listener{{Addr: "127.0.0.1:0", Accept: func(c *Conn) Handler { return &echo{cl: newCloses()} }}}}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", e.Addr("listener0"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if !waitFor(5*time.Second, func() bool { return openFDs(t) <= fds0 }) {
		t.Fatalf("fds: %d before, %d after", fds0, openFDs(t))
	}
	// gnet's worker pool (ants) keeps idle workers for a while; allow none of ours.
	if !waitFor(5*time.Second, func() bool { return runtime.NumGoroutine() <= g0+2 }) {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d before, %d after\n%s", g0, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
}

// A port another socket already listens on is an error, even though gnet
// binds with SO_REUSEPORT.
func TestListenAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e, err := New(Config{Loops: 1, Logger: testLogger(t), Listeners: []Listener{{Addr: ln.Addr().String(), Accept: func(*Conn) Handler { return BaseHandler{} }}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("start on a used port: %v", err)
		e.Stop(testCtx(t))
	}
}
