package h2

import "time"

// Flow control (RFC 9113 §5.2, §6.9).
//
// Receiving: the peer may send as much DATA as the windows we granted. We
// grant more only when the caller reports bytes forwarded or dropped with
// Consumed, so what a peer can make us hold is bounded by ConnWindow (and
// InitialStreamWindow per stream) whatever it does. Padding and DATA we
// discard never reach the caller and are credited back at once. Credit is
// returned in batches of at least half a window, so the peer does not get a
// WINDOW_UPDATE per frame.
//
// Sending: WriteData sends no more than min(connection window, stream
// window); the rest is the caller's to keep, and OnWindowOpen tells it when
// to try again. Windows go negative when the peer lowers
// SETTINGS_INITIAL_WINDOW_SIZE under data in flight; nothing is sent until
// WINDOW_UPDATEs make them positive again.

// maxDataFrame caps DATA frames we write even when the peer accepts larger
// ones, so control frames queued behind them wait at most one 16 KiB frame.
const maxDataFrame = DefaultMaxFrameSize

func (c *Conn) onData(f *frame) {
	flow := int64(f.Length)
	data, es := f.Payload, f.EndStream()
	// "A receiver MUST treat the receipt of a frame that causes the
	// flow-control window to exceed (be smaller than zero) as a connection
	// error (Section 5.4.1) of type FLOW_CONTROL_ERROR" (§6.9.1, connection).
	if flow > c.recvWin {
		c.fail(connErr(ErrCodeFlowControl, "DATA exceeds the connection window"))
		return
	}
	c.recvWin -= flow
	if len(data) == 0 && !es {
		// Empty DATA floods (CVE-2019-9518): nothing to deliver, only work.
		c.junk()
		if c.err != nil {
			return
		}
	}

	s, cls, sm := c.lookup(f.StreamID)
	switch cls {
	case classIdle:
		c.fail(connErr(ErrCodeProtocol, errIdleData.reason))
		return
	case classIgnored:
		c.discard(flow)
		return
	case classClosed:
		// Frames on closed streams still count against the connection
		// window: "the sender ... MUST account for the flow-control window".
		c.discard(flow)
		if sm.cause == causeNone {
			c.rstInactive(f.StreamID, ErrCodeStreamClosed)
			return
		}
		c.applyStateError(f.StreamID, sm.recvData(es))
		return
	}

	if !s.peerCanSend() {
		c.discard(flow)
		c.codecReset(s, errHalfClosedRemote.code, errHalfClosedRemote.reason)
		return
	}
	if flow > s.recvWin {
		// "A receiver MAY respond with a stream error (Section 5.4.2) or
		// connection error (Section 5.4.1) of type FLOW_CONTROL_ERROR if it
		// is unable to accept a frame."
		c.discard(flow)
		c.codecReset(s, ErrCodeFlowControl, "DATA exceeds the stream window")
		return
	}
	if s.contentLength >= 0 {
		total := s.dataRecv + int64(len(data))
		if total > s.contentLength || (es && total != s.contentLength) {
			c.discard(flow)
			c.codecReset(s, ErrCodeProtocol, reasonLengthMismatch)
			return
		}
	}
	s.dataRecv += int64(len(data))
	s.recvWin -= flow
	if pad := flow - int64(len(data)); pad > 0 {
		c.recvUnacked += pad
		if !es {
			s.recvUnacked += pad
		}
	}
	c.recvHeld += int64(len(data))
	s.recvHeld += int64(len(data))
	c.stats.BytesDataIn += uint64(len(data))
	id := s.id
	s.recvData(es)
	if s.state == stateClosed {
		c.closeStream(s)
	} else if s.recvUnacked > 0 {
		c.maybeGrantStream(s)
	}
	c.maybeGrantConn()
	if c.err != nil || (len(data) == 0 && !es) {
		return
	}
	c.h.OnData(id, data, es)
}

// discard credits DATA that will never reach the caller.
func (c *Conn) discard(flow int64) {
	c.recvUnacked += flow
	c.maybeGrantConn()
}

// Consumed reports that the caller is done with n bytes of DATA it received
// on streamID (forwarded, buffered elsewhere, or dropped). It is the only
// thing that reopens the peer's windows. It may be called after the stream
// ended; then only the connection window is credited.
func (c *Conn) Consumed(streamID uint32, n int) {
	if n <= 0 || c.err != nil {
		return
	}
	m := min(int64(n), c.recvHeld) // a caller bug must not overflow the peer's window
	c.recvHeld -= m
	c.recvUnacked += m
	if s := c.streams[streamID]; s != nil {
		k := min(int64(n), s.recvHeld)
		s.recvHeld -= k
		if s.peerCanSend() {
			s.recvUnacked += k
			c.maybeGrantStream(s)
		}
	}
	c.maybeGrantConn()
}

func (c *Conn) maybeGrantConn() {
	if c.recvUnacked <= 0 || c.err != nil || c.recvUnacked < int64(c.cfg.ConnWindow)/2 {
		return
	}
	c.out = appendWindowUpdate(c.out, 0, uint32(c.recvUnacked))
	c.recvWin += c.recvUnacked
	c.recvUnacked = 0
	c.stats.WindowUpdatesOut++
	c.queueCtrl()
}

func (c *Conn) maybeGrantStream(s *stream) {
	if c.err != nil || s.recvUnacked < int64(c.cfg.InitialStreamWindow)/2 {
		return
	}
	c.out = appendWindowUpdate(c.out, s.id, uint32(s.recvUnacked))
	s.recvWin += s.recvUnacked
	s.recvUnacked = 0
	c.stats.WindowUpdatesOut++
	c.queueCtrl()
}

