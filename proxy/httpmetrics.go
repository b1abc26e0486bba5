package proxy

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/httpcodec/h2"
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
//	sluice_http_tunnels_active{proto}                      upgraded connections (HTTP/1.1) and WebSocket
//	                                                       streams (h2) relaying now (gauge)
//	sluice_http_tunnels_total{proto}                       tunnels opened
//
// HTTP/2 (client connections and h2c upstream connections), every series
// created at start-up:
//
//	sluice_http2_streams_active                            client streams open now (gauge)
//	sluice_http2_goaways_total{direction,code}             GOAWAY frames sent / received, by error code
//	sluice_http2_rst_streams_total{direction,code}         RST_STREAM frames sent / received, by error code
//	sluice_http2_flow_control_stalls_total                 writes cut short by a peer's window
//	sluice_http2_errors_total{reason}                      codec errors and tripped defenses, by token
//
// HTTP/2 requests count in sluice_http_requests_total with proto="h2".
type httpMetrics struct {
	set *metrics.Set

	noRoute   *routeUpMetrics // requests no route matched, or not parsed that far
	upHeadDur *metrics.PrometheusHistogram
	retries   *metrics.Counter

	reqErrs, respErrs, h2Errs sync.Map // reason -> *metrics.Counter

	h2Active atomic.Int64

	// Tunnels, by tunH1 and tunH2.
	tunActive [2]atomic.Int64
	tunTotal  [2]*metrics.Counter
	h2GoAways [2][h2CodeSlots]*metrics.Counter // [direction][code]
	h2Resets  [2][h2CodeSlots]*metrics.Counter
	h2Stalls  *metrics.Counter
}

// Tunnel kinds: an upgraded HTTP/1.1 connection, a WebSocket stream.
const (
	tunH1 = iota
	tunH2
)

func (m *httpMetrics) tunnelStart(k int) { m.tunTotal[k].Inc(); m.tunActive[k].Add(1) }
func (m *httpMetrics) tunnelEnd(k int)   { m.tunActive[k].Add(-1) }

// HTTP/2 frame directions, the first index of h2GoAways and h2Resets.
const (
	dirSent = iota
	dirReceived
)

// h2CodeSlots matches h2.CodeCounts: one slot per RFC 9113 error code and
// a last one for codes past the RFC's list.
const h2CodeSlots = len(h2.CodeCounts{})

// Upstream attempt results, indexes of Upstream.M.Results.
const (
	resOK = iota
	resDialError
	resTimeout
	resReset
	resBadResponse
	resAborted
	resRetried
	resQueueFull
	resQueueTimeout
	numResults
)

var resultNames = [numResults]string{"ok", "dial_error", "timeout", "reset", "bad_response", "aborted", "retried", "queue_full", "queue_timeout"}

// http returns the HTTP metrics of m's set. GetOrCreate keeps a second
// HTTP proxy on the same set (tests, a config reload) from panicking on a
// duplicate name.
func (m *Metrics) http() *httpMetrics {
	set := metrics.NewSet()
	if m != nil && m.set != nil {
		set = m.set
	}
	hm := &httpMetrics{
		set:       set,
		upHeadDur: set.GetOrCreatePrometheusHistogramExt(`sluice_http_upstream_header_duration_seconds`, requestBuckets),
		retries:   set.GetOrCreateCounter(`sluice_http_retries_total`),
		h2Stalls:  set.GetOrCreateCounter(`sluice_http2_flow_control_stalls_total`),
	}
	hm.noRoute = hm.routeUp("", "")
	set.GetOrCreateGauge(`sluice_http2_streams_active`, func() float64 { return float64(hm.h2Active.Load()) })
	for i, proto := range [2]string{"http/1.1", "h2"} {
		hm.tunTotal[i] = set.GetOrCreateCounter(fmt.Sprintf(`sluice_http_tunnels_total{proto=%q}`, proto))
		set.GetOrCreateGauge(fmt.Sprintf(`sluice_http_tunnels_active{proto=%q}`, proto), func() float64 { return float64(hm.tunActive[i].Load()) })
	}
	dirs := [2]string{"sent", "received"}
	for d, dir := range dirs {
		for i := range h2CodeSlots {
			code := h2.ErrCode(i).String()
			if i == h2CodeSlots-1 {
				code = "other"
			}
			hm.h2GoAways[d][i] = set.GetOrCreateCounter(fmt.Sprintf(`sluice_http2_goaways_total{direction=%q,code=%q}`, dir, code))
			hm.h2Resets[d][i] = set.GetOrCreateCounter(fmt.Sprintf(`sluice_http2_rst_streams_total{direction=%q,code=%q}`, dir, code))
		}
	}
	return hm
}

