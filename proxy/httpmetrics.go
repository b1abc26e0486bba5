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

	// [proto][code]; proto 0 is HTTP/1.0, 1 is HTTP/1.1, 2 is HTTP/2.
	reqs      [3][600]atomic.Pointer[metrics.Counter]
	reqDur    *metrics.Histogram
	upHeadDur *metrics.Histogram
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
	hm := &httpMetrics{
		set:       set,
		reqDur:    set.GetOrCreateHistogram(`sluice_http_request_duration_seconds`),
		upHeadDur: set.GetOrCreateHistogram(`sluice_http_upstream_header_duration_seconds`),
		retries:   set.GetOrCreateCounter(`sluice_http_retries_total`),
		h2Stalls:  set.GetOrCreateCounter(`sluice_http2_flow_control_stalls_total`),
	}
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

// request counts one response of code to a client speaking HTTP/1.minor
// (minor 0 or 1) or HTTP/2 (protoH2).
func (hm *httpMetrics) request(minor, code int) {
	if minor != 0 && minor != protoH2 {
		minor = 1
	}
	if code < 0 || code >= 600 {
		code = 0
	}
	p := &hm.reqs[minor][code]
	c := p.Load()
	if c == nil {
		proto := [3]string{"http/1.0", "http/1.1", "h2"}[minor]
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

// registerUpstream creates u's metrics, labelled a (host:port, or
// h2c://host:port for an h2c upstream).
func (hm *httpMetrics) registerUpstream(u *Upstream, a string) {
	s := hm.set
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
	case errDial, errDialTimeout, errUpTLS:
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