// localSettingsAcked applies what our SETTINGS changes once the peer has
// it: new streams get exactly InitialStreamWindow, and streams opened while
// we accepted the larger of both values drop to ours (possibly negative).
func (c *Conn) localSettingsAcked() {
	want := int64(c.cfg.InitialStreamWindow)
	if delta := want - c.streamRecvInit; delta != 0 {
		for _, s := range c.streams {
			s.recvWin += delta
		}
	}
	c.streamRecvInit = want
}

// adjustStreamSendWindows applies a change of the peer's
// SETTINGS_INITIAL_WINDOW_SIZE: "the recipient MUST adjust the size of all
// stream flow-control windows that it maintains by the difference between
// the new value and the old value." It reports false after failing the
// connection.
func (c *Conn) adjustStreamSendWindows(delta int64) bool {
	if delta == 0 {
		return true
	}
	for _, s := range c.streams {
		s.sendWin += delta
		// "When the value of SETTINGS_INITIAL_WINDOW_SIZE causes any
		// flow-control window to exceed the maximum size, the receiver MUST
		// treat this as a connection error (Section 5.4.1) of type
		// FLOW_CONTROL_ERROR."
		if s.sendWin > MaxWindowSize {
			c.fail(connErr(ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window"))
			return false
		}
	}
	return true
}

func (c *Conn) onWindowUpdate(f *frame) {
	if c.wuRate.hit(c.now, c.cfg.WindowUpdateBudget) {
		c.failCalm("window_update_flood", "too many WINDOW_UPDATE frames")
		return
	}
	incr := int64(f.Increment)
	if f.StreamID == 0 {
		// "A sender MUST NOT allow a flow-control window to exceed 2^31-1
		// octets. If a sender receives a WINDOW_UPDATE that causes a
		// flow-control window to exceed this maximum, it MUST terminate
		// either the stream or the connection, as appropriate. For streams,
		// the sender sends a RST_STREAM with an error code of
		// FLOW_CONTROL_ERROR; for the connection, a GOAWAY frame with an
		// error code of FLOW_CONTROL_ERROR is sent."
		if c.sendWin+incr > MaxWindowSize {
			c.fail(connErr(ErrCodeFlowControl, "connection window above 2^31-1"))
			return
		}
		c.sendWin += incr
		c.wakeBlocked()
		return
	}
	s, cls, sm := c.lookup(f.StreamID)
	switch cls {
	case classIdle:
		c.fail(connErr(ErrCodeProtocol, errIdleWindow.reason))
		return
	case classIgnored:
		c.junk()
		return
	case classClosed:
		c.applyStateError(f.StreamID, sm.recvWindowUpdate())
		return
	}
	if e := s.recvWindowUpdate(); e != nil {
		if e.conn {
			c.fail(connErr(e.code, e.reason))
		} else {
			c.codecReset(s, e.code, e.reason)
		}
		return
	}
	if s.sendWin+incr > MaxWindowSize {
		c.codecReset(s, ErrCodeFlowControl, "stream window above 2^31-1")
		return
	}
	s.sendWin += incr
	if s.blocked && s.sendWin > 0 {
		c.wakeBlocked()
	}
}

// wakeBlocked calls OnWindowOpen, in blocking order, for each blocked
// stream both of whose windows are now positive. A callback that writes
// may use up the connection window; the streams after it stay blocked.
func (c *Conn) wakeBlocked() {
	if len(c.blocked) == 0 || c.sendWin <= 0 || c.err != nil {
		return
	}
	list := c.blocked
	c.blocked = c.blockedSpare[:0]
	for _, id := range list {
		s := c.streams[id]
		if s == nil || !s.blocked {
			continue
		}
		if s.sendWin <= 0 || c.sendWin <= 0 || c.err != nil {
			c.blocked = append(c.blocked, id)
			continue
		}
		s.blocked = false
		c.h.OnWindowOpen(id)
	}
	c.blockedSpare = list[:0]
}

// block puts s on the blocked list; unblock takes it off.
func (c *Conn) block(s *stream) {
	if !s.blocked {
		s.blocked = true
		c.blocked = append(c.blocked, s.id)
	}
}

func (c *Conn) unblock(s *stream) {
	s.blocked = false
	for i, id := range c.blocked {
		if id == s.id {
			c.blocked = append(c.blocked[:i], c.blocked[i+1:]...)
			return
		}
	}
}

// SendWindow returns how many DATA bytes WriteData would accept on
// streamID right now.
func (c *Conn) SendWindow(streamID uint32) int {
	s := c.streams[streamID]
	if s == nil || !s.canSend() || c.err != nil {
		return 0
	}
	return int(max(min(c.sendWin, s.sendWin), 0))
}

// BlockedSince reports whether a WriteData on streamID was cut short by
// flow control with no complete WriteData since, and when that stall
// began. Window openings do not reset it: a peer that reopens its window a
// byte at a time stays "blocked since" the first short write, so a write
// timeout on this value bounds how long a peer can stall a response.
func (c *Conn) BlockedSince(streamID uint32) (since time.Time, blocked bool) {
	s := c.streams[streamID]
	if s == nil || !s.stalled {
		return time.Time{}, false
	}
	return s.blockedSince, true
}

// OldestBlocked returns the stream that has been stalled the longest (see
// BlockedSince), for a per-connection write timeout.
func (c *Conn) OldestBlocked() (streamID uint32, since time.Time, ok bool) {
	for id, s := range c.streams {
		if s.stalled && (!ok || s.blockedSince.Before(since)) {
			streamID, since, ok = id, s.blockedSince, true
		}
	}
	return streamID, since, ok
}
