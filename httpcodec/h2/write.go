package h2

import (
	"time"

	"golang.org/x/net/http2/hpack"
)

// The write methods queue frames; AppendOutput takes them. They validate
// what the caller asks against RFC 9113 and the stream's state and return
// an error instead of sending anything invalid; after a connection error
// they return it.

// OpenStream starts a request (client role): it allocates the next stream
// identifier and queues the HEADERS. fields carry the pseudo-header fields
// first (:method, :scheme, :authority, :path); names must be lowercase.
func (c *Conn) OpenStream(fields []hpack.HeaderField, endStream bool) (uint32, error) {
	if c.role != Client {
		return 0, ErrRole
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.goAway.sent || c.goAway.recv || c.goAway.phase != 0 {
		return 0, ErrGoAway
	}
	if c.activeLocal >= c.peerStreamLimit() {
		return 0, ErrStreamLimit
	}
	if c.nextLocalID > MaxStreamID {
		return 0, ErrStreamIDsExhausted
	}
	h := Headers{ContentLength: -1}
	if r := validateRequest(fields, c.peer.EnableConnectProtocol, &h); r != "" {
		return 0, &HeaderError{Name: blameField(fields, r), Reason: r}
	}
	if headerListSize(fields) > uint64(c.peer.MaxHeaderListSize) {
		return 0, ErrHeaderListTooLarge
	}
	id := c.nextLocalID
	c.nextLocalID += 2
	s := c.newStream(id, true)
	s.sendHeaders(endStream)
	s.sendPhase = phaseFinal
	s.reqHead = h.Method == "HEAD"
	c.writeBlock(id, fields, endStream)
	return id, nil
}

// CanOpenStream reports whether OpenStream would find room for a stream.
func (c *Conn) CanOpenStream() bool {
	return c.role == Client && c.err == nil && !c.goAway.sent && !c.goAway.recv &&
		c.goAway.phase == 0 && c.nextLocalID <= MaxStreamID &&
		c.activeLocal < c.peerStreamLimit()
}

// initialPeerStreamLimit is assumed for the peer's
// SETTINGS_MAX_CONCURRENT_STREAMS until its SETTINGS arrive. The protocol
// says "unlimited" until then, but a server whose limit turns out lower
// refuses the excess, so opening hundreds of streams into the first round
// trip only buys REFUSED_STREAM. 100 is the value RFC 9113 §6.5.2
// recommends as a minimum.
const initialPeerStreamLimit = 100

func (c *Conn) peerStreamLimit() int {
	if !c.peerSettingsSeen {
		return initialPeerStreamLimit
	}
	return int(min(uint64(c.peer.MaxConcurrentStreams), 1<<31))
}

// WriteHeaders queues a response header block (server role): a 1xx
// informational response, or the final response. fields start with
// :status; names must be lowercase.
func (c *Conn) WriteHeaders(streamID uint32, fields []hpack.HeaderField, endStream bool) error {
	if c.err != nil {
		return c.err
	}
	if c.role != Server {
		return ErrRole
	}
	s := c.streams[streamID]
	if s == nil || !s.canSend() {
		return ErrStreamNotWritable
	}
	if s.sendPhase != phaseInitial {
		return ErrHeadersSent
	}
	// A list the cache holds was validated as a response when it was
	// stored; only END_STREAM on a 1xx depends on this call.
	block, cached := c.blocks.lookup(fields)
	status := c.blocks.status
	if !cached || status == 0 || status < 200 && endStream {
		h := Headers{ContentLength: -1}
		if r := validateResponse(fields, endStream, &h); r != "" {
			return &HeaderError{Name: blameField(fields, r), Reason: r}
		}
		status = h.Status
	}
	size := c.blocks.size
	if !cached {
		size = headerListSize(fields)
	}
	if size > uint64(c.peer.MaxHeaderListSize) {
		return ErrHeaderListTooLarge
	}
	s.sendHeaders(endStream)
	if status >= 200 {
		s.sendPhase = phaseFinal
	}
	if !cached {
		block = c.encodeBlock(fields)
	}
	c.blocks.validated(status)
	c.frameBlock(streamID, block, endStream)
	c.afterSend(s)
	return nil
}

// WriteTrailers queues a trailer block, which ends this side of the stream.
// It is refused before the final headers.
func (c *Conn) WriteTrailers(streamID uint32, fields []hpack.HeaderField) error {
	if c.err != nil {
		return c.err
	}
	s := c.streams[streamID]
	if s == nil || !s.canSend() {
		return ErrStreamNotWritable
	}
	if s.sendPhase != phaseFinal {
		return ErrHeadersNotSent
	}
	if r := validateTrailers(fields, true); r != "" {
		return &HeaderError{Name: blameField(fields, r), Reason: r}
	}
	if headerListSize(fields) > uint64(c.peer.MaxHeaderListSize) {
		return ErrHeaderListTooLarge
	}
	s.sendHeaders(true)
	s.sendPhase = phaseTrailers
	c.writeBlock(streamID, fields, true)
	if s.blocked {
		c.unblock(s)
	}
	s.stalled = false
	c.afterSend(s)
	return nil
}

// WriteData queues as much of p as the connection and stream send windows
// allow, split into frames, and returns how much that was. END_STREAM goes
// out only with the last byte of p: when n < len(p), the stream is marked
// blocked, OnWindowOpen fires once the windows reopen, and the caller calls
// again with p[n:]. An empty p with endStream ends the stream at once.
func (c *Conn) WriteData(streamID uint32, p []byte, endStream bool) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	s := c.streams[streamID]
	if s == nil || !s.canSend() {
		return 0, ErrStreamNotWritable
	}
	if s.sendPhase != phaseFinal {
		if s.sendPhase == phaseInitial {
			return 0, ErrHeadersNotSent
		}
		return 0, ErrStreamNotWritable // after trailers
	}
	n := int(max(min(c.sendWin, s.sendWin, int64(len(p))), 0))
	frames := 0
	for off := 0; off < n; {
		k := min(n-off, maxDataFrame, int(c.peer.MaxFrameSize))
		last := off+k == n
		c.out = appendData(c.out, streamID, endStream && last && n == len(p), p[off:off+k])
		off += k
		frames++
	}
	if len(p) == 0 && endStream {
		c.out = appendData(c.out, streamID, true, nil)
		frames++
	}
	c.sendWin -= int64(n)
	s.sendWin -= int64(n)
	c.stats.BytesDataOut += uint64(n)
	c.wuRate.earn(c.now, c.cfg.WindowUpdateBudget, frames)
	if n < len(p) {
		if !s.stalled {
			s.stalled = true
			s.blockedSince = c.now
		}
		c.block(s)
		c.stats.FlowStalls++
		return n, nil
	}
	s.stalled = false
	if s.blocked {
		c.unblock(s)
	}
	if endStream {
		s.sendData(true)
		c.afterSend(s)
	}
	return n, nil
}

