package h2

import (
	"time"

	"golang.org/x/net/http2/hpack"
)

// Conn is one HTTP/2 connection's state machine, in either role. It does
// no I/O and never reads the clock: bytes from the peer go in through Feed
// with the current time, events come out through the Handler, bytes to send
// are taken with AppendOutput, and NextDeadline says when to call OnTimer.
//
// A Conn is not safe for concurrent use; one goroutine (the event loop that
// owns the socket) makes every call, including from inside Handler methods.
type Conn struct {
	role Role
	cfg  Config
	h    Handler
	fr   framer

	now   time.Time // latest time given to any method
	epoch time.Time // NewConn's time; closed-stream ages are relative to it

	err *ConnError // sticky: set once, the connection is over

	prefaceOff       int  // server: bytes of ClientPreface matched so far
	peerSettingsSeen bool // the peer's first frame, a SETTINGS, arrived

	local            Settings // what we advertised
	peer             Settings // the peer's current values
	settingsPending  bool     // our SETTINGS await their ACK
	settingsDeadline time.Time

	streams             map[uint32]*stream
	spare               []*stream // recycled stream structs
	nextLocalID         uint32
	maxSeenPeerID       uint32 // highest peer-initiated id seen in HEADERS
	lastProcessedPeerID uint32 // highest peer stream accepted or refused: GOAWAY's last id
	activePeer          int
	activeLocal         int
	closed              closedRing

	// Receiving header blocks.
	hb     headerBlock
	dec    *hpack.Decoder
	fields []hpack.HeaderField
	hdrs   Headers

	// Sending header blocks.
	enc    *hpack.Encoder
	encBuf blockWriter
	blocks blockCache // the last all-indexed block, reused while it stays valid

	// Connection-level flow control (see flow.go).
	sendWin        int64
	recvWin        int64
	recvHeld       int64
	recvUnacked    int64
	streamRecvInit int64
	blocked        []uint32
	blockedSpare   []uint32

	out        []byte // queued output, in order
	queuedCtrl int    // control frames in out

	pings  []pendingPing
	goAway goAwayState

	resetRate, pingRate, settingsRate, wuRate, junkRate rateCounter

	stats   Stats
	scratch []uint32
}

type pendingPing struct {
	data [8]byte
	sent time.Time
}

// blockWriter is the io.Writer the HPACK encoder appends into.
type blockWriter struct{ b []byte }

