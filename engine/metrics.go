package engine

import (
	"fmt"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/tlsio"
)

// engineMetrics holds pointers to every engine metric, created once at
// start-up; hot paths never format a metric name. Gauges are callbacks that
// read per-loop atomics at scrape time.
type engineMetrics struct {
	accepted      *metrics.Counter
	rejected      *metrics.Counter
	evicted       [numAdmKinds]*metrics.Counter
	parked        *metrics.Counter
	spared        *metrics.Counter
	pauses        *metrics.Counter
	detached      *metrics.Counter
	conn          *diag.ConnMetrics // the lifecycle families (states, outcomes, closes)
	in, out       [2]*metrics.Counter
	dials         [3]*metrics.Counter
	dialsInFlight atomic.Int64

	tlsHandshakes      [len(hsResults)]*metrics.Counter
	tlsHandshakeDur    *metrics.PrometheusHistogram
	upTLSHandshakes    [3]*metrics.Counter
	proxyProtoRes      [len(ppResults)]*metrics.Counter
	upTLSHandshakeDur  *metrics.PrometheusHistogram
	tlsPeerCloseNotify *metrics.Counter
	// By TLS engine (tlsio.EngineOf): [path][hsOK..hsTimeout], and
	// failures by reason.
	tlsByPath    [2][3]*metrics.Counter
	tlsErrByPath [2]map[string]*metrics.Counter
}

// tlsPaths are the label values of path, indexes of tlsByPath.
var tlsPaths = [2]string{tlsio.EngineNative, tlsio.EngineStdlib}

func pathIndex(engine string) int {
	if engine == tlsio.EngineNative {
		return 0
	}
	return 1
}

// TLS handshake results, indexes of tlsHandshakes.
const (
	hsOK = iota
	hsError
	hsTimeout
	hsRejected
	hsFirstByteTimeout
	hsEvicted
)

var hsResults = [...]string{"ok", "error", "timeout", "rejected", "first_byte_timeout", "evicted"}

const (
	dialOK = iota
	dialError
	dialTimeout
)

func newEngineMetrics(e *Engine) *engineMetrics {
	s := e.set
	m := &engineMetrics{}
	m.accepted = s.NewCounter(`sluice_connections_accepted_total`)
	m.rejected = s.NewCounter(`sluice_connections_rejected_total{reason="max_conns"}`)
	m.evicted[admWaiting] = s.NewCounter(`sluice_connections_evicted_total{reason="max_conns"}`)
	m.evicted[admHandshake] = s.NewCounter(`sluice_connections_evicted_total{reason="max_handshakes"}`)
	m.parked = s.NewCounter(`sluice_tls_handshakes_parked_total`)
	m.spared = s.NewCounter(`sluice_tls_handshakes_spared_total`)
	m.pauses = s.NewCounter(`sluice_read_pauses_total`)
	m.detached = s.NewCounter(`sluice_half_closed_by_peer_total`)
	m.conn = diag.NewConnMetrics(s, func(side diag.Side, st diag.State) int64 {
		var n int64
		for _, l := range e.Loops() {
			n += l.stateCount[side][st].Load()
		}
		return n
	})
	for side := diag.Downstream; side <= diag.Upstream; side++ {
		dir := [2]string{"sluice_downstream", "sluice_upstream"}[side]
		m.in[side] = s.NewCounter(dir + `_bytes_read_total`)
		m.out[side] = s.NewCounter(dir + `_bytes_written_total`)
	}
	for i, r := range []string{"ok", "error", "timeout"} {
		m.dials[i] = s.NewCounter(fmt.Sprintf(`sluice_upstream_dials_total{result=%q}`, r))
	}
	for i, r := range hsResults {
		m.tlsHandshakes[i] = s.NewCounter(fmt.Sprintf(`sluice_tls_handshakes_total{result=%q}`, r))
	}
	m.tlsHandshakeDur = s.NewPrometheusHistogramExt(`sluice_tls_handshake_duration_seconds`, diag.LatencyBuckets)
	for p, path := range tlsPaths {
		for i, r := range []string{"ok", "error", "timeout"} {
			m.tlsByPath[p][i] = s.NewCounter(fmt.Sprintf(`sluice_tls_engine_handshakes_total{path=%q,result=%q}`, path, r))
		}
		m.tlsErrByPath[p] = make(map[string]*metrics.Counter)
		for _, r := range tlsReasons {
			m.tlsErrByPath[p][r] = s.NewCounter(fmt.Sprintf(`sluice_tls_engine_errors_total{path=%q,reason=%q}`, path, r))
		}
	}
	for i, r := range []string{"ok", "error", "timeout"} {
		m.upTLSHandshakes[i] = s.NewCounter(fmt.Sprintf(`sluice_upstream_tls_handshakes_total{result=%q}`, r))
	}
	m.upTLSHandshakeDur = s.NewPrometheusHistogramExt(`sluice_upstream_tls_handshake_duration_seconds`, diag.LatencyBuckets)
	for i, r := range ppResults {
		m.proxyProtoRes[i] = s.NewCounter(fmt.Sprintf(`sluice_proxy_protocol_headers_total{result=%q}`, r))
	}
	m.tlsPeerCloseNotify = s.NewCounter(`sluice_tls_peer_close_notify_total`)
	s.NewGauge(`sluice_tls_handshakes_in_flight`, func() float64 { return float64(e.hsInFlight.Load()) })
	s.NewGauge(`sluice_upstream_dials_in_flight`, func() float64 { return float64(m.dialsInFlight.Load()) })
	s.NewGauge(`sluice_output_buffered_bytes`, func() float64 {
		var n int64
		for _, l := range e.Loops() {
			n += l.buffered.Load()
		}
		return float64(n)
	})
	return m
}