// h2Error counts an HTTP/2 codec error or tripped defense (h2.Config
// CountError).
func (hm *httpMetrics) h2Error(reason string) {
	countReason(&hm.h2Errs, hm.set, "sluice_http2_errors_total", reason)
}

// h2Stats adds what an HTTP/2 connection's counters gained since prev,
// and makes prev the current value.
func (hm *httpMetrics) h2Stats(cur *h2.Stats, prev *h2.Stats) {
	addCodes := func(cs *[h2CodeSlots]*metrics.Counter, cur, prev *h2.CodeCounts) {
		for i := range cur {
			if d := cur[i] - prev[i]; d > 0 {
				cs[i].AddInt64(int64(d))
			}
		}
	}
	if cur.GoAwaySent != prev.GoAwaySent {
		addCodes(&hm.h2GoAways[dirSent], &cur.GoAwaySent, &prev.GoAwaySent)
	}
	if cur.GoAwayReceived != prev.GoAwayReceived {
		addCodes(&hm.h2GoAways[dirReceived], &cur.GoAwayReceived, &prev.GoAwayReceived)
	}
	if cur.ResetsSent != prev.ResetsSent {
		addCodes(&hm.h2Resets[dirSent], &cur.ResetsSent, &prev.ResetsSent)
	}
	if cur.ResetsReceived != prev.ResetsReceived {
		addCodes(&hm.h2Resets[dirReceived], &cur.ResetsReceived, &prev.ResetsReceived)
	}
	if d := cur.FlowStalls - prev.FlowStalls; d > 0 {
		hm.h2Stalls.AddInt64(int64(d))
	}
	*prev = *cur
}

// protoH2 is the request metrics' index for HTTP/2 (0 and 1 are HTTP/1.minor).
const protoH2 = 2

// requestBuckets are the upper bounds, in seconds, of the request and
// upstream latency histograms: 0.5 ms to 2 minutes.
var requestBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// routeUpMetrics are the request counters and the duration histogram of
// one route and one of its upstreams: bounded by the configuration, never
// by what clients send. Counters by (proto, code) are created the first
// time a pair is seen and kept in a small lock-free table.
type routeUpMetrics struct {
	labels string // route="...",upstream="..."
	set    *metrics.Set
	dur    *metrics.PrometheusHistogram
	codes  [32]atomic.Pointer[codeCounter]
}

type codeCounter struct {
	key uint32 // proto<<16 | code
	c   *metrics.Counter
}

// routeUp creates (or finds, after a reload) the metrics of route name
// and upstream label up.
func (hm *httpMetrics) routeUp(name, up string) *routeUpMetrics {
	l := fmt.Sprintf(`route=%q,upstream=%q`, name, up)
	return &routeUpMetrics{labels: l, set: hm.set,
		dur: hm.set.GetOrCreatePrometheusHistogramExt(`sluice_http_request_duration_seconds{`+l+`}`, requestBuckets)}
}

