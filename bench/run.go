package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// tally is what one worker measured; merged into the Result at the end.
type tally struct {
	hist     *Histogram
	codes    map[int]int64
	errs     map[string]int64
	bytes    int64
	ok       int64
	lastResp time.Time
	// afterSignal counts responses completed after the drain signal.
	afterSignal int64
}

func newTally() *tally {
	return &tally{hist: NewHistogram(), codes: map[int]int64{}, errs: map[string]int64{}}
}

// done records a whole response to a request timed from start.
func (t *tally) done(status int, body int64, start, end time.Time) {
	t.hist.Record(end.Sub(start))
	t.codes[status]++
	t.bytes += body
	t.ok++
	if end.After(t.lastResp) {
		t.lastResp = end
	}
	if sig := drainSignalAt.Load(); sig != 0 && end.UnixNano() > sig {
		t.afterSignal++
	}
	live.done.Add(1)
}

func (t *tally) fail(kind string) {
	t.errs[kind]++
	live.errs.Add(1)
}

func (t *tally) merge(o *tally) {
	t.hist.Merge(o.hist)
	for k, v := range o.codes {
		t.codes[k] += v
	}
	for k, v := range o.errs {
		t.errs[k] += v
	}
	t.bytes += o.bytes
	t.ok += o.ok
	t.afterSignal += o.afterSignal
	if o.lastResp.After(t.lastResp) {
		t.lastResp = o.lastResp
	}
}

// live counters feed the progress line (one run at a time per process).
var live struct {
	done, errs, conns, inflight atomic.Int64
}

func resetLive() {
	live.done.Store(0)
	live.errs.Store(0)
	live.conns.Store(0)
	live.inflight.Store(0)
}

// source hands out request start times: now, while the closed loop's
// budget lasts, or the scheduled times of the open loop.
type source struct {
	left     atomic.Int64 // -n budget; unused when counted is false
	counted  bool
	deadline time.Time
	sched    chan time.Time // open loop
	stopped  atomic.Bool
	overrun  atomic.Int64 // open loop: tickets dropped, the client could not keep up
}

func newSource(o *Options, start time.Time) *source {
	s := &source{deadline: start.Add(o.Duration)}
	if o.Requests > 0 {
		s.counted = true
		s.left.Store(o.Requests)
		s.deadline = start.Add(24 * time.Hour)
	}
	if o.Rate > 0 {
		s.sched = make(chan time.Time, 1<<16)
		go s.schedule(o.Rate, start)
	}
	return s
}

// schedule issues tickets at a fixed rate from start; each carries the
// time it was due, so latency counts the wait for a free connection.
func (s *source) schedule(rate float64, start time.Time) {
	defer close(s.sched)
	interval := time.Duration(float64(time.Second) / rate)
	for i := int64(0); ; {
		if s.stopped.Load() {
			return
		}
		now := time.Now()
		for due := start.Add(time.Duration(i) * interval); !due.After(now); due = start.Add(time.Duration(i) * interval) {
			if !due.Before(s.deadline) || (s.counted && s.left.Add(-1) < 0) {
				return
			}
			select {
			case s.sched <- due:
			default:
				s.overrun.Add(1)
			}
			i++
		}
		time.Sleep(min(interval, time.Millisecond))
	}
}

// next returns the start time of the next request, or false when the run
// is over.
func (s *source) next(ctx context.Context) (time.Time, bool) {
	if s.stopped.Load() {
		return time.Time{}, false
	}
	if s.sched != nil {
		select {
		case t, ok := <-s.sched:
			return t, ok && !s.stopped.Load()
		case <-ctx.Done():
			return time.Time{}, false
		}
	}
	now := time.Now()
	if s.counted {
		return now, s.left.Add(-1) >= 0
	}
	return now, now.Before(s.deadline)
}

func (s *source) stop() { s.stopped.Store(true) }

