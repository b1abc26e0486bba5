package shutdown

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/engine"
)

// Config configures a process drain.
type Config struct {
	Engine *engine.Engine
	// SetReady flips readiness (the admin /readyz); called with false first.
	SetReady func(bool)
	// Timeout is the drain deadline: connections still open then are
	// aborted as forced_at_deadline.
	Timeout time.Duration
	Logger  *slog.Logger
	Metrics *metrics.Set
}

// Result says how a drain ended.
type Result struct {
	Forced   bool          // the deadline (or a second signal) cut it short
	Left     int64         // connections aborted at the end
	Duration time.Duration // from the first signal to the last close
}

// Drain runs the process drain, after net/http's Server.Shutdown and caddy's
// Stop: readiness goes 503, the listeners stop accepting, every connection
// is asked to finish its current work and close (engine.Handler.OnDrain:
// HTTP/1.1 says Connection: close, HTTP/2 sends GOAWAY, idle connections
// close at once), and Drain returns as soon as none is left. At the deadline,
// or when stop fires (a second signal), the connections still open are
// aborted, each logged and counted as forced_at_deadline.
//
// Drain does not stop the engine; the caller does that afterwards.
func Drain(cfg Config, stop <-chan os.Signal) Result {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	var forced *metrics.Counter
	if cfg.Metrics != nil {
		forced = cfg.Metrics.GetOrCreateCounter(`sluice_drains_total{result="forced"}`)
		cfg.Metrics.GetOrCreateCounter(`sluice_drains_total{result="clean"}`)
	}
	if cfg.SetReady != nil {
		cfg.SetReady(false)
	}
	e := cfg.Engine
	log.Info("drain started", "connections", e.Live(), "deadline", cfg.Timeout)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	if err := e.Drain(ctx); err != nil {
		log.Warn("drain: not every loop answered", "err", err)
	}
	res := Result{}
	select {
	case <-e.Idle():
	case <-ctx.Done():
		res.Forced = true
		log.Warn("drain deadline reached", "left", e.Live())
	case sig := <-stop:
		res.Forced = true
		log.Warn("second signal: stopping now", "signal", sig.String(), "left", e.Live())
	}
	if res.Forced {
		res.Left = e.Live()
		if forced != nil {
			forced.Inc()
		}
		actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer acancel()
		if err := e.AbortAll(actx, engine.ForcedAtDeadline); err != nil {
			log.Error("drain: aborting the rest", "err", err)
		}
	} else if cfg.Metrics != nil {
		cfg.Metrics.GetOrCreateCounter(`sluice_drains_total{result="clean"}`).Inc()
	}
	res.Duration = time.Since(start)
	log.Info("drain finished", "forced", res.Forced, "aborted", res.Left, "duration", res.Duration)
	return res
}
