package h2

import "time"

// streamState is a state of RFC 9113 §5.1:
//
//	                         +--------+
//	                 send PP |        | recv PP
//	                ,--------+  idle  +--------.
//	               /         |        |         \
//	              v          +--------+          v
//	       +----------+          |           +----------+
//	       |          |          | send H /  |          |
//	,------+ reserved |          | recv H    | reserved +------.
//	|      | (local)  |          |           | (remote) |      |
//	|      +---+------+          v           +------+---+      |
//	|          |             +--------+             |          |
//	|          |     recv ES |        | send ES     |          |
//	|   send H |     ,-------+  open  +-------.     | recv H   |
//	|          |    /        |        |        \    |          |
//	|          v   v         +---+----+         v   v          |
//	|      +----------+          |           +----------+      |
//	|      |   half-  |          |           |   half-  |      |
//	|      |  closed  |          | send R /  |  closed  |      |
//	|      | (remote) |          | recv R    | (local)  |      |
//	|      +----+-----+          |           +-----+----+      |
//	|           |                |                 |           |
//	|           | send ES /      |       recv ES / |           |
//	|           |  send R /      v        send R / |           |
//	|           |  recv R    +--------+   recv R   |           |
//	| send R /  `----------->|        |<-----------'  send R / |
//	| recv R                 | closed |               recv R   |
//	`----------------------->|        |<-----------------------'
//	                         +--------+
//
//	send: endpoint sends this frame       recv: endpoint receives this frame
//	H: HEADERS frame (with implied CONTINUATION frames)
//	ES: END_STREAM flag                   R: RST_STREAM frame
//	PP: PUSH_PROMISE frame (with implied CONTINUATION frames)
//
// Each arrow is one method of streamSM; a frame that has no arrow from the
// current state is answered with the error the RFC names for that state.
// PRIORITY is allowed in every state and changes none. sluice never pushes
// and refuses pushes, so Conn never enters the reserved states, but the
// machine models them so that the diagram and the code stay one.
type streamState uint8

const (
	stateIdle streamState = iota
	stateReservedLocal
	stateReservedRemote
	stateOpen
	stateHalfClosedLocal
	stateHalfClosedRemote
	stateClosed
)

var stateNames = [...]string{
	stateIdle:             "idle",
	stateReservedLocal:    "reserved (local)",
	stateReservedRemote:   "reserved (remote)",
	stateOpen:             "open",
	stateHalfClosedLocal:  "half-closed (local)",
	stateHalfClosedRemote: "half-closed (remote)",
	stateClosed:           "closed",
}

func (s streamState) String() string { return stateNames[s] }

// closeCause records how a stream reached closed, because the RFC treats a
// late frame differently for each:
//   - after we sent RST_STREAM: "An endpoint MUST ignore frames that it
//     receives on closed streams after it has sent a RST_STREAM frame."
//   - after we received RST_STREAM: "An endpoint that receives any frame
//     other than PRIORITY after receiving a RST_STREAM MUST treat that as a
//     stream error (Section 5.4.2) of type STREAM_CLOSED."
//   - after END_STREAM both ways: "an endpoint that receives any frames
//     after receiving a frame with the END_STREAM flag set MUST treat that
//     as a connection error (Section 5.4.1) of type STREAM_CLOSED", except
//     WINDOW_UPDATE and RST_STREAM, which may trail our own END_STREAM.
type closeCause uint8

const (
	causeNone closeCause = iota
	causeEndStream
	causeLocalReset
	causePeerReset
)

// stateError is the outcome of a transition that has no arrow. Values are
// preallocated so that rejecting a frame does not allocate.
type stateError struct {
	code   ErrCode
	conn   bool // connection error rather than stream error
	ignore bool // not an error: drop the frame silently
	local  bool // the caller misused the API; nothing goes on the wire
	reason string
}

