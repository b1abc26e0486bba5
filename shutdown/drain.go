package shutdown

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Drainer is what a drain drives: the engine implements it, a test fakes
// it. Every method may be called from any goroutine.
type Drainer interface {
	// StopAccepting closes the listeners to new connections.
	StopAccepting(ctx context.Context) error
	// DrainConnections asks every open connection (and every one that
	// opens later, e.g. a handshake in flight) to finish its work and
	// close.
	DrainConnections(ctx context.Context) error
	// Live counts the connections still open.
	Live() int64
	// Idle is closed once DrainConnections ran and none is left.
	Idle() <-chan struct{}
	// ForceClose aborts every connection still open, each logged and
	// counted as forced_at_deadline, and reports how many it aborted.
	ForceClose(ctx context.Context) (int64, error)
	// OpenByState calls fn for every connection state the target knows,
	// always the same names in the same order, with the number open.
	OpenByState(fn func(state string, n int64))
}

// Config configures a process drain.
type Config struct {
	Drainer Drainer
	// SetReady flips readiness (the admin /readyz); called with false
	// when the drain begins.
	SetReady func(bool)
	// Delay is the lame-duck phase: after the signal, readiness is off
	// while connections are still accepted and served for this long.
	Delay time.Duration
	// Timeout is the drain deadline, counted from StopAccepting:
	// connections still open then are aborted as forced_at_deadline.
	Timeout time.Duration
	Logger  *slog.Logger
	Metrics *metrics.Set
}

// forceWait bounds ForceClose: the loops answer in microseconds unless
// they are wedged, and the process must exit regardless.
const forceWait = 5 * time.Second

// Result says how a drain ended.
type Result struct {
	Forced   bool          // the deadline (or a second signal) cut it short
	Left     int64         // connections aborted at the end
	Duration time.Duration // from the signal to Done
	// Phases is the time spent in each phase (Serving: 0).
	Phases [numPhases]time.Duration
}

// Coordinator runs the process drain as a state machine, after net/http's
// Server.Shutdown and caddy's Stop (a delay while serving, then a grace
// period): each phase has a timestamp, a log line, the sluice_drain_phase
// gauge and a duration; while connections drain, sluice_drain_connections
// shows how many are left in each engine state.
type Coordinator struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	phase   Phase
	entered [numPhases]time.Time

	noDelay bool // RunHandoff: a successor serves already

	forcedConns *metrics.Counter
	drains      [2]*metrics.Counter // clean, forced
	states      []string
}

// New creates the coordinator (in phase Serving) and registers its
// metrics in cfg.Metrics.
func New(cfg Config) *Coordinator {
	co := &Coordinator{cfg: cfg, log: cfg.Logger}
	if co.log == nil {
		co.log = slog.New(slog.DiscardHandler)
	}
	co.entered[Serving] = time.Now()
	if cfg.Drainer != nil {
		cfg.Drainer.OpenByState(func(s string, _ int64) { co.states = append(co.states, s) })
	}
	if s := cfg.Metrics; s != nil {
		s.NewGauge(`sluice_drain_phase`, func() float64 { return float64(co.Phase()) })
		for p := NotReady; p < numPhases; p++ {
			p := p
			s.NewGauge(fmt.Sprintf(`sluice_drain_phase_duration_seconds{phase=%q}`, p), func() float64 {
				return co.spent(p).Seconds()
			})
		}
		if len(co.states) > 0 {
			s.RegisterMetricsWriter(co.writeOpen)
		}
		co.forcedConns = s.NewCounter(`sluice_drain_forced_total`)
		co.drains[0] = s.NewCounter(`sluice_drains_total{result="clean"}`)
		co.drains[1] = s.NewCounter(`sluice_drains_total{result="forced"}`)
	}
	return co
}

// Phase is the current phase.
func (co *Coordinator) Phase() Phase {
	co.mu.Lock()
	defer co.mu.Unlock()
	return co.phase
}

// Status is the drain's state for the admin endpoint.
type Status struct {
	Phase string `json:"phase"`
	// Phases maps each phase entered to its start, in seconds after the
	// signal, and the time spent in it so far.
	Phases []PhaseStatus `json:"phases,omitempty"`
}

// PhaseStatus is one phase entered.
type PhaseStatus struct {
	Phase   string  `json:"phase"`
	StartS  float64 `json:"start_seconds"`
	SpentS  float64 `json:"spent_seconds"`
	Current bool    `json:"current,omitempty"`
}

// Status reports the phase and the phases entered so far.
func (co *Coordinator) Status() Status {
	co.mu.Lock()
	cur, entered := co.phase, co.entered
	co.mu.Unlock()
	st := Status{Phase: cur.String()}
	if cur == Serving {
		return st
	}
	t0 := entered[NotReady]
	for p := NotReady; p <= cur; p++ {
		if entered[p].IsZero() {
			continue
		}
		st.Phases = append(st.Phases, PhaseStatus{Phase: p.String(), StartS: entered[p].Sub(t0).Seconds(),
			SpentS: co.spent(p).Seconds(), Current: p == cur})
	}
	return st
}

// spent is the time spent in phase p: until the next phase entered, or
// until now while p is current; 0 if p was never entered.
func (co *Coordinator) spent(p Phase) time.Duration {
	co.mu.Lock()
	defer co.mu.Unlock()
	return co.spentLocked(p, time.Now())
}

