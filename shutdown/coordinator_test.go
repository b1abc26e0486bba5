package shutdown

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// fakeTarget stands in for the engine: no sockets, time from synctest.
type fakeTarget struct {
	co *Coordinator

	mu       sync.Mutex
	calls    []string // method, @ phase at the call
	live     int64
	idle     chan struct{}
	idleOnce sync.Once
	// finishAfter: DrainConnections makes every connection close after
	// this long (0: they never close).
	finishAfter time.Duration
	walks       atomic.Int64 // OpenByState calls
}

func newFake(live int64) *fakeTarget { return &fakeTarget{live: live, idle: make(chan struct{})} }

func (f *fakeTarget) call(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name+"@"+f.co.Phase().String())
}

func (f *fakeTarget) StopAccepting(context.Context) error { f.call("StopAccepting"); return nil }

func (f *fakeTarget) DrainConnections(context.Context) error {
	f.call("DrainConnections")
	if f.finishAfter > 0 {
		go func() {
			time.Sleep(f.finishAfter)
			f.mu.Lock()
			f.live = 0
			f.mu.Unlock()
			f.idleOnce.Do(func() { close(f.idle) })
		}()
	}
	return nil
}

func (f *fakeTarget) Live() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live
}

func (f *fakeTarget) Idle() <-chan struct{} { return f.idle }

func (f *fakeTarget) ForceClose(context.Context) (int64, error) {
	f.call("ForceClose")
	f.mu.Lock()
	n := f.live
	f.live = 0
	f.mu.Unlock()
	return n, nil
}

// OpenByState: all live connections are "Lingering", none "DataTransfer".
func (f *fakeTarget) OpenByState(fn func(string, int64)) {
	f.walks.Add(1)
	fn("DataTransfer", 0)
	fn("Lingering", f.Live())
}

func (f *fakeTarget) callList() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, " ")
}

// logRec keeps "drain phase" log lines' phase attribute.
type logRec struct {
	mu     sync.Mutex
	phases []string
}

func (l *logRec) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRec) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRec) WithGroup(string) slog.Handler            { return l }
func (l *logRec) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "drain phase" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "phase" {
			l.mu.Lock()
			l.phases = append(l.phases, a.Value.String())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *logRec) list() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.phases, " ")
}

func metricValue(t *testing.T, set *metrics.Set, name string) string {
	t.Helper()
	var sb strings.Builder
	set.WritePrometheus(&sb)
	for _, line := range strings.Split(sb.String(), "\n") {
		if strings.HasPrefix(line, name+" ") {
			return strings.TrimPrefix(line, name+" ")
		}
	}
	t.Fatalf("no metric %s in\n%s", name, sb.String())
	return ""
}

type harness struct {
	f     *fakeTarget
	co    *Coordinator
	set   *metrics.Set
	log   *logRec
	ready []bool
	res   chan Result
	stop  chan os.Signal
}

func startDrain(t *testing.T, f *fakeTarget, delay, timeout time.Duration) *harness {
	h := &harness{f: f, set: metrics.NewSet(), log: &logRec{}, res: make(chan Result, 1), stop: make(chan os.Signal, 1)}
	h.co = New(Config{Drainer: f, Delay: delay, Timeout: timeout, Metrics: h.set, Logger: slog.New(h.log),
		SetReady: func(ok bool) { h.ready = append(h.ready, ok) }})
	f.co = h.co
	if p := metricValue(t, h.set, "sluice_drain_phase"); p != "0" {
		t.Fatalf("phase gauge %s before the signal", p)
	}
	go func() { h.res <- h.co.Run(h.stop) }()
	return h
}