var (
	errIgnoreFrame = &stateError{ignore: true}

	// idle: "Receiving any frame other than HEADERS or PRIORITY on a stream
	// in this state MUST be treated as a connection error (Section 5.4.1) of
	// type PROTOCOL_ERROR."
	errIdleData   = &stateError{code: ErrCodeProtocol, conn: true, reason: "DATA on idle stream"}
	errIdleReset  = &stateError{code: ErrCodeProtocol, conn: true, reason: "RST_STREAM on idle stream"}
	errIdleWindow = &stateError{code: ErrCodeProtocol, conn: true, reason: "WINDOW_UPDATE on idle stream"}
	// reserved (local): "Receiving any type of frame other than RST_STREAM,
	// PRIORITY, or WINDOW_UPDATE on a stream in this state MUST be treated
	// as a connection error (Section 5.4.1) of type PROTOCOL_ERROR."
	errReservedLocalFrame = &stateError{code: ErrCodeProtocol, conn: true, reason: "frame on reserved (local) stream"}
	// reserved (remote): "Receiving any type of frame other than HEADERS,
	// RST_STREAM, or PRIORITY on a stream in this state MUST be treated as a
	// connection error (Section 5.4.1) of type PROTOCOL_ERROR."
	errReservedRemoteFrame = &stateError{code: ErrCodeProtocol, conn: true, reason: "frame on reserved (remote) stream"}
	// half-closed (remote): "If an endpoint receives additional frames,
	// other than WINDOW_UPDATE, PRIORITY, or RST_STREAM, for a stream that is
	// in this state, it MUST respond with a stream error (Section 5.4.2) of
	// type STREAM_CLOSED."
	errHalfClosedRemote = &stateError{code: ErrCodeStreamClosed, reason: "frame after END_STREAM"}
	errAfterPeerReset   = &stateError{code: ErrCodeStreamClosed, reason: "frame after RST_STREAM"}
	errAfterEndStream   = &stateError{code: ErrCodeStreamClosed, conn: true, reason: "frame on closed stream"}
	errPushNotIdle      = &stateError{code: ErrCodeProtocol, conn: true, reason: "PUSH_PROMISE for a stream not idle"}

	errLocalNotWritable = &stateError{local: true, reason: "stream not open for sending"}
)

// streamSM is the per-stream state and its transitions.
type streamSM struct {
	state streamState
	cause closeCause
}

func (m *streamSM) closeWith(c closeCause) {
	m.state = stateClosed
	m.cause = c
}

// recvClosed is what a frame other than PRIORITY on a closed stream means.
func (m *streamSM) recvClosed(windowOrReset bool) *stateError {
	switch m.cause {
	case causeLocalReset:
		return errIgnoreFrame
	case causePeerReset:
		return errAfterPeerReset
	}
	if windowOrReset {
		return errIgnoreFrame
	}
	return errAfterEndStream
}

// recvHeaders: idle -> open (or half-closed (remote) with END_STREAM);
// reserved (remote) -> half-closed (local) (or closed); open and
// half-closed (local) stay put unless END_STREAM ends the remote side.
func (m *streamSM) recvHeaders(endStream bool) *stateError {
	switch m.state {
	case stateIdle:
		m.state = stateOpen
		if endStream {
			m.state = stateHalfClosedRemote
		}
	case stateReservedRemote:
		m.state = stateHalfClosedLocal
		if endStream {
			m.closeWith(causeEndStream)
		}
	case stateOpen:
		if endStream {
			m.state = stateHalfClosedRemote
		}
	case stateHalfClosedLocal:
		if endStream {
			m.closeWith(causeEndStream)
		}
	case stateReservedLocal:
		return errReservedLocalFrame
	case stateHalfClosedRemote:
		return errHalfClosedRemote
	case stateClosed:
		return m.recvClosed(false)
	}
	return nil
}

// sendHeaders: idle -> open (or half-closed (local)); reserved (local) ->
// half-closed (remote) (or closed); open and half-closed (remote) stay put
// unless END_STREAM ends the local side.
func (m *streamSM) sendHeaders(endStream bool) *stateError {
	switch m.state {
	case stateIdle:
		m.state = stateOpen
		if endStream {
			m.state = stateHalfClosedLocal
		}
	case stateReservedLocal:
		m.state = stateHalfClosedRemote
		if endStream {
			m.closeWith(causeEndStream)
		}
	case stateOpen:
		if endStream {
			m.state = stateHalfClosedLocal
		}
	case stateHalfClosedRemote:
		if endStream {
			m.closeWith(causeEndStream)
		}
	default:
		return errLocalNotWritable
	}
	return nil
}