func (co *Coordinator) spentLocked(p Phase, now time.Time) time.Duration {
	if co.entered[p].IsZero() || p == Serving {
		return 0
	}
	if p == co.phase {
		if p == Done {
			return 0
		}
		return now.Sub(co.entered[p])
	}
	for q := p + 1; q <= co.phase; q++ {
		if !co.entered[q].IsZero() {
			return co.entered[q].Sub(co.entered[p])
		}
	}
	return 0
}

// writeOpen writes sluice_drain_connections{state}, the connections open
// in each state while the drain waits for them (0 before and after), from
// one walk of the drainer per scrape: a gauge per state would walk every
// state once per gauge.
func (co *Coordinator) writeOpen(w io.Writer) {
	metrics.WriteMetadataIfNeeded(w, "sluice_drain_connections", "gauge")
	if p := co.Phase(); p < StopAccepting || p > Forcing {
		for _, st := range co.states {
			fmt.Fprintf(w, "sluice_drain_connections{state=%q} 0\n", st)
		}
		return
	}
	co.cfg.Drainer.OpenByState(func(st string, n int64) {
		fmt.Fprintf(w, "sluice_drain_connections{state=%q} %d\n", st, n)
	})
}

func (co *Coordinator) enter(p Phase, attrs ...slog.Attr) {
	now := time.Now()
	co.mu.Lock()
	prev := co.phase
	co.phase = p
	co.entered[p] = now
	spent := co.spentLocked(prev, now)
	t0 := co.entered[NotReady]
	co.mu.Unlock()
	a := []slog.Attr{slog.String("phase", p.String()), slog.String("from", prev.String()),
		slog.Duration("in_prev", spent)}
	if !t0.IsZero() {
		a = append(a, slog.Duration("since_signal", now.Sub(t0)))
	}
	if co.cfg.Drainer != nil {
		a = append(a, slog.Int64("connections", co.cfg.Drainer.Live()))
	}
	a = append(a, attrs...)
	lvl := slog.LevelInfo
	if p == Forcing {
		lvl = slog.LevelWarn
	}
	co.log.LogAttrs(context.Background(), lvl, "drain phase", a...)
}

// RunHandoff is Run after a restart: a successor process accepts on the
// same listening sockets already, so there is no lame-duck delay (load
// balancers see no change of readiness on the shared sockets).
func (co *Coordinator) RunHandoff(stop <-chan os.Signal) Result {
	co.mu.Lock()
	co.noDelay = true
	co.mu.Unlock()
	return co.Run(stop)
}

// Run runs the drain from the signal to Done. stop delivers a second
// signal, which ends the delay or the wait at once and aborts what is
// left. Run returns once nothing is left (or the rest was aborted); it
// does not stop the engine, the caller does that afterwards. Run runs
// once; later calls return at once.
func (co *Coordinator) Run(stop <-chan os.Signal) Result {
	co.mu.Lock()
	started := co.phase != Serving
	co.mu.Unlock()
	if started {
		return Result{}
	}
	t := co.cfg.Drainer
	res := Result{}
	wait := co.cfg.Delay
	if co.noDelay {
		wait = 0
	}
	co.enter(NotReady, slog.Duration("delay", wait), slog.Duration("deadline", co.cfg.Timeout))
	if co.cfg.SetReady != nil {
		co.cfg.SetReady(false)
	}
	if wait > 0 {
		delay := time.NewTimer(wait)
		select {
		case <-delay.C:
		case sig := <-stop:
			delay.Stop()
			res.Forced = true
			co.log.Warn("second signal during the lame-duck delay: stopping now", "signal", sig.String())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), co.cfg.Timeout)
	defer cancel()
	co.enter(StopAccepting)
	if err := t.StopAccepting(ctx); err != nil {
		co.log.Warn("drain: not every loop stopped accepting", "err", err)
	}
	if !res.Forced {
		co.enter(Draining)
		if err := t.DrainConnections(ctx); err != nil {
			co.log.Warn("drain: not every loop answered", "err", err)
		}
		select {
		case <-t.Idle():
		case <-ctx.Done():
			res.Forced = true
			co.log.Warn("drain deadline reached", "left", t.Live())
		case sig := <-stop:
			res.Forced = true
			co.log.Warn("second signal: stopping now", "signal", sig.String(), "left", t.Live())
		}
	}
	if res.Forced {
		co.enter(Forcing)
		fctx, fcancel := context.WithTimeout(context.Background(), forceWait)
		n, err := t.ForceClose(fctx)
		fcancel()
		if err != nil {
			co.log.Error("drain: aborting the rest", "err", err)
		}
		res.Left = n
		if co.forcedConns != nil {
			co.forcedConns.Add(int(n))
		}
	}
	if co.drains[0] != nil {
		if res.Forced {
			co.drains[1].Inc()
		} else {
			co.drains[0].Inc()
		}
	}
	co.enter(Done, slog.Bool("forced", res.Forced), slog.Int64("aborted", res.Left))
	co.mu.Lock()
	now := co.entered[Done]
	for p := NotReady; p < Done; p++ {
		res.Phases[p] = co.spentLocked(p, now)
	}
	res.Duration = now.Sub(co.entered[NotReady])
	co.mu.Unlock()
	return res
}
