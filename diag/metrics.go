package diag

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
)

// Histogram upper bounds, in seconds (Prometheus le buckets):
// LatencyBuckets for handshakes, dials and close sequences (0.5 ms to
// 1 min), LifetimeBuckets for connection lifetimes and time in a state
// before the close (1 ms to 4 h: keep-alive and tunnels live long).
var (
	LatencyBuckets  = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	LifetimeBuckets = []float64{.001, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400}
	// pendingBuckets for bytes left to send when a close begins (0 to 16 MiB).
	pendingBuckets = []float64{0, 1 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20}
)

// ConnMetrics are the metric families named by the lifecycle vocabulary:
// connections open by state, closes by outcome, time in each state,
// lifetimes, close sequences, aborts. They are created once; the methods
// format no name and may be called from any goroutine (counters and
// histograms are atomic). The engine calls them at each transition.
type ConnMetrics struct {
	closes     [2][NumOutcomes]*metrics.Counter
	aborts     [2]*metrics.Counter
	abortBytes [2]*metrics.Counter
	state      [NumStates]*metrics.PrometheusHistogram // time spent in a state, by the state left
	lifetime   [2]*metrics.PrometheusHistogram
	closeSeq   *metrics.PrometheusHistogram // ShutdownInitiated to SocketClosed
	pending    *metrics.PrometheusHistogram // engine buffer bytes at ShutdownInitiated
}

// NewConnMetrics registers the families in s. open reports, at scrape
// time, how many connections of a side are in a state now.
func NewConnMetrics(s *metrics.Set, open func(Side, State) int64) *ConnMetrics {
	m := &ConnMetrics{}
	prefix := [2]string{"sluice_connection", "sluice_upstream_connection"}
	active := [2]string{"sluice_connections_active", "sluice_upstream_connections_active"}
	for side := Downstream; side <= Upstream; side++ {
		for o := Outcome(1); o < NumOutcomes; o++ {
			m.closes[side][o] = s.NewCounter(fmt.Sprintf(`%s_closes_total{outcome=%q}`, prefix[side], o))
		}
		m.aborts[side] = s.NewCounter(prefix[side] + `_aborts_total`)
		m.abortBytes[side] = s.NewCounter(prefix[side] + `_abort_discarded_bytes_total`)
		m.lifetime[side] = s.NewPrometheusHistogramExt(prefix[side]+`_duration_seconds`, LifetimeBuckets)
		for st := State(0); st < SocketClosed; st++ {
			side, st := side, st
			s.NewGauge(fmt.Sprintf(`%s{state=%q}`, active[side], st), func() float64 { return float64(open(side, st)) })
		}
	}
	// The close's states are its phases (time in ShutdownInitiated is the
	// flush, in BufferFlushed the close_notify, in Lingering the linger),
	// bounded by deadlines and often sub-millisecond: latency buckets.
	for st := State(0); st < SocketClosed; st++ {
		b := LifetimeBuckets
		if st >= ShutdownInitiated {
			b = LatencyBuckets
		}
		m.state[st] = s.NewPrometheusHistogramExt(fmt.Sprintf(`sluice_connection_state_duration_seconds{state=%q}`, st), b)
	}
	m.closeSeq = s.NewPrometheusHistogramExt(`sluice_close_sequence_duration_seconds`, LatencyBuckets)
	m.pending = s.NewPrometheusHistogramExt(`sluice_shutdown_pending_bytes`, pendingBuckets)
	return m
}

// Left observes the time a client connection spent in prev, which it
// left for next.
func (m *ConnMetrics) Left(side Side, prev, next State, spentNs int64) {
	if side == Downstream && prev < SocketClosed && next != prev {
		m.state[prev].Update(float64(spentNs) / 1e9)
	}
}

// ShutdownPending observes the engine buffer's bytes when a client
// connection's close began.
func (m *ConnMetrics) ShutdownPending(n int) { m.pending.Update(float64(n)) }

// Abort counts a reset and the bytes it threw away.
func (m *ConnMetrics) Abort(side Side, discarded int64) {
	m.aborts[side].Inc()
	m.abortBytes[side].Add(int(discarded))
}

// Aborts is how many connections of side were aborted.
func (m *ConnMetrics) Aborts(side Side) uint64 { return m.aborts[side].Get() }

// Closed counts a finished connection: its outcome, lifetime and, for a
// client connection, its close sequence.
func (m *ConnMetrics) Closed(t *Trace) {
	if t.Outcome > 0 && t.Outcome < NumOutcomes {
		m.closes[t.Side][t.Outcome].Inc()
	}
	end := t.Entered[SocketClosed]
	m.lifetime[t.Side].Update(float64(end-t.Entered[Created]) / 1e9)
	if s := t.Entered[ShutdownInitiated]; s != 0 && t.Side == Downstream {
		m.closeSeq.Update(float64(end-s) / 1e9)
	}
}

// Closes is how many connections of side ended with o.
func (m *ConnMetrics) Closes(side Side, o Outcome) uint64 { return m.closes[side][o].Get() }