func (m *engineMetrics) bytesIn(side diag.Side, n int)  { m.in[side].Add(n) }
func (m *engineMetrics) bytesOut(side diag.Side, n int) { m.out[side].Add(n) }

// PROXY protocol header results, indexes of proxyProtoRes: the two
// versions read, then the reasons a header was rejected.
var ppResults = [...]string{"v1", "v2", "missing", "bad_v1", "bad_v2", "timeout", "eof", "first_byte_timeout", "evicted"}

const (
	ppV1 = iota
	ppV2
)

func (m *engineMetrics) proxyProto(result int) { m.proxyProtoRes[result].Inc() }

func (m *engineMetrics) proxyProtoFailed(reason string) {
	for i, r := range ppResults {
		if r == reason {
			m.proxyProtoRes[i].Inc()
			return
		}
	}
}

func (m *engineMetrics) upTLSHandshake(result int, ns int64) {
	m.upTLSHandshakes[result].Inc()
	if result == hsOK {
		m.upTLSHandshakeDur.Update(float64(ns) / 1e9)
	}
}

// tlsReasons are the tlsio reasons a client connection can fail with.
var tlsReasons = []string{tlsio.ReasonNotTLS, tlsio.ReasonBadRecord, tlsio.ReasonHandshake,
	tlsio.ReasonHandshakeEOF, tlsio.ReasonPeerAlert, tlsio.ReasonTruncated}

// tlsPath counts a client handshake's end by the engine that ran it.
func (m *engineMetrics) tlsPath(engine string, result int) {
	if result <= hsTimeout {
		m.tlsByPath[pathIndex(engine)][result].Inc()
	}
}

// tlsPathError counts a client connection's TLS failure by engine.
func (m *engineMetrics) tlsPathError(engine, reason string) {
	if c := m.tlsErrByPath[pathIndex(engine)][reason]; c != nil {
		c.Inc()
	}
}

func (m *engineMetrics) tlsHandshake(result int, ns int64) {
	m.tlsHandshakes[result].Inc()
	if result == hsOK {
		m.tlsHandshakeDur.Update(float64(ns) / 1e9)
	}
}

// TLSErrorCounter returns a tlsio.ServerConfig.CountError hook counting bad
// TLS input by reason in s as sluice_tls_errors_total{reason}. Counters for
// the known reasons exist from the start, so the hook never formats a name
// for them.
func TLSErrorCounter(s *metrics.Set) func(reason string) {
	known := map[string]*metrics.Counter{}
	for _, r := range []string{tlsio.ReasonNotTLS, tlsio.ReasonBadRecord, tlsio.ReasonHandshake,
		tlsio.ReasonHandshakeEOF, tlsio.ReasonPeerAlert, tlsio.ReasonTruncated} {
		known[r] = s.NewCounter(fmt.Sprintf(`sluice_tls_errors_total{reason=%q}`, r))
	}
	return func(reason string) {
		if c := known[reason]; c != nil {
			c.Inc()
			return
		}
		s.GetOrCreateCounter(fmt.Sprintf(`sluice_tls_errors_total{reason=%q}`, reason)).Inc()
	}
}
