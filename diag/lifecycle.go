package diag

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// State is a step in a connection's life. The order is the order of the
// graceful close; a connection only moves forward.
type State uint8

// Connection states, in lifecycle order.
const (
	Created State = iota
	Handshake
	HandshakeDone
	DataTransfer
	ShutdownInitiated
	BufferFlushed
	CloseNotifySent
	WriteShut
	Lingering
	SocketClosed
	NumStates // the number of states, not a state
)

var stateNames = [NumStates]string{
	"Created", "Handshake", "HandshakeDone", "DataTransfer", "ShutdownInitiated",
	"BufferFlushed", "CloseNotifySent", "WriteShut", "Lingering", "SocketClosed",
}

func (s State) String() string {
	if s < NumStates {
		return stateNames[s]
	}
	return "State(?)"
}

// Outcome is how a connection ended. Every connection gets exactly one.
// When the close sequence completes, the outcome is its cause (clean,
// idle_timeout, peer_closed, ...); when the sequence itself fails, the
// outcome names the failure (flush_timeout, linger_timeout, aborted, ...).
type Outcome uint8

// Outcomes. Keep outcomeNames in sync.
const (
	OutcomeNone Outcome = iota
	Clean
	PeerClosed
	LingerTimeout
	FlushTimeout
	WriteTimeout
	HandshakeTimeout
	HeaderTimeout
	IdleTimeout
	ProtocolError
	TLSError
	ResetByPeer
	Aborted
	ForcedAtDeadline
	Rejected
	UpstreamError
	EngineStopped
	FirstByteTimeout // nothing (or no whole PROXY header) within FirstByteTimeout
	Evicted          // made room at MaxConns or MaxHandshakes (admission.go)
	NumOutcomes      // the number of outcomes, not an outcome
)

var outcomeNames = [NumOutcomes]string{
	"none", "clean", "peer_closed", "linger_timeout", "flush_timeout", "write_timeout",
	"handshake_timeout", "header_timeout", "idle_timeout", "protocol_error", "tls_error",
	"reset_by_peer", "aborted", "forced_at_deadline", "rejected", "upstream_error",
	"engine_stopped", "first_byte_timeout", "evicted",
}

func (o Outcome) String() string {
	if o < NumOutcomes {
		return outcomeNames[o]
	}
	return "outcome(?)"
}

// Trace is the record of one connection's life: the monotonic time each
// state was entered (0 = never), plus what it ended with.
type Trace struct {
	ID        uint64
	Side      Side
	Listener  string
	Local     string
	Remote    string
	Entered   [NumStates]int64 // engine clock, ns; 0 when the state was skipped
	Delivered int64            // SIOCOUTQ seen at 0 after the last write (peer ACKed all), 0 if never seen
	Cause     Outcome          // why the close began
	Outcome   Outcome          // how it ended
	BytesIn   int64
	BytesOut  int64
	Discarded int64 // bytes thrown away by an abort (engine buffer + kernel send queue)

	// The close, step by step (/debug/shutdowns).
	PeerEnded   int64   // when the peer first ended its side (FIN, close_notify, RST), 0 if never
	PeerEndedBy PeerEnd // how
	// At ShutdownInitiated: bytes in the engine buffer and the kernel
	// send queue, and bytes read so far (what came after was discarded).
	PendingAtShutdown int
	KernelAtShutdown  int
	InAtShutdown      int64
	OutAt             [NumStates - ShutdownInitiated]int64 // BytesOut when each close state was entered
}

// PeerEnd says how the peer ended its side of a connection.
type PeerEnd uint8

// Ways a peer ends.
const (
	PeerNotEnded PeerEnd = iota
	PeerFIN
	PeerCloseNotify
	PeerReset
)

func (p PeerEnd) String() string {
	return [...]string{"", "fin", "close_notify", "reset"}[min(p, PeerReset)]
}

// MarkPeerEnded records the first way the peer ended, at now.
func (t *Trace) MarkPeerEnded(how PeerEnd, now int64) {
	if t.PeerEnded == 0 {
		t.PeerEnded, t.PeerEndedBy = now, how
	}
}

// ClosedFirst says who ended the connection first: "peer" when its FIN,
// close_notify or reset came before sluice began the close, else "sluice".
func (t *Trace) ClosedFirst() string {
	if t.PeerEnded != 0 && (t.Entered[ShutdownInitiated] == 0 || t.PeerEnded <= t.Entered[ShutdownInitiated]) {
		return "peer"
	}
	return "sluice"
}

// Side says which end of the proxy a connection is on.
type Side uint8

// Sides.
const (
	Downstream Side = iota // accepted from a client
	Upstream               // dialed to a backend
)

func (s Side) String() string {
	if s == Upstream {
		return "upstream"
	}
	return "downstream"
}

// ConnID formats a connection id for logs, traces and the admin endpoint.
func ConnID(id uint64) string { return "c" + strconv.FormatUint(id, 16) }

// CloseSequence renders the states from ShutdownInitiated on with their
// offsets from it: "ShutdownInitiated · BufferFlushed +0.1ms · ...".
func (t *Trace) CloseSequence() string {
	s := t.Entered[ShutdownInitiated]
	if s == 0 {
		return ""
	}
	var b strings.Builder
	for st := ShutdownInitiated; st < NumStates; st++ {
		at := t.Entered[st]
		if at == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(" · ")
		}
		b.WriteString(st.String())
		if st != ShutdownInitiated {
			fmt.Fprintf(&b, " +%s", time.Duration(at-s).Round(time.Microsecond))
		}
	}
	return b.String()
}

// ParseOutcome returns the outcome named s (as in logs and metrics).
func ParseOutcome(s string) (Outcome, bool) {
	for o := Outcome(1); o < NumOutcomes; o++ {
		if outcomeNames[o] == s {
			return o, true
		}
	}
	return OutcomeNone, false
}
