package engine

import (
	"context"
	"crypto/tls"
	"sort"
)

// ConnInfo describes one live connection for /debug/connections.
type ConnInfo struct {
	ID             string  `json:"id"`
	Side           string  `json:"side"`
	Listener       string  `json:"listener,omitempty"`
	Loop           int     `json:"loop"`
	Local          string  `json:"local"`
	Remote         string  `json:"remote"`
	Balancer       string  `json:"balancer,omitempty"` // the peer that sent a PROXY protocol header naming Remote
	State          string  `json:"state"`
	AgeSeconds     float64 `json:"age_seconds"`
	InStateSeconds float64 `json:"in_state_seconds"`
	BytesIn        int64   `json:"bytes_in"`
	BytesOut       int64   `json:"bytes_out"`
	Pending        int     `json:"bytes_pending"`
	ReadPaused     bool    `json:"read_paused,omitempty"`
	PeerEOF        bool    `json:"peer_eof,omitempty"`
	KernelQueue    int     `json:"kernel_queue_bytes"` // SIOCOUTQ: sent but not yet ACKed, or not yet sent
	// Draining, while the process drains, says what this connection
	// waits for: "handshake", "response" (its handler's work: a request
	// in flight, HTTP/2 streams, a relay), "peer_read" (bytes the peer
	// has not read yet) or "fin" (the peer's FIN after ours).
	Draining string `json:"draining,omitempty"`
	// WaitingFor is what admission waits for: "first_byte", "proxy_header",
	// "handshake" or "handshake_slot" (parked); StalledSeconds the time since accept (waiting) or
	// since the handshake's last progress, the keys evictions go by.
	WaitingFor     string   `json:"waiting_for,omitempty"`
	StalledSeconds float64  `json:"stalled_seconds,omitempty"`
	TLS            *TLSInfo `json:"tls,omitempty"`
}

// TLSInfo is what a TLS connection negotiated.
type TLSInfo struct {
	Version string `json:"version"`
	Cipher  string `json:"cipher"`
	ALPN    string `json:"alpn,omitempty"`
	SNI     string `json:"sni,omitempty"`
	Resumed bool   `json:"resumed,omitempty"`
}

// TraceInfo is a finished connection's close trace.
type TraceInfo struct {
	ID        string             `json:"id"`
	Side      string             `json:"side"`
	Listener  string             `json:"listener,omitempty"`
	Remote    string             `json:"remote"`
	Outcome   string             `json:"outcome"`
	Cause     string             `json:"cause,omitempty"`
	BytesIn   int64              `json:"bytes_in"`
	BytesOut  int64              `json:"bytes_out"`
	Discarded int64              `json:"bytes_discarded,omitempty"`
	Duration  float64            `json:"duration_seconds"`
	States    map[string]float64 `json:"states_seconds"` // seconds after Created
	Delivered *float64           `json:"delivered_seconds,omitempty"`
	Close     string             `json:"close_sequence,omitempty"`
	// Who ended first: "peer" (its FIN, close_notify or reset came
	// before sluice began the close) or "sluice".
	ClosedFirst string        `json:"closed_first"`
	PeerEnded   string        `json:"peer_ended,omitempty"`         // fin, close_notify or reset
	PeerEndedAt *float64      `json:"peer_ended_seconds,omitempty"` // after Created
	Shutdown    *ShutdownInfo `json:"shutdown,omitempty"`
}

// ShutdownInfo is the close sequence of a trace, with the bytes at each
// step.
type ShutdownInfo struct {
	StateAtShutdown string           `json:"state_at_shutdown"`
	PendingBytes    int              `json:"pending_bytes"`      // engine buffer at ShutdownInitiated
	KernelQueue     int              `json:"kernel_queue_bytes"` // kernel send queue then
	BytesInBefore   int64            `json:"bytes_in_before"`    // read before it; the rest was discarded
	BytesOutAt      map[string]int64 `json:"bytes_out_at"`       // bytes written when each step began
	FlushCompleted  bool             `json:"flush_completed"`
	CloseNotifySent bool             `json:"close_notify_sent"`
	DurationS       float64          `json:"duration_seconds"`
}

// Snapshot is the engine's live connections and its recent close traces.
type Snapshot struct {
	Conns  []ConnInfo  `json:"connections"`
	Recent []TraceInfo `json:"recent_closes"`
}

