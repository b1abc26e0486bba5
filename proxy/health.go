package proxy

import (
	"time"

	"github.com/sluice-proxy/sluice/proxy/header"
	"github.com/sluice-proxy/sluice/proxy/upstream"
)

// Health checks are package upstream's (Passive, Checker); this is what
// the proxy gives them: its settings and the probe requests.

// failed records an upstream-side failure of an attempt.
func (h *HTTP) failed(u *Upstream, now int64) { h.passive.Failed(u, now) }

// succeeded records a complete exchange.
func (h *HTTP) succeeded(u *Upstream) { h.passive.Succeeded(u) }

// newChecker returns u's active health checker on loop l, the i-th of n
// (their first probes are spread over the interval).
func (h *HTTP) newChecker(u *Upstream, i, n int) *upstream.Checker {
	cfg := upstream.CheckConfig{
		Interval: h.cfg.HealthInterval,
		Timeout:  h.cfg.HealthTimeout,
		Passes:   h.cfg.HealthPasses,
		Fails:    h.cfg.HealthFails,
		H2:       h.h2ucfg,
		Log:      h.cfg.Logger,
		Closed:   h.closed.Load,
	}
	// An h2c-only upstream (gRPC) cannot answer an HTTP/1.1 GET.
	probe := header.Own{Method: "GET", Path: h.cfg.HealthPath, Host: u.Host(), Scheme: u.Scheme(), UserAgent: "sluice-health-check"}
	if u.H2() {
		cfg.H2Request = probe.H2()
	} else {
		cfg.Request = probe.AppendH1(nil)
	}
	first := h.cfg.HealthInterval * time.Duration(i) / time.Duration(n)
	return upstream.NewChecker(u, h.engLoops[i%len(h.engLoops)], first, cfg)
}