// loadWorkers runs o.Conns connections of rate load until the source is
// spent (or, in drain mode, until the target stops taking connections)
// and returns what they measured.
func loadWorkers(ctx context.Context, o *Options, d *dialer, src *source, afterSignal *atomic.Bool) *tally {
	out := newTally()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < o.Conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := newTally()
			if o.H2 {
				h2Worker(ctx, o, d, src, t, afterSignal)
			} else {
				h1Worker(ctx, o, d, src, t, afterSignal)
			}
			mu.Lock()
			out.merge(t)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// connectOnce makes one connection attempt. A failure is counted (it
// used up the request it was for) and paced; after the drain signal a
// failed connect ends the worker instead: the target has stopped
// accepting, as it should.
func connectOnce(ctx context.Context, o *Options, d *dialer, t *tally, afterSignal *atomic.Bool) (c net.Conn, stop bool) {
	nc, kind := o.connect(ctx, d)
	if kind == "" {
		live.conns.Add(1)
		return nc, false
	}
	if ctx.Err() != nil || (afterSignal != nil && afterSignal.Load()) {
		return nil, true
	}
	t.fail(kind)
	select {
	case <-ctx.Done():
		return nil, true
	case <-time.After(10 * time.Millisecond):
	}
	return nil, false
}

func h1Worker(ctx context.Context, o *Options, d *dialer, src *source, t *tally, afterSignal *atomic.Bool) {
	req := o.h1Request()
	var h *h1Conn
	defer func() {
		if h != nil {
			h.c.Close()
			live.conns.Add(-1)
		}
	}()
	for {
		start, ok := src.next(ctx)
		if !ok {
			return
		}
		if h == nil {
			nc, stop := connectOnce(ctx, o, d, t, afterSignal)
			if stop {
				return
			}
			if nc == nil {
				continue
			}
			h = newH1Conn(nc, o.Method == "HEAD")
		}
		h.c.SetDeadline(time.Now().Add(o.Timeout))
		live.inflight.Add(1)
		x := h.roundTrip(req, nil)
		live.inflight.Add(-1)
		if x.kind != "" {
			t.fail(x.kind)
		} else {
			t.done(x.status, x.body, start, time.Now())
		}
		if !x.keep {
			h.c.Close()
			live.conns.Add(-1)
			h = nil
		}
	}
}

func h2Worker(ctx context.Context, o *Options, d *dialer, src *source, t *tally, afterSignal *atomic.Bool) {
	fields := o.h2Fields()
	body := make([]byte, o.Body)
	var held *time.Time // a ticket a dying connection could not take
	for ctx.Err() == nil {
		if held == nil {
			start, ok := src.next(ctx)
			if !ok {
				return
			}
			held = &start
		}
		nc, stop := connectOnce(ctx, o, d, t, afterSignal)
		if stop {
			return
		}
		if nc == nil {
			held = nil // that request failed to connect
			continue
		}
		h := newH2Conn(o, nc, t)
		spent := false
		for h.waitSlot(o.Streams) {
			var start time.Time
			if held != nil {
				start, held = *held, nil
			} else {
				var ok bool
				if start, ok = src.next(ctx); !ok {
					spent = true
					break
				}
			}
			if !h.open(start, fields, body) {
				held = &start
				break
			}
		}
		h.close()
		live.conns.Add(-1)
		if spent {
			return
		}
	}
}

// Run runs one measurement as o says and returns its result. Progress
// lines go to progress (nil: none).
func Run(ctx context.Context, o *Options, progress io.Writer) (*Result, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	need := o.Conns + fdSlack
	if err := raiseFDLimit(need); err != nil {
		return nil, err
	}
	var warn string
	if o.PID > 0 {
		if !alive(o.PID) {
			return nil, fmt.Errorf("-pid %d: no such running process", o.PID)
		}
		if lim := openFileLimit(o.PID); lim > 0 && lim < o.Conns {
			warn = fmt.Sprintf("the target's open file limit is %d, under -c %d: expect refused connections (raise its RLIMIT_NOFILE)", lim, o.Conns)
			if progress != nil {
				fmt.Fprintln(progress, "warning:", warn)
			}
		}
	}
	resetLive()
	r := &Result{Mode: o.Mode, URL: o.URL.String(), Proto: o.proto(), Conns: o.Conns, Rate: o.Rate, Warning: warn}
	if o.H2 {
		r.Streams = o.Streams
	}
	var tgt *targetWatch
	if o.PID > 0 {
		var err error
		if tgt, err = watchTarget(o.PID); err != nil {
			return nil, err
		}
		defer tgt.stop()
	}
	stopProgress := startProgress(o, progress, tgt)
	defer stopProgress()
	var err error
	switch o.Mode {
	case ModeRate:
		err = runRate(ctx, o, r)
	case ModeHold:
		err = runHold(ctx, o, r, tgt)
	case ModeHandshake:
		err = runHandshake(ctx, o, r)
	case ModeDrain:
		err = runDrain(ctx, o, r, tgt)
	case ModeSlowRead:
		err = runSlowRead(ctx, o, r)
	}
	if err != nil {
		return nil, err
	}
	if tgt != nil {
		r.Target = tgt.result(r)
	}
	return r, nil
}

func runRate(ctx context.Context, o *Options, r *Result) error {
	start := time.Now()
	src := newSource(o, start)
	hard, cancel := context.WithDeadline(ctx, src.deadline.Add(o.Timeout+time.Second))
	defer cancel()
	t := loadWorkers(hard, o, newDialer(o), src, nil)
	src.stop()
	r.fill(t, time.Since(start))
	if n := src.overrun.Load(); n > 0 {
		r.Errors["open_loop_overrun"] += n
	}
	return nil
}
