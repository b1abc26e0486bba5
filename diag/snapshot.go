package diag

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

// Info converts a trace for JSON.
func (t *Trace) Info() TraceInfo {
	created := t.Entered[Created]
	ti := TraceInfo{
		ID: ConnID(t.ID), Side: t.Side.String(), Listener: t.Listener, Remote: t.Remote,
		Outcome: t.Outcome.String(), BytesIn: t.BytesIn, BytesOut: t.BytesOut,
		Discarded: t.Discarded,
		Duration:  float64(t.Entered[SocketClosed]-created) / 1e9,
		States:    map[string]float64{},
		Close:     t.CloseSequence(),
	}
	if t.Cause != OutcomeNone {
		ti.Cause = t.Cause.String()
	}
	for st := State(0); st < NumStates; st++ {
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
		for p := ShutdownInitiated; p < NumStates; p++ {
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
