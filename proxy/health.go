package proxy

import (
	"time"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
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
	if u.H2() {
		cfg.H2Request = h2cHealthRequest(h, u)
	} else {
		cfg.Request = h1HealthRequest(h, u)
	}
	first := h.cfg.HealthInterval * time.Duration(i) / time.Duration(n)
	return upstream.NewChecker(u, h.engLoops[i%len(h.engLoops)], first, cfg)
}

// h1HealthRequest is the probe's request to an HTTP/1.1 upstream u.
func h1HealthRequest(h *HTTP, u *Upstream) []byte {
	b := h1.AppendRequestLine(nil, "GET", h.cfg.HealthPath, 1)
	b = h1.AppendHeader(b, "Host", u.Host())
	b = h1.AppendHeader(b, "User-Agent", "sluice-health-check")
	b = h1.AppendHeader(b, "Connection", "close")
	return h1.AppendEndOfHead(b)
}