func (w *blockWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// maxRetainedOutput: AppendOutput drops a larger output buffer rather than
// keep it for an idle connection.
const maxRetainedOutput = 256 << 10

// maxSpareStreams bounds the recycled stream structs kept per connection.
const maxSpareStreams = 8

// NewConn returns a connection in the given role. Its first output (the
// client preface in the client role, then SETTINGS and a connection
// WINDOW_UPDATE) is queued at once; now starts the SETTINGS ACK timer.
// h may be nil to ignore events.
func NewConn(role Role, cfg Config, h Handler, now time.Time) *Conn {
	cfg = cfg.withDefaults()
	if h == nil {
		h = NopHandler{}
	}
	c := &Conn{
		role:    role,
		cfg:     cfg,
		h:       h,
		now:     now,
		epoch:   now,
		peer:    InitialSettings(),
		local:   InitialSettings(),
		streams: make(map[uint32]*stream),
		sendWin: DefaultWindowSize,
		recvWin: DefaultWindowSize,
	}
	c.fr.MaxReadFrameSize = cfg.MaxReadFrameSize
	c.hdrs.ContentLength = -1

	// The decoder starts at the protocol's 4096 until the peer signals a
	// change; SETTINGS_HEADER_TABLE_SIZE only bounds what it may signal.
	c.dec = hpack.NewDecoder(DefaultHeaderTableSize, c.onField)
	c.dec.SetAllowedMaxDynamicTableSize(cfg.HeaderTableSize)
	// Any string that fits in a permitted block (even Huffman-expanded,
	// at most 8/5) is decoded, so an oversized field becomes "header list
	// too large" for its stream rather than an HPACK error for everyone.
	c.dec.SetMaxStringLength(int(min(uint64(cfg.MaxHeaderBlockBytes)*2, 1<<30)))
	c.enc = hpack.NewEncoder(&c.encBuf)
	c.enc.SetMaxDynamicTableSizeLimit(cfg.MaxEncoderTableSize)

	// Until our SETTINGS is acknowledged the peer may still use 65535 for
	// new streams, or already use our value: accept the larger.
	c.streamRecvInit = int64(max(cfg.InitialStreamWindow, DefaultWindowSize))

	var list [8]setting
	ss := list[:0]
	if role == Client {
		c.nextLocalID = 1
		c.out = append(c.out, ClientPreface...)
		// "A client cannot push": we never accept pushed streams.
		ss = append(ss, setting{settingEnablePush, 0})
		c.local.EnablePush = false
	} else {
		c.nextLocalID = 2
		ss = append(ss, setting{settingMaxConcurrentStreams, cfg.MaxConcurrentStreams})
		c.local.MaxConcurrentStreams = cfg.MaxConcurrentStreams
		if cfg.EnableConnectProtocol {
			ss = append(ss, setting{settingEnableConnectProtocol, 1})
			c.local.EnableConnectProtocol = true
		}
	}
	if cfg.HeaderTableSize != DefaultHeaderTableSize {
		ss = append(ss, setting{settingHeaderTableSize, cfg.HeaderTableSize})
	}
	ss = append(ss,
		setting{settingInitialWindowSize, cfg.InitialStreamWindow},
		setting{settingMaxHeaderListSize, cfg.MaxHeaderListSize},
		setting{settingNoRFC7540Priorities, 1}, // priorities are parsed and ignored
	)
	if cfg.MaxReadFrameSize != DefaultMaxFrameSize {
		ss = append(ss, setting{settingMaxFrameSize, cfg.MaxReadFrameSize})
	}
	for _, s := range ss {
		c.local.apply(s)
	}
	c.out = appendSettings(c.out, ss...)
	c.settingsPending = true
	c.settingsDeadline = now.Add(cfg.SettingsTimeout)
	if cfg.ConnWindow > DefaultWindowSize {
		c.out = appendWindowUpdate(c.out, 0, cfg.ConnWindow-DefaultWindowSize)
		c.recvWin = int64(cfg.ConnWindow)
	}
	return c
}

// Role returns the connection's role.
func (c *Conn) Role() Role { return c.role }

// Err returns the error that ended the connection, or nil.
func (c *Conn) Err() error {
	if c.err == nil {
		return nil
	}
	return c.err
}

// PeerSettings returns the peer's current settings.
func (c *Conn) PeerSettings() Settings { return c.peer }

// LocalSettings returns the settings this endpoint advertised.
func (c *Conn) LocalSettings() Settings { return c.local }

// ActiveStreams returns the number of open and half-closed streams.
func (c *Conn) ActiveStreams() int { return len(c.streams) }

// Stats returns a copy of the connection's counters.
func (c *Conn) Stats() Stats {
	s := c.stats
	s.ActiveStreams = len(c.streams)
	s.BlockedStreams = len(c.blocked)
	return s
}

func (c *Conn) count(token string) {
	if c.cfg.CountError != nil {
		c.cfg.CountError(token)
	}
}

func (c *Conn) nowNanos() int64 { return int64(c.now.Sub(c.epoch)) }

// fail ends the connection with a codec-raised error: GOAWAY goes out
// carrying the reason as debug data, and every later call returns e.
func (c *Conn) fail(e *ConnError) {
	if c.err != nil {
		return
	}
	c.err = e
	c.count(e.Reason)
	c.out = appendGoAway(c.out, c.lastProcessedPeerID, e.Code, []byte(e.Reason))
	c.stats.GoAwaySent.add(e.Code)
	c.goAway.sent = true
	c.goAway.lastID = c.lastProcessedPeerID
	c.goAway.phase = 0
	c.settingsDeadline = time.Time{}
}

// failCalm ends the connection because a defense tripped.
func (c *Conn) failCalm(token, reason string) {
	c.count(token)
	c.fail(connErr(ErrCodeEnhanceYourCalm, reason))
}

// queueCtrl accounts one control frame appended to out. A peer that makes
// us queue responses faster than the caller takes them is cut off.
func (c *Conn) queueCtrl() {
	c.queuedCtrl++
	if c.queuedCtrl > c.cfg.MaxQueuedControlFrames {
		c.failCalm("control_queue", "too many queued control frames")
	}
}

// junk accounts a frame that costs work and carries nothing.
func (c *Conn) junk() {
	if c.junkRate.hit(c.now, c.cfg.JunkFrameBudget) {
		c.failCalm("junk_flood", "too many empty or ignored frames")
	}
}

// Feed processes bytes received from the peer. It consumes whole frames
// (and the client preface) from the start of b and returns how many bytes
// it consumed; the caller keeps b[n:] and passes it again, followed by new
// bytes, on the next call. At most 9 (the frame header) + MaxReadFrameSize bytes
// are ever needed to make progress.
//
// Events are delivered to the Handler during the call; DATA passed to
// OnData aliases b. Stream errors are handled inside (RST_STREAM queued,
// OnReset for streams the caller knows). A connection error is returned as
// *ConnError: a GOAWAY is queued (except for a bad preface, where RFC 9113
// §3.4 lets it be omitted), the caller should flush AppendOutput and close.
// The error is sticky.
func (c *Conn) Feed(now time.Time, b []byte) (int, error) {
	c.now = now
	if c.err != nil {
		return 0, c.err
	}
	n := 0
	if c.role == Server && c.prefaceOff < len(ClientPreface) {
		k := min(len(b), len(ClientPreface)-c.prefaceOff)
		if string(b[:k]) != ClientPreface[c.prefaceOff:c.prefaceOff+k] {
			// "Clients and servers MUST treat an invalid connection preface
			// as a connection error (Section 5.4.1) of type PROTOCOL_ERROR.
			// A GOAWAY frame (Section 6.8) MAY be omitted in this case".
			c.err = connErr(ErrCodeProtocol, "invalid connection preface")
			c.count("bad_preface")
			return 0, c.err
		}
		c.prefaceOff += k
		n = k
	}
	for c.err == nil {
		f, m, err := c.fr.ReadFrame(b[n:])
		if err == errNeedMore {
			break
		}
		if err != nil {
			se, ok := err.(*StreamError)
			if !ok {
				c.fail(err.(*ConnError))
				break
			}
			n += m
			if c.frameAllowed(f) {
				c.frameStreamError(f, se)
			}
			continue
		}
		n += m
		if c.frameAllowed(f) {
			c.processFrame(f)
		}
	}
	if c.err != nil {
		return n, c.err
	}
	return n, nil
}

// frameAllowed applies the rules that span frames: the preface's SETTINGS
// first, and nothing between a HEADERS and the end of its header block.
func (c *Conn) frameAllowed(f *frame) bool {
	if !c.peerSettingsSeen && (f.Type != frameSettings || f.IsAck()) {
		// "The server connection preface consists of a potentially empty
		// SETTINGS frame (Section 6.5) that MUST be the first frame the
		// server sends"; the client preface "MUST be followed by a SETTINGS
		// frame".
		c.fail(connErr(ErrCodeProtocol, "first frame is not SETTINGS"))
		return false
	}
	if c.hb.active && (f.Type != frameContinuation || f.StreamID != c.hb.streamID) {
		// "A receiver MUST treat the receipt of any other type of frame or a
		// frame on a different stream as a connection error (Section 5.4.1)
		// of type PROTOCOL_ERROR."
		c.fail(connErr(ErrCodeProtocol, "header block interrupted by another frame"))
		return false
	}
	return true
}

// processFrame dispatches a frame by type.
func (c *Conn) processFrame(f *frame) {
	switch f.Type {
	case frameData:
		c.onData(f)
	case frameHeaders:
		c.onHeaders(f, nil)
	case framePriority:
		c.junk() // parsed and validated by the framer; otherwise ignored
	case frameRSTStream:
		c.onRSTStream(f)
	case frameSettings:
		c.onSettings(f)
	case framePushPromise:
		c.onPushPromise(f)
	case framePing:
		c.onPing(f)
	case frameGoAway:
		c.onGoAway(f)
	case frameWindowUpdate:
		c.onWindowUpdate(f)
	case frameContinuation:
		c.onContinuation(f)
	default:
		c.junk()
	}
}

// frameStreamError handles a frame the framer flagged with a stream error.
func (c *Conn) frameStreamError(f *frame, se *StreamError) {
	switch f.Type {
	case frameHeaders:
		// The field block must still be decoded to keep HPACK in sync.
		c.onHeaders(f, se)
	case framePriority:
		s, cls, _ := c.lookup(f.StreamID)
		if cls == classActive {
			c.codecReset(s, se.Code, se.Reason)
		} else {
			c.rstInactive(f.StreamID, se.Code)
		}
	case frameWindowUpdate:
		s, cls, sm := c.lookup(f.StreamID)
		switch cls {
		case classIdle:
			c.fail(connErr(ErrCodeProtocol, errIdleWindow.reason))
		case classActive:
			c.codecReset(s, se.Code, se.Reason)
		case classClosed:
			c.applyStateError(f.StreamID, sm.recvWindowUpdate())
		}
	}
}

// streamClass is what a stream id designates when a frame arrives.
type streamClass uint8

const (
	classActive  streamClass = iota // in the map: open or half-closed
	classIdle                       // never used yet
	classClosed                     // used and closed (sm says how, if remembered)
	classIgnored                    // peer stream above our GOAWAY's last id: ignored
)

func (c *Conn) peerInitiated(id uint32) bool {
	return (id&1 == 1) == (c.role == Server)
}

// lookup classifies id. For classClosed, sm is a closed state machine with
// the remembered cause, or causeNone when the stream is not remembered.
func (c *Conn) lookup(id uint32) (s *stream, cls streamClass, sm streamSM) {
	if s = c.streams[id]; s != nil {
		return s, classActive, sm
	}
	if c.peerInitiated(id) {
		if id > c.maxSeenPeerID {
			return nil, classIdle, sm
		}
		if c.goAway.sent && id > c.goAway.lastID {
			return nil, classIgnored, sm
		}
	} else if id >= c.nextLocalID {
		return nil, classIdle, sm
	}
	sm.state = stateClosed
	sm.cause, _ = c.closed.lookup(id, c.nowNanos()-int64(c.cfg.ClosedStreamRetention))
	return nil, classClosed, sm
}

// applyStateError carries out a transition's refusal for a stream that is
// not active (or whose RST_STREAM is the whole answer).
func (c *Conn) applyStateError(id uint32, e *stateError) {
	switch {
	case e == nil:
	case e.ignore:
		c.junk()
	case e.conn:
		c.fail(connErr(e.code, e.reason))
	default:
		c.rstInactive(id, e.code)
	}
}

func (c *Conn) newStream(id uint32, local bool) *stream {
	var s *stream
	if n := len(c.spare); n > 0 {
		s = c.spare[n-1]
		c.spare = c.spare[:n-1]
		*s = stream{}
	} else {
		s = new(stream)
	}
	s.id = id
	s.local = local
	s.sendWin = int64(c.peer.InitialWindowSize)
	s.recvWin = c.streamRecvInit
	s.contentLength = -1
	c.streams[id] = s
	if local {
		c.activeLocal++
	} else {
		c.activePeer++
	}
	c.stats.StreamsOpened++
	return s
}

// closeStream forgets a stream whose state machine reached closed and
// remembers how it closed. s must not be used afterwards.
func (c *Conn) closeStream(s *stream) {
	delete(c.streams, s.id)
	if s.local {
		c.activeLocal--
	} else {
		c.activePeer--
	}
	if s.blocked {
		c.unblock(s)
	}
	c.closed.add(closedEntry{id: s.id, cause: s.cause, at: c.nowNanos()}, c.cfg.MaxClosedStreams)
	if len(c.spare) < maxSpareStreams {
		c.spare = append(c.spare, s)
	}
}

// queueRST appends a RST_STREAM.
func (c *Conn) queueRST(id uint32, code ErrCode) {
	c.out = appendRSTStream(c.out, id, code)
	c.stats.ResetsSent.add(code)
	c.queueCtrl()
}

// countReset charges the Rapid Reset budget.
func (c *Conn) countReset() {
	if c.resetRate.hit(c.now, c.cfg.ResetBudget) {
		c.failCalm("rapid_reset", "too many streams reset")
	}
}

// codecReset ends an active stream with a stream error the codec raised
// because of what the peer sent, and tells the caller.
func (c *Conn) codecReset(s *stream, code ErrCode, reason string) {
	id := s.id
	s.sendReset()
	c.closeStream(s)
	c.queueRST(id, code)
	c.count(reason)
	c.countReset()
	if c.err != nil {
		return
	}
	c.h.OnReset(id, streamErr(id, code, reason))
}

// rstInactive answers a frame on a stream that is not active (refused,
// malformed before the caller saw it, closed) with RST_STREAM, and
// remembers that we reset it so the peer's in-flight frames are ignored.
func (c *Conn) rstInactive(id uint32, code ErrCode) {
	c.queueRST(id, code)
	c.closed.add(closedEntry{id: id, cause: causeLocalReset, at: c.nowNanos()}, c.cfg.MaxClosedStreams)
	c.countReset()
}

func (c *Conn) onRSTStream(f *frame) {
	s, cls, sm := c.lookup(f.StreamID)
	switch cls {
	case classIdle:
		c.fail(connErr(ErrCodeProtocol, errIdleReset.reason))
		return
	case classIgnored:
		c.junk()
		return
	case classClosed:
		// Never answer RST_STREAM with RST_STREAM: "To avoid looping, an
		// endpoint MUST NOT send a RST_STREAM in response to a RST_STREAM
		// frame."
		_ = sm
		c.junk()
		return
	}
	id, local := s.id, s.local
	s.recvReset()
	c.closeStream(s)
	c.stats.ResetsReceived.add(f.Code)
	if !local {
		// Rapid Reset (CVE-2023-44487): each stream a client opens and
		// cancels costs a decode and a caller round trip; budget them.
		c.countReset()
		if c.err != nil {
			return
		}
	}
	c.h.OnReset(id, &StreamError{StreamID: id, Code: f.Code, Reason: "RST_STREAM received", By: ByPeer})
}

func (c *Conn) onSettings(f *frame) {
	if f.IsAck() {
		if !c.settingsPending {
			c.fail(connErr(ErrCodeProtocol, "SETTINGS ACK without pending SETTINGS"))
			return
		}
		c.settingsPending = false
		c.settingsDeadline = time.Time{}
		c.localSettingsAcked()
		return
	}
	if c.peerSettingsSeen && c.settingsRate.hit(c.now, c.cfg.SettingsBudget) {
		c.failCalm("settings_flood", "too many SETTINGS frames")
		return
	}
	c.peerSettingsSeen = true
	oldWindow := c.peer.InitialWindowSize
	for i := range f.NumSettings() {
		st := f.setting(i) // values were range-checked by the framer
		switch st.ID {
		case settingEnablePush:
			// "A client MUST treat receipt of a SETTINGS frame with
			// SETTINGS_ENABLE_PUSH set to 1 as a connection error (Section
			// 5.4.1) of type PROTOCOL_ERROR."
			if c.role == Client && st.Val == 1 {
				c.fail(connErr(ErrCodeProtocol, "server sent SETTINGS_ENABLE_PUSH=1"))
				return
			}
		case settingHeaderTableSize:
			c.enc.SetMaxDynamicTableSize(st.Val) // capped at MaxEncoderTableSize
			c.blocks.invalidate()                // entries may be evicted now
		}
		c.peer.apply(st)
	}
	// Window changes are applied once per frame, with the last value: a
	// frame repeating SETTINGS_INITIAL_WINDOW_SIZE a thousand times costs
	// one pass over the streams, not a thousand.
	newWindow := c.peer.InitialWindowSize
	if !c.adjustStreamSendWindows(int64(newWindow) - int64(oldWindow)) {
		return
	}
	grew := newWindow > oldWindow
	// "Upon receiving the SETTINGS frame, the recipient MUST send a SETTINGS
	// frame with the ACK flag set"
	c.out = appendSettingsAck(c.out)
	c.queueCtrl()
	if c.err != nil {
		return
	}
	if grew {
		c.wakeBlocked()
	}
	if c.err == nil {
		c.h.OnSettings(c.peer)
	}
}

func (c *Conn) onPushPromise(f *frame) {
	if c.role == Server {
		// "A client cannot push. Thus, servers MUST treat the receipt of a
		// PUSH_PROMISE frame as a connection error (Section 5.4.1) of type
		// PROTOCOL_ERROR."
		c.fail(connErr(ErrCodeProtocol, "PUSH_PROMISE from a client"))
		return
	}
	// "An endpoint that has set this parameter to 0 and had it acknowledged
	// MUST treat the receipt of a PUSH_PROMISE frame as a connection error
	// (Section 5.4.1) of type PROTOCOL_ERROR." Our SETTINGS precede any
	// request, so a server can never legitimately push to us.
	c.fail(connErr(ErrCodeProtocol, "PUSH_PROMISE with push disabled"))
}

func (c *Conn) onPing(f *frame) {
	if f.IsAck() {
		if c.goAway.phase == 1 && f.PingData == shutdownPing {
			c.goAwayFinal()
			return
		}
		for i := range c.pings {
			if c.pings[i].data == f.PingData {
				p := c.pings[i]
				c.pings = append(c.pings[:i], c.pings[i+1:]...)
				c.h.OnPingAck(p.data, c.now.Sub(p.sent))
				return
			}
		}
		c.junk() // an ACK for nothing we sent
		return
	}
	if c.pingRate.hit(c.now, c.cfg.PingBudget) {
		c.failCalm("ping_flood", "too many PING frames")
		return
	}
	// "Receivers of a PING frame that does not include an ACK flag MUST send
	// a PING frame with the ACK flag set in response, with an identical
	// frame payload."
	c.out = appendPing(c.out, true, f.PingData)
	c.stats.PingsReceived++
	c.queueCtrl()
}

// OnTimer runs the timeouts due at now: the SETTINGS ACK timeout (a
// *ConnError with SETTINGS_TIMEOUT) and the second GOAWAY of Shutdown.
func (c *Conn) OnTimer(now time.Time) error {
	c.now = now
	if c.err != nil {
		return c.err
	}
	if c.settingsPending && !now.Before(c.settingsDeadline) {
		// "If the sender of a SETTINGS frame does not receive an
		// acknowledgment within a reasonable amount of time, it MAY issue a
		// connection error (Section 5.4.1) of type SETTINGS_TIMEOUT."
		c.fail(connErr(ErrCodeSettingsTimeout, "SETTINGS not acknowledged"))
		return c.err
	}
	if c.goAway.phase == 1 && !now.Before(c.goAway.deadline) {
		c.goAwayFinal()
	}
	return nil
}

// NextDeadline returns when OnTimer must next be called, or the zero Time
// when no timer is armed.
func (c *Conn) NextDeadline() time.Time {
	if c.err != nil {
		return time.Time{}
	}
	var d time.Time
	if c.settingsPending {
		d = c.settingsDeadline
	}
	if c.goAway.phase == 1 && (d.IsZero() || c.goAway.deadline.Before(d)) {
		d = c.goAway.deadline
	}
	return d
}

// AppendOutput appends every queued frame to dst, in order, and empties
// the queue.
func (c *Conn) AppendOutput(dst []byte) []byte {
	dst = append(dst, c.out...)
	c.DiscardOutput()
	return dst
}

// Output returns the queued output without copying it. The slice is valid
// until the next call on c; DiscardOutput must follow once it is written
// (or copied), before c is used again.
func (c *Conn) Output() []byte { return c.out }

// DiscardOutput drops the queued output that Output returned.
func (c *Conn) DiscardOutput() {
	c.out = c.out[:0]
	c.queuedCtrl = 0
	if cap(c.out) > maxRetainedOutput {
		c.out = nil
	}
}

// OutputLen returns the number of queued output bytes.
func (c *Conn) OutputLen() int { return len(c.out) }
