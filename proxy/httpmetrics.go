package proxy

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// HTTP proxy metrics. Names and label sets are formatted once: at start-up
// for everything per upstream, and the first time a status code or a
// parse-error reason is seen for the rest, then cached.
//
//	sluice_http_requests_total{proto,code}                 responses sent to clients (code "000": none)
//	sluice_http_request_duration_seconds                   request head complete to response end
//	sluice_http_upstream_header_duration_seconds           request sent upstream to response head
//	sluice_http_retries_total                              attempts repeated on another connection
//	sluice_http_request_errors_total{reason}               malformed requests, by h1 reason
//	sluice_http_response_errors_total{reason}              malformed upstream responses, by h1 reason
//	sluice_upstream_requests_total{upstream,result}        attempts: ok, dial_error, timeout, reset,
//	                                                       bad_response, aborted; retried counts retries
//	sluice_upstream_pool_connections{upstream,state}       idle (pooled) and busy connections
//	sluice_upstream_ejections_total{upstream}              passive health ejections
//	sluice_upstream_available{upstream}                    1 when the upstream can be picked
//	sluice_upstream_health_checks_total{upstream,result}   active checks: ok, fail
type httpMetrics struct {
	set *metrics.Set

	// [proto][code]; proto 0 is HTTP/1.0, 1 is HTTP/1.1.
	reqs      [2][600]atomic.Pointer[metrics.Counter]
	reqDur    *metrics.Histogram
	upHeadDur *metrics.Histogram
	retries   *metrics.Counter

	reqErrs, respErrs sync.Map // reason -> *metrics.Counter
}

// Upstream attempt results, indexes of upstreamMetrics.results.
const (
	resOK = iota
	resDialError
	resTimeout
	resReset
	resBadResponse
	resAborted
	resRetried
	numResults
)

var resultNames = [numResults]string{"ok", "dial_error", "timeout", "reset", "bad_response", "aborted", "retried"}

type upstreamMetrics struct {
	results    [numResults]*metrics.Counter
	ejections  *metrics.Counter
	checksOK   *metrics.Counter
	checksFail *metrics.Counter
}

// http returns the HTTP metrics of m's set. GetOrCreate keeps a second
// HTTP proxy on the same set (tests, a config reload) from panicking on a
// duplicate name.
func (m *Metrics) http() *httpMetrics {
	set := metrics.NewSet()
	if m != nil && m.set != nil {
		set = m.set
	}
	return &httpMetrics{
		set:       set,
		reqDur:    set.GetOrCreateHistogram(`sluice_http_request_duration_seconds`),
		upHeadDur: set.GetOrCreateHistogram(`sluice_http_upstream_header_duration_seconds`),
		retries:   set.GetOrCreateCounter(`sluice_http_retries_total`),
	}
}

// request counts one response of code to a client speaking HTTP/1.minor.
func (hm *httpMetrics) request(minor, code int) {
	if minor != 0 {
		minor = 1
	}
	if code < 0 || code >= 600 {
		code = 0
	}
	p := &hm.reqs[minor][code]
	c := p.Load()
	if c == nil {
		proto := [2]string{"http/1.0", "http/1.1"}[minor]
		c = hm.set.GetOrCreateCounter(fmt.Sprintf(`sluice_http_requests_total{proto=%q,code="%03d"}`, proto, code))
		p.Store(c)
	}
	c.Inc()
}

func countReason(m *sync.Map, set *metrics.Set, name, reason string) {
	if c, ok := m.Load(reason); ok {
		c.(*metrics.Counter).Inc()
		return
	}
	c := set.GetOrCreateCounter(fmt.Sprintf(`%s{reason=%q}`, name, reason))
	m.Store(reason, c)
	c.Inc()
}

func (hm *httpMetrics) requestError(reason string) {
	countReason(&hm.reqErrs, hm.set, "sluice_http_request_errors_total", reason)
}

func (hm *httpMetrics) responseError(reason string) {
	countReason(&hm.respErrs, hm.set, "sluice_http_response_errors_total", reason)
}

// registerUpstream creates u's metrics.
func (hm *httpMetrics) registerUpstream(u *Upstream) {
	s, a := hm.set, u.addr
	for i, r := range resultNames {
		u.m.results[i] = s.GetOrCreateCounter(fmt.Sprintf(`sluice_upstream_requests_total{upstream=%q,result=%q}`, a, r))
	}
	u.m.ejections = s.GetOrCreateCounter(fmt.Sprintf(`sluice_upstream_ejections_total{upstream=%q}`, a))
	u.m.checksOK = s.GetOrCreateCounter(fmt.Sprintf(`sluice_upstream_health_checks_total{upstream=%q,result="ok"}`, a))
	u.m.checksFail = s.GetOrCreateCounter(fmt.Sprintf(`sluice_upstream_health_checks_total{upstream=%q,result="fail"}`, a))
	s.GetOrCreateGauge(fmt.Sprintf(`sluice_upstream_pool_connections{upstream=%q,state="idle"}`, a),
		func() float64 { return float64(u.idleConns.Load()) })
	s.GetOrCreateGauge(fmt.Sprintf(`sluice_upstream_pool_connections{upstream=%q,state="busy"}`, a),
		func() float64 { return float64(u.busyConns.Load()) })
	s.GetOrCreateGauge(fmt.Sprintf(`sluice_upstream_available{upstream=%q}`, a), func() float64 {
		if u.Available() {
			return 1
		}
		return 0
	})
}

// resultFor maps an attempt's failure kind to its result label.
func resultFor(k errKind) int {
	switch k {
	case errNone:
		return resOK
	case errDial, errDialTimeout:
		return resDialError
	case errUpTimeout:
		return resTimeout
	case errUpBadResponse:
		return resBadResponse
	case errUpReset:
		return resReset
	}
	return resAborted
}
