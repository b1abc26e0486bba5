package diag

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Source is what the admin server reads connections from: the engine
// (engine.Engine implements it), without diag importing engine.
type Source interface {
	// Snapshot returns the live connections and the recent close traces.
	Snapshot(ctx context.Context) (Snapshot, error)
	// RecentCloses returns the recent close traces that keep accepts
	// (nil: all), newest first.
	RecentCloses(ctx context.Context, keep func(*Trace) bool) ([]TraceInfo, error)
}

// Admin is the admin listener: metrics, health, readiness, live
// connections and pprof. It uses net/http: it is off the data path.
type Admin struct {
	srv   *http.Server
	ln    net.Listener
	src   Source
	ready atomic.Bool
	sets  []*metrics.Set
	log   *slog.Logger
	drain atomic.Pointer[func() any]
}

// NewAdmin listens on addr. sets are written to /metrics after the
// process metrics.
func NewAdmin(addr string, src Source, log *slog.Logger, sets ...*metrics.Set) (*Admin, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return NewAdminOn(ln, src, log, sets...), nil
}

// NewAdminOn serves on ln (a socket inherited from a restart's
// predecessor); Close closes it.
func NewAdminOn(ln net.Listener, src Source, log *slog.Logger, sets ...*metrics.Set) *Admin {
	// # HELP and # TYPE for every family (metrichelp.go fills in the text).
	metrics.ExposeMetadata(true)
	a := &Admin{ln: ln, src: src, sets: sets, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", a.metrics)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", a.readyz)
	mux.HandleFunc("/debug/connections", a.connections)
	mux.HandleFunc("/debug/shutdowns", a.shutdowns)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "sluice admin: /metrics /healthz /readyz /debug/connections /debug/shutdowns /debug/pprof/\n")
	})
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return a
}

// Listener is the admin socket (to hand to a restart's successor).
func (a *Admin) Listener() net.Listener { return a.ln }

// Addr is the address the admin listener is bound to.
func (a *Admin) Addr() string { return a.ln.Addr().String() }

// Serve serves until Close.
func (a *Admin) Serve() error {
	err := a.srv.Serve(a.ln)
	if err == http.ErrServerClosed {
		return nil
	}
	return err
}

// SetDrainStatus gives /debug/connections the process drain's status
// (its phase and the phases entered), under "drain".
func (a *Admin) SetDrainStatus(fn func() any) { a.drain.Store(&fn) }

// SetReady sets what /readyz answers: 200 when ready, 503 otherwise.
func (a *Admin) SetReady(ok bool) { a.ready.Store(ok) }

// Close stops the admin listener.
func (a *Admin) Close(ctx context.Context) error { return a.srv.Shutdown(ctx) }

func (a *Admin) readyz(w http.ResponseWriter, r *http.Request) {
	if !a.ready.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "not ready\n")
		return
	}
	io.WriteString(w, "ready\n")
}

func (a *Admin) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var b bytes.Buffer
	metrics.WriteProcessMetrics(&b)
	for _, s := range a.sets {
		s.WritePrometheus(&b)
	}
	w.Write(exposition(b.Bytes()))
}

func (a *Admin) connections(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	snap, err := a.src.Snapshot(ctx)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		// Partial: a loop did not answer in time. Say so, keep the rest.
		w.Header().Set("X-Sluice-Partial", err.Error())
	}
	out := struct {
		Snapshot
		Drain any `json:"drain,omitempty"`
	}{Snapshot: snap}
	if fn := a.drain.Load(); fn != nil {
		out.Drain = (*fn)()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		a.log.Debug("admin: writing /debug/connections", "err", err)
	}
}

// shutdowns serves the ring of recent close traces on its own: who closed
// first, the bytes at each step of the close. ?outcome=a,b keeps those
// outcomes, ?side=downstream|upstream one side; an unknown value is 400.
func (a *Admin) shutdowns(w http.ResponseWriter, r *http.Request) {
	var outcomes []Outcome
	if q := r.URL.Query().Get("outcome"); q != "" {
		for _, name := range strings.Split(q, ",") {
			o, ok := ParseOutcome(name)
			if !ok {
				http.Error(w, "unknown outcome "+strconv.Quote(name), http.StatusBadRequest)
				return
			}
			outcomes = append(outcomes, o)
		}
	}
	side := r.URL.Query().Get("side")
	if side != "" && side != "downstream" && side != "upstream" {
		http.Error(w, "side must be downstream or upstream", http.StatusBadRequest)
		return
	}
	keep := func(t *Trace) bool {
		if side != "" && t.Side.String() != side {
			return false
		}
		if len(outcomes) == 0 {
			return true
		}
		for _, o := range outcomes {
			if t.Outcome == o {
				return true
			}
		}
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	traces, err := a.src.RecentCloses(ctx, keep)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.Header().Set("X-Sluice-Partial", err.Error())
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(struct {
		Closes []TraceInfo `json:"closes"`
	}{traces}); err != nil {
		a.log.Debug("admin: writing /debug/shutdowns", "err", err)
	}
}