// afterSend retires a stream our END_STREAM closed.
func (c *Conn) afterSend(s *stream) {
	if s.state == stateClosed {
		c.closeStream(s)
	}
}

// ResetStream ends a stream with RST_STREAM carrying code (CANCEL when the
// downstream went away, REFUSED_STREAM when nothing was processed...).
// Frames the peer already sent on it are ignored. Resetting a stream that
// is already closed does nothing.
func (c *Conn) ResetStream(streamID uint32, code ErrCode) error {
	if c.err != nil {
		return c.err
	}
	s := c.streams[streamID]
	if s == nil {
		return nil
	}
	s.sendReset()
	c.closeStream(s)
	c.out = appendRSTStream(c.out, streamID, code)
	c.stats.ResetsSent.add(code)
	return nil
}

// Ping queues a PING carrying data; Handler.OnPingAck reports its ACK with
// the round-trip time measured from now.
func (c *Conn) Ping(now time.Time, data [8]byte) error {
	c.now = now
	if c.err != nil {
		return c.err
	}
	if len(c.pings) >= c.cfg.MaxOutstandingPings {
		return ErrTooManyPings
	}
	c.pings = append(c.pings, pendingPing{data: data, sent: now})
	c.out = appendPing(c.out, false, data)
	return nil
}

// writeBlock encodes fields and queues them as HEADERS plus as many
// CONTINUATION frames as the peer's SETTINGS_MAX_FRAME_SIZE requires.
func (c *Conn) writeBlock(id uint32, fields []hpack.HeaderField, endStream bool) {
	block, ok := c.blocks.lookup(fields)
	if !ok {
		block = c.encodeBlock(fields)
	}
	c.frameBlock(id, block, endStream)
}

// encodeBlock runs the HPACK encoder over fields and offers the block to
// the cache. The block is valid until the next encoding.
func (c *Conn) encodeBlock(fields []hpack.HeaderField) []byte {
	c.encBuf.b = c.encBuf.b[:0]
	for i := range fields {
		c.enc.WriteField(fields[i]) // cannot fail: blockWriter never does
	}
	c.blocks.store(fields, c.encBuf.b)
	return c.encBuf.b
}

// frameBlock queues an encoded block as HEADERS and CONTINUATION frames.
func (c *Conn) frameBlock(id uint32, block []byte, endStream bool) {
	maxFrag := int(c.peer.MaxFrameSize)
	first := true
	for first || len(block) > 0 {
		n := min(len(block), maxFrag)
		frag := block[:n]
		block = block[n:]
		if first {
			c.out = appendHeaders(c.out, id, endStream, len(block) == 0, frag)
			first = false
		} else {
			c.out = appendContinuation(c.out, id, len(block) == 0, frag)
		}
	}
}
