package bench

import (
	"fmt"
	"sync"
	"time"
)

// targetWatch samples the target's /proc figures during a run: the first
// reading, the peak RSS and the last reading taken while it lived.
type targetWatch struct {
	pid    int
	before ProcSample
	t0     time.Time

	mu     sync.Mutex
	last   ProcSample
	peak   int64
	exited time.Time // first sample that found it gone
	done   chan struct{}
	wg     sync.WaitGroup
}

func watchTarget(pid int) (*targetWatch, error) {
	s, err := ReadProc(pid)
	if err != nil {
		return nil, fmt.Errorf("-pid %d: %v", pid, err)
	}
	w := &targetWatch{pid: pid, before: s, last: s, peak: s.RSS, t0: time.Now(), done: make(chan struct{})}
	w.wg.Add(1)
	go w.loop()
	return w, nil
}

func (w *targetWatch) loop() {
	defer w.wg.Done()
	tk := time.NewTicker(5 * time.Millisecond)
	defer tk.Stop()
	n := 0
	for {
		select {
		case <-w.done:
			return
		case <-tk.C:
		}
		n++
		// Exit is checked every 5 ms (drain timing); the tree every 100 ms.
		if n%20 != 0 {
			if !alive(w.pid) {
				w.gone()
				return
			}
			continue
		}
		w.sample()
	}
}

func (w *targetWatch) gone() {
	w.mu.Lock()
	if w.exited.IsZero() {
		w.exited = time.Now()
	}
	w.mu.Unlock()
}

// sample reads the target now; false once it has exited.
func (w *targetWatch) sample() (ProcSample, bool) {
	s, err := ReadProc(w.pid)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if w.exited.IsZero() {
			w.exited = time.Now()
		}
		return w.last, false
	}
	w.last = s
	w.peak = max(w.peak, s.RSS)
	return s, true
}

// exitTime is when the target was first seen gone (zero while it runs).
func (w *targetWatch) exitTime() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.exited
}

func (w *targetWatch) stop() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	w.wg.Wait()
}

// result is the target's share of the report, per completed request.
func (w *targetWatch) result(r *Result) *Target {
	if w.exitTime().IsZero() {
		w.sample()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	t := &Target{PID: w.pid, CPUSeconds: (w.last.CPU - w.before.CPU).Seconds(),
		RSSBytes: w.last.RSS, RSSPeakBytes: w.peak, RSSBeforeBytes: w.before.RSS, Processes: w.last.Procs}
	if n := r.Requests; n > 0 {
		t.CPUPerRequestUS = t.CPUSeconds * 1e6 / float64(n)
	}
	return t
}