// The whole sequence with a lame-duck delay: readiness off at once, the
// listeners close only after the delay, connections drain, Done when the
// last one closes; each phase logged once, timed exactly (synctest).
func TestCoordinatorPhasesInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(3)
		f.finishAfter = 2 * time.Second
		h := startDrain(t, f, 5*time.Second, 30*time.Second)
		synctest.Wait()
		if h.co.Phase() != NotReady || len(h.ready) != 1 || h.ready[0] {
			t.Fatalf("phase %v, readiness calls %v", h.co.Phase(), h.ready)
		}
		if got := metricValue(t, h.set, "sluice_drain_phase"); got != "1" {
			t.Fatalf("phase gauge %s in NotReady", got)
		}
		time.Sleep(4900 * time.Millisecond)
		synctest.Wait()
		if c := f.callList(); c != "" {
			t.Fatalf("during the delay: %s", c)
		}
		// Still accepting: the drain gauges say nothing yet.
		if got := metricValue(t, h.set, `sluice_drain_connections{state="Lingering"}`); got != "0" {
			t.Fatalf("drain connections %s before the listeners closed", got)
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if h.co.Phase() != Draining {
			t.Fatalf("phase %v after the delay", h.co.Phase())
		}
		if got := metricValue(t, h.set, `sluice_drain_connections{state="Lingering"}`); got != "3" {
			t.Fatalf("drain connections %s while draining", got)
		}
		if got := metricValue(t, h.set, "sluice_drain_phase"); got != "3" {
			t.Fatalf("phase gauge %s in Draining", got)
		}
		res := <-h.res
		if res.Forced || res.Left != 0 {
			t.Fatalf("result %+v", res)
		}
		if res.Phases[NotReady] != 5*time.Second || res.Phases[StopAccepting] != 0 || res.Phases[Draining] != 2*time.Second || res.Duration != 7*time.Second {
			t.Fatalf("phase durations %v, total %v", res.Phases, res.Duration)
		}
		if c := f.callList(); c != "StopAccepting@StopAccepting DrainConnections@Draining" {
			t.Fatalf("calls %s", c)
		}
		if l := h.log.list(); l != "NotReady StopAccepting Draining Done" {
			t.Fatalf("log lines for phases %q", l)
		}
		for name, want := range map[string]string{
			"sluice_drain_phase": "5", `sluice_drains_total{result="clean"}`: "1", `sluice_drains_total{result="forced"}`: "0",
			`sluice_drain_forced_total`: "0", `sluice_drain_phase_duration_seconds{phase="NotReady"}`: "5",
			`sluice_drain_phase_duration_seconds{phase="Draining"}`: "2", `sluice_drain_phase_duration_seconds{phase="Forcing"}`: "0",
		} {
			if got := metricValue(t, h.set, name); got != want {
				t.Errorf("%s = %s, want %s", name, got, want)
			}
		}
		st := h.co.Status()
		if st.Phase != "Done" || len(st.Phases) != 4 || st.Phases[2].Phase != "Draining" || st.Phases[2].StartS != 5 || st.Phases[2].SpentS != 2 {
			t.Fatalf("status %+v", st)
		}
	})
}

// Connections that never finish are aborted at the deadline, counted.
func TestCoordinatorForcesAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(4)
		h := startDrain(t, f, 0, 10*time.Second)
		time.Sleep(9999 * time.Millisecond)
		synctest.Wait()
		if h.co.Phase() != Draining {
			t.Fatalf("phase %v before the deadline", h.co.Phase())
		}
		res := <-h.res
		if !res.Forced || res.Left != 4 || res.Phases[Draining] != 10*time.Second {
			t.Fatalf("result %+v", res)
		}
		if c := f.callList(); c != "StopAccepting@StopAccepting DrainConnections@Draining ForceClose@Forcing" {
			t.Fatalf("calls %s", c)
		}
		if l := h.log.list(); l != "NotReady StopAccepting Draining Forcing Done" {
			t.Fatalf("log lines for phases %q", l)
		}
		for name, want := range map[string]string{
			`sluice_drains_total{result="forced"}`: "1", `sluice_drain_forced_total`: "4",
			`sluice_drain_phase_duration_seconds{phase="Draining"}`: "10",
		} {
			if got := metricValue(t, h.set, name); got != want {
				t.Errorf("%s = %s, want %s", name, got, want)
			}
		}
	})
}

// A second signal ends the lame-duck delay at once: the listeners close
// and what is open is aborted, without waiting.
func TestCoordinatorSecondSignalInDelay(t *testing.T) {
	for _, during := range []Phase{NotReady, Draining} {
		t.Run(during.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(2)
				h := startDrain(t, f, 5*time.Second, time.Minute)
				if during == Draining {
					time.Sleep(6 * time.Second)
				} else {
					time.Sleep(time.Second)
				}
				synctest.Wait()
				if h.co.Phase() != during {
					t.Fatalf("phase %v", h.co.Phase())
				}
				h.stop <- syscall.SIGTERM
				res := <-h.res
				want := 6 * time.Second
				calls := "StopAccepting@StopAccepting DrainConnections@Draining ForceClose@Forcing"
				if during == NotReady {
					want = time.Second
					calls = "StopAccepting@StopAccepting ForceClose@Forcing"
				}
				if !res.Forced || res.Left != 2 || res.Duration != want {
					t.Fatalf("result %+v", res)
				}
				if c := f.callList(); c != calls {
					t.Fatalf("calls %s", c)
				}
			})
		})
	}
}

// Run runs once.
func TestCoordinatorRunsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(0)
		f.finishAfter = time.Millisecond
		h := startDrain(t, f, 0, time.Second)
		<-h.res
		if res := h.co.Run(nil); res != (Result{}) {
			t.Fatalf("second run %+v", res)
		}
		if c := f.callList(); strings.Count(c, "StopAccepting@") != 1 {
			t.Fatal(fmt.Sprint("calls ", c))
		}
	})
}
