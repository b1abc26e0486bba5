package engine

import "github.com/sluice-proxy/sluice/diag"

// Handler is the layer above the engine for one connection (TLS, HTTP, a TCP
// relay). Every method runs on the connection's loop. None may block.
type Handler interface {
	// OnOpen runs once the connection is registered on its loop; on a TLS
	// listener, once the handshake is done (TLSInfo gives the ALPN).
	OnOpen(c *Conn)
	// OnData delivers bytes read from the socket and returns how many were
	// consumed. Unconsumed bytes are kept by the engine and delivered again,
	// followed by newer ones, on the next read or after ResumeRead. b is
	// valid only during the call.
	OnData(c *Conn, b []byte) int
	// OnReadEOF reports the peer's FIN. Writing still works (a half-close);
	// the handler decides when to Close.
	OnReadEOF(c *Conn)
	// OnWritable runs when the output buffer has drained to the low-water
	// mark after NotifyWritable asked for it.
	OnWritable(c *Conn)
	// OnTimer runs when a deadline set with SetTimer expires.
	OnTimer(c *Conn, k TimerKind)
	// OnDrain asks the connection to finish its current work and close
	// (process drain). HTTP/1.1 marks its next response Connection: close,
	// HTTP/2 sends GOAWAY, an idle connection closes at once.
	OnDrain(c *Conn)
	// OnClosed runs once, after the socket is closed. t is valid only
	// during the call.
	OnClosed(c *Conn, t *diag.Trace)
}

// BaseHandler gives default behaviour to embed: EOF and timers close the
// connection gracefully, drain closes it, nothing else happens.
type BaseHandler struct{}

// OnOpen does nothing.
func (BaseHandler) OnOpen(*Conn) {}

// OnData consumes and drops everything.
func (BaseHandler) OnData(_ *Conn, b []byte) int { return len(b) }

// OnReadEOF closes gracefully with outcome peer_closed.
func (BaseHandler) OnReadEOF(c *Conn) { c.Close(diag.PeerClosed) }

// OnWritable does nothing.
func (BaseHandler) OnWritable(*Conn) {}

// OnTimer closes gracefully with the timer's outcome.
func (BaseHandler) OnTimer(c *Conn, k TimerKind) { c.Close(k.Outcome()) }

// OnDrain closes gracefully.
func (BaseHandler) OnDrain(c *Conn) { c.Close(diag.Clean) }

// OnClosed does nothing.
func (BaseHandler) OnClosed(*Conn, *diag.Trace) {}

// TimerKind names a per-connection deadline the layer above can set.
type TimerKind uint8

// Timer kinds for handlers. The engine owns the write-progress and linger
// deadlines itself.
const (
	TimerHandshake TimerKind = iota
	TimerHeader
	TimerIdle
	TimerProto // protocol use: SETTINGS ack, GOAWAY phase two, upstream response header
	numUserTimers
)

// Engine-owned timers share the deadline array.
const (
	timerWrite = numUserTimers + iota
	timerLinger
	timerDelivered
	timerFirstByte
	numTimers
)

// Outcome is the outcome a timer of this kind closes with by default.
func (k TimerKind) Outcome() diag.Outcome {
	switch k {
	case TimerHandshake:
		return diag.HandshakeTimeout
	case TimerHeader:
		return diag.HeaderTimeout
	case TimerIdle:
		return diag.IdleTimeout
	}
	return diag.ProtocolError
}

func (k TimerKind) String() string {
	switch k {
	case TimerHandshake:
		return "handshake"
	case TimerHeader:
		return "header"
	case TimerIdle:
		return "idle"
	case TimerProto:
		return "proto"
	case timerWrite:
		return "write"
	case timerLinger:
		return "linger"
	case timerDelivered:
		return "delivered"
	case timerFirstByte:
		return "first_byte"
	}
	return "timer(?)"
}