// counter returns the requests_total counter of (proto, code), without
// formatting a name once the pair has been seen.
func (rm *routeUpMetrics) counter(proto, code int) *metrics.Counter {
	key := uint32(proto)<<16 | uint32(code)
	h := (key * 2654435761) >> 27 // 5 bits: a slot of 32
	for i := range uint32(len(rm.codes)) {
		slot := &rm.codes[(h+i)%uint32(len(rm.codes))]
		cc := slot.Load()
		if cc == nil {
			cc = &codeCounter{key: key, c: rm.newCounter(proto, code)}
			if slot.CompareAndSwap(nil, cc) {
				return cc.c
			}
			cc = slot.Load() // another loop took the slot first
		}
		if cc.key == key {
			return cc.c
		}
	}
	return rm.newCounter(proto, code) // 32 pairs seen: name formatted each time
}

func (rm *routeUpMetrics) newCounter(proto, code int) *metrics.Counter {
	p := [3]string{"http/1.0", "http/1.1", "h2"}[proto]
	return rm.set.GetOrCreateCounter(fmt.Sprintf(`sluice_http_requests_total{%s,proto=%q,code="%03d"}`, rm.labels, p, code))
}

// request counts one response of code to a client speaking HTTP/1.minor
// (minor 0 or 1) or HTTP/2 (protoH2), served by route rt (nil: none)
// from upstream u (nil: none reached), and its duration.
func (hm *httpMetrics) request(rt *route, u *Upstream, minor, code int, seconds float64) {
	if minor != 0 && minor != protoH2 {
		minor = 1
	}
	if code < 0 || code >= 600 {
		code = 0
	}
	rm := hm.noRoute
	if rt != nil {
		rm = rt.m[len(rt.ups)]
		for i, ru := range rt.ups {
			if ru == u {
				rm = rt.m[i]
				break
			}
		}
	}
	rm.counter(minor, code).Inc()
	rm.dur.Update(seconds)
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

// registerUpstream creates u's metrics, labelled a (host:port, or
// h2c://host:port for an h2c upstream).
func (hm *httpMetrics) registerUpstream(u *Upstream, a string) {
	s := hm.set
	u.M.Results = make([]*metrics.Counter, numResults)
	for i, r := range resultNames {
		u.M.Results[i] = s.GetOrCreateCounter(fmt.Sprintf(`sluice_upstream_requests_total{upstream=%q,result=%q}`, a, r))
	}
	u.M.Ejections = s.GetOrCreateCounter(fmt.Sprintf(`sluice_upstream_ejections_total{upstream=%q}`, a))
	u.M.ChecksOK = s.GetOrCreateCounter(fmt.Sprintf(`sluice_upstream_health_checks_total{upstream=%q,result="ok"}`, a))
	u.M.ChecksFail = s.GetOrCreateCounter(fmt.Sprintf(`sluice_upstream_health_checks_total{upstream=%q,result="fail"}`, a))
	s.GetOrCreateGauge(fmt.Sprintf(`sluice_upstream_pool_connections{upstream=%q,state="idle"}`, a),
		func() float64 { return float64(u.IdleConns.Load()) })
	s.GetOrCreateGauge(fmt.Sprintf(`sluice_upstream_pool_connections{upstream=%q,state="busy"}`, a),
		func() float64 { return float64(u.BusyConns.Load()) })
	if u.MaxConns > 0 {
		s.GetOrCreateGauge(fmt.Sprintf(`sluice_upstream_connections_in_use{upstream=%q}`, a),
			func() float64 { return float64(u.InUse.Load()) })
		s.GetOrCreateGauge(fmt.Sprintf(`sluice_upstream_queued_requests{upstream=%q}`, a),
			func() float64 { return float64(u.Queued.Load()) })
	}
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
	case errDial, errDialTimeout, errUpTLS:
		return resDialError
	case errUpTimeout:
		return resTimeout
	case errUpBadResponse:
		return resBadResponse
	case errUpReset:
		return resReset
	case errQueueFull:
		return resQueueFull
	case errQueueTimeout:
		return resQueueTimeout
	}
	return resAborted
}