// recvData: open -> half-closed (remote) on END_STREAM; half-closed (local)
// -> closed on END_STREAM.
func (m *streamSM) recvData(endStream bool) *stateError {
	switch m.state {
	case stateOpen:
		if endStream {
			m.state = stateHalfClosedRemote
		}
	case stateHalfClosedLocal:
		if endStream {
			m.closeWith(causeEndStream)
		}
	case stateIdle:
		return errIdleData
	case stateReservedLocal:
		return errReservedLocalFrame
	case stateReservedRemote:
		return errReservedRemoteFrame
	case stateHalfClosedRemote:
		return errHalfClosedRemote
	case stateClosed:
		return m.recvClosed(false)
	}
	return nil
}

// sendData: open -> half-closed (local) on END_STREAM; half-closed (remote)
// -> closed on END_STREAM.
func (m *streamSM) sendData(endStream bool) *stateError {
	switch m.state {
	case stateOpen:
		if endStream {
			m.state = stateHalfClosedLocal
		}
	case stateHalfClosedRemote:
		if endStream {
			m.closeWith(causeEndStream)
		}
	default:
		return errLocalNotWritable
	}
	return nil
}

// recvReset: any state but idle -> closed.
func (m *streamSM) recvReset() *stateError {
	switch m.state {
	case stateIdle:
		// "If a RST_STREAM frame identifying an idle stream is received, the
		// recipient MUST treat this as a connection error (Section 5.4.1) of
		// type PROTOCOL_ERROR."
		return errIdleReset
	case stateClosed:
		if m.cause == causePeerReset {
			return errAfterPeerReset
		}
		return errIgnoreFrame
	}
	m.closeWith(causePeerReset)
	return nil
}

// sendReset: any state but idle and closed -> closed. "RST_STREAM frames
// MUST NOT be sent for a stream in the "idle" state."
func (m *streamSM) sendReset() *stateError {
	switch m.state {
	case stateIdle, stateClosed:
		return errLocalNotWritable
	}
	m.closeWith(causeLocalReset)
	return nil
}

// recvPushPromise is called on the promised stream: idle -> reserved (remote).
func (m *streamSM) recvPushPromise() *stateError {
	if m.state != stateIdle {
		return errPushNotIdle
	}
	m.state = stateReservedRemote
	return nil
}

// sendPushPromise is called on the promised stream: idle -> reserved (local).
func (m *streamSM) sendPushPromise() *stateError {
	if m.state != stateIdle {
		return errLocalNotWritable
	}
	m.state = stateReservedLocal
	return nil
}

// recvWindowUpdate changes no state; it says whether the frame is allowed.
func (m *streamSM) recvWindowUpdate() *stateError {
	switch m.state {
	case stateIdle:
		return errIdleWindow
	case stateReservedRemote:
		return errReservedRemoteFrame
	case stateClosed:
		return m.recvClosed(true)
	}
	return nil
}

// canSend reports whether this endpoint may still send DATA or HEADERS.
func (m *streamSM) canSend() bool {
	return m.state == stateOpen || m.state == stateHalfClosedRemote
}

// peerCanSend reports whether the peer may still send DATA: only then are
// stream WINDOW_UPDATEs worth sending.
func (m *streamSM) peerCanSend() bool {
	return m.state == stateOpen || m.state == stateHalfClosedLocal
}

// headerPhase tracks which header block comes next on one direction of a
// stream: the initial (or informational) headers, then trailers.
type headerPhase uint8

const (
	phaseInitial  headerPhase = iota // waiting for the first or a 1xx header block
	phaseFinal                       // final headers seen; a further block is trailers
	phaseTrailers                    // trailers seen
)

// stream is one active stream of a Conn.
type stream struct {
	id uint32
	streamSM
	local bool // initiated by this endpoint

	recvPhase headerPhase
	sendPhase headerPhase

	// Receive side (RFC 9113 §6.9): recvWin is the credit the peer still
	// has; recvHeld counts bytes handed to the caller and not yet reported
	// through Consumed; recvUnacked counts consumed bytes not yet returned
	// with WINDOW_UPDATE.
	recvWin     int64
	recvHeld    int64
	recvUnacked int64

	// Send side: may be negative after SETTINGS_INITIAL_WINDOW_SIZE shrinks.
	sendWin      int64
	blocked      bool      // on the blocked list, waiting for OnWindowOpen
	stalled      bool      // a WriteData was cut short and no complete one since
	blockedSince time.Time // start of the current stall

	// Content-length enforcement on received DATA: -1 when absent or not
	// applicable (HEAD responses, 304).
	contentLength int64
	dataRecv      int64

	reqHead bool // client role: the request method was HEAD
}