// Snapshot collects live connections and recent close traces by running a
// task on each loop, so it never races the loops. A loop that does not
// answer before ctx ends is left out.
func (e *Engine) Snapshot(ctx context.Context) (Snapshot, error) {
	type part struct {
		conns  []ConnInfo
		recent []Trace
	}
	loops := e.Loops()
	parts := make(chan part, len(loops))
	posted := 0
	for _, l := range loops {
		l := l
		err := l.Post(func() {
			now := l.now()
			var p part
			for _, c := range l.conns {
				ci := ConnInfo{
					ID: connID(c.id), Side: c.side.String(), Listener: c.listener, Loop: l.idx,
					State:          c.state.String(),
					AgeSeconds:     float64(now-c.trace.Entered[Created]) / 1e9,
					InStateSeconds: float64(now-c.stateSince) / 1e9,
					BytesIn:        c.trace.BytesIn, BytesOut: c.trace.BytesOut,
					Pending: c.pending(), ReadPaused: c.paused, PeerEOF: c.readEOF,
					KernelQueue: max(c.kernelQueue(), 0),
				}
				if l.e.draining.Load() {
					ci.Draining = c.drainWait(ci.KernelQueue)
				}
				switch {
				case c.admIn(admHandshake):
					ci.WaitingFor = "handshake"
				case c.pp != nil:
					ci.WaitingFor = "proxy_header"
				case c.hsParked:
					ci.WaitingFor = "handshake_slot"
				case c.admIn(admWaiting):
					ci.WaitingFor = "first_byte"
				}
				if c.adm != 0 {
					ci.StalledSeconds = float64(now-c.admKey) / 1e9
				}
				if in, ok := c.TLSInfo(); ok {
					ci.TLS = &TLSInfo{Version: tls.VersionName(in.Version), Cipher: tls.CipherSuiteName(in.CipherSuite),
						ALPN: in.ALPN, SNI: in.ServerName, Resumed: in.Resumed}
				}
				if c.local != nil {
					ci.Local = c.local.String()
				}
				if c.remote != nil {
					ci.Remote = c.remote.String()
				}
				if c.lb != nil {
					ci.Balancer = c.lb.String()
				}
				p.conns = append(p.conns, ci)
			}
			p.recent = append(p.recent, l.recent...)
			parts <- p
		})
		if err == nil {
			posted++
		}
	}
	var s Snapshot
	var traces []Trace
	var err error
	for ; posted > 0; posted-- {
		select {
		case p := <-parts:
			s.Conns = append(s.Conns, p.conns...)
			traces = append(traces, p.recent...)
		case <-ctx.Done():
			err = ctx.Err()
			posted = 1
		}
	}
	sort.Slice(s.Conns, func(i, j int) bool { return s.Conns[i].AgeSeconds > s.Conns[j].AgeSeconds })
	sort.Slice(traces, func(i, j int) bool {
		return traces[i].Entered[SocketClosed] > traces[j].Entered[SocketClosed]
	})
	for i := range traces {
		s.Recent = append(s.Recent, traces[i].Info())
	}
	return s, err
}

// Info converts a trace for JSON.
func (t *Trace) Info() TraceInfo {
	created := t.Entered[Created]
	ti := TraceInfo{
		ID: connID(t.ID), Side: t.Side.String(), Listener: t.Listener, Remote: t.Remote,
		Outcome: t.Outcome.String(), BytesIn: t.BytesIn, BytesOut: t.BytesOut,
		Discarded: t.Discarded,
		Duration:  float64(t.Entered[SocketClosed]-created) / 1e9,
		States:    map[string]float64{},
		Close:     t.CloseSequence(),
	}
	if t.Cause != OutcomeNone {
		ti.Cause = t.Cause.String()
	}
	for st := State(0); st < numStates; st++ {
		if at := t.Entered[st]; at != 0 {
			ti.States[st.String()] = float64(at-created) / 1e9
		}
	}
	ti.ClosedFirst = t.ClosedFirst()
	if t.PeerEnded != 0 {
		ti.PeerEnded = t.PeerEndedBy.String()
		d := float64(t.PeerEnded-created) / 1e9
		ti.PeerEndedAt = &d
	}
	if st := t.Entered[ShutdownInitiated]; st != 0 {
		si := &ShutdownInfo{PendingBytes: t.PendingAtShutdown, KernelQueue: t.KernelAtShutdown,
			BytesInBefore: t.InAtShutdown, BytesOutAt: map[string]int64{},
			FlushCompleted:  t.Entered[BufferFlushed] != 0,
			CloseNotifySent: t.Entered[CloseNotifySent] != 0,
			DurationS:       float64(t.Entered[SocketClosed]-st) / 1e9}
		// The state before ShutdownInitiated: the latest one entered.
		for p := ShutdownInitiated - 1; ; p-- {
			if t.Entered[p] != 0 || p == Created {
				si.StateAtShutdown = p.String()
				break
			}
		}
		for p := ShutdownInitiated; p < numStates; p++ {
			if t.Entered[p] != 0 {
				si.BytesOutAt[p.String()] = t.OutAt[p-ShutdownInitiated]
			}
		}
		ti.Shutdown = si
	}
	if t.Delivered != 0 {
		d := float64(t.Delivered-created) / 1e9
		ti.Delivered = &d
	}
	return ti
}

// drainWait says what holds a connection open during a drain; kq is its
// kernel send queue.
func (c *Conn) drainWait(kq int) string {
	switch {
	case c.state < HandshakeDone || c.pp != nil:
		return "handshake"
	case c.state < ShutdownInitiated:
		return "response"
	case c.pending() > 0 || kq > 0:
		return "peer_read"
	}
	return "fin"
}

// RecentCloses returns the recent close traces of every loop (the last
// 64 per loop), newest first: those keep accepts (nil: all).
func (e *Engine) RecentCloses(ctx context.Context, keep func(*Trace) bool) ([]TraceInfo, error) {
	loops := e.Loops()
	parts := make(chan []Trace, len(loops))
	posted := 0
	for _, l := range loops {
		l := l
		if l.Post(func() {
			var p []Trace
			for i := range l.recent {
				if keep == nil || keep(&l.recent[i]) {
					p = append(p, l.recent[i])
				}
			}
			parts <- p
		}) == nil {
			posted++
		}
	}
	var traces []Trace
	var err error
	for ; posted > 0; posted-- {
		select {
		case p := <-parts:
			traces = append(traces, p...)
		case <-ctx.Done():
			err = ctx.Err()
			posted = 1
		}
	}
	sort.Slice(traces, func(i, j int) bool {
		return traces[i].Entered[SocketClosed] > traces[j].Entered[SocketClosed]
	})
	out := make([]TraceInfo, 0, len(traces))
	for i := range traces {
		out = append(out, traces[i].Info())
	}
	return out, err
}

// ParseOutcome returns the outcome named s (as in logs and metrics).
func ParseOutcome(s string) (Outcome, bool) {
	for o := Outcome(1); o < numOutcomes; o++ {
		if outcomeNames[o] == s {
			return o, true
		}
	}
	return OutcomeNone, false
}
