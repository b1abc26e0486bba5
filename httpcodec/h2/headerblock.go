package h2

import (
	"golang.org/x/net/http2/hpack"
)

// blockKind is what a received header block will become.
type blockKind uint8

const (
	blockRequest  blockKind = iota // server: opens a stream
	blockResponse                  // client: 1xx or final response
	blockTrailers                  // either role: trailers
	blockDiscard                   // decode for HPACK's sake, then drop
	blockReset                     // decode, drop, answer with RST_STREAM
)

// headerBlock is the header block being received. HEADERS and its
// CONTINUATION frames are fed to the HPACK decoder as they arrive, so the
// block itself is never buffered; only decoded fields are kept, and only up
// to MaxHeaderListSize.
type headerBlock struct {
	active    bool
	streamID  uint32
	kind      blockKind
	endStream bool
	frames    int
	bytes     uint64
	listSize  uint64
	tooLarge  bool // the decoded list passed MaxHeaderListSize; emission stopped

	resetCode   ErrCode // blockReset
	resetReason string
	resetActive bool // blockReset of a stream the caller knows: OnReset
}

// onField is the HPACK decoder's emit function. The size limit is applied
// here, field by field, so an oversized list is never materialized: once
// over, emission is switched off and the rest of the block is only decoded
// enough to keep the dynamic table in sync.
func (c *Conn) onField(f hpack.HeaderField) {
	size := uint64(len(f.Name)) + uint64(len(f.Value)) + 32
	if c.hb.listSize+size > uint64(c.cfg.MaxHeaderListSize) {
		c.hb.tooLarge = true
		c.dec.SetEmitEnabled(false)
		return
	}
	c.hb.listSize += size
	c.fields = append(c.fields, f)
}

func (c *Conn) beginBlock(id uint32, kind blockKind, endStream bool) {
	clear(c.fields) // drop references to the previous block's strings
	c.fields = c.fields[:0]
	c.hb = headerBlock{active: true, streamID: id, kind: kind, endStream: endStream}
	c.dec.SetEmitEnabled(kind == blockRequest || kind == blockResponse || kind == blockTrailers)
}

// beginReset starts a block that will be answered with RST_STREAM.
func (c *Conn) beginReset(id uint32, code ErrCode, reason string, active bool) {
	c.beginBlock(id, blockReset, false)
	c.hb.resetCode, c.hb.resetReason, c.hb.resetActive = code, reason, active
}

// onHeaders starts a header block. pending is a stream error the framer
// found in the frame (self-dependency): the block is decoded, then the
// stream reset.
func (c *Conn) onHeaders(f *frame, pending *StreamError) {
	id, es := f.StreamID, f.EndStream()
	if !c.peerInitiated(id) {
		if c.role == Server {
			// "Streams initiated by a client MUST use odd-numbered stream
			// identifiers"
			c.fail(connErr(ErrCodeProtocol, "HEADERS on an even stream from a client"))
			return
		}
	} else if c.role == Client {
		// A server stream can only be opened by PUSH_PROMISE, which we refuse.
		c.fail(connErr(ErrCodeProtocol, "HEADERS on a stream the server cannot open"))
		return
	}

	if c.role == Server && id > c.maxSeenPeerID {
		// "The identifier of a newly established stream MUST be numerically
		// greater than all streams that the initiating endpoint has opened
		// or reserved." Anything at or below is closed, handled further down.
		c.maxSeenPeerID = id
		switch {
		case c.goAway.sent && id > c.goAway.lastID:
			// After GOAWAY: "the sender will ignore frames sent on streams
			// initiated by the receiver if the stream has an identifier
			// higher than the included last stream identifier."
			c.beginBlock(id, blockDiscard, es)
		case pending != nil:
			c.lastProcessedPeerID = id
			c.beginReset(id, pending.Code, pending.Reason, false)
		case uint32(c.activePeer) >= c.cfg.MaxConcurrentStreams:
			// "An endpoint that receives a HEADERS frame that causes its
			// advertised concurrent stream limit to be exceeded MUST treat
			// this as a stream error (Section 5.4.2) of type PROTOCOL_ERROR
			// or REFUSED_STREAM." REFUSED_STREAM tells the client it may retry.
			c.lastProcessedPeerID = id
			c.stats.StreamsRefused++
			c.count("refused_stream")
			c.beginReset(id, ErrCodeRefusedStream, "concurrent stream limit", false)
		default:
			c.lastProcessedPeerID = id
			c.beginBlock(id, blockRequest, es)
		}
		c.blockFragment(f.Payload, f.EndHeaders())
		return
	}
	if c.role == Client && id >= c.nextLocalID {
		c.fail(connErr(ErrCodeProtocol, "HEADERS on idle stream"))
		return
	}

	s, cls, sm := c.lookup(id)
	switch cls {
	case classActive:
		switch {
		case pending != nil:
			c.beginReset(id, pending.Code, pending.Reason, true)
		case !s.peerCanSend():
			c.beginReset(id, errHalfClosedRemote.code, errHalfClosedRemote.reason, true)
		case s.recvPhase == phaseInitial && c.role == Client:
			c.beginBlock(id, blockResponse, es)
		default:
			c.beginBlock(id, blockTrailers, es)
		}
	case classIgnored:
		c.beginBlock(id, blockDiscard, es)
	default: // classClosed
		if sm.cause == causeNone {
			// Not remembered: a skipped (implicitly closed) or long-closed
			// stream. "An endpoint that receives an unexpected stream
			// identifier MUST respond with a connection error (Section
			// 5.4.1) of type PROTOCOL_ERROR."
			c.fail(connErr(ErrCodeProtocol, "HEADERS on closed stream"))
			return
		}
		e := sm.recvHeaders(es)
		switch {
		case e.ignore:
			c.beginBlock(id, blockDiscard, es)
		case e.conn:
			c.fail(connErr(e.code, e.reason))
			return
		default:
			c.beginReset(id, e.code, e.reason, false)
		}
	}
	c.blockFragment(f.Payload, f.EndHeaders())
}

func (c *Conn) onContinuation(f *frame) {
	if !c.hb.active {
		// "A CONTINUATION frame MUST be preceded by a HEADERS, PUSH_PROMISE
		// or CONTINUATION frame without the END_HEADERS flag set. A
		// recipient that observes violation of this rule MUST respond with a
		// connection error (Section 5.4.1) of type PROTOCOL_ERROR."
		c.fail(connErr(ErrCodeProtocol, "CONTINUATION without a header block"))
		return
	}
	c.blockFragment(f.Payload, f.EndHeaders())
}

// blockFragment decodes one fragment. The frame count and byte caps stop
// CONTINUATION floods (CVE-2024-27316 and kin) before they cost more than
// a bounded amount of decoding; a block cut short would leave HPACK out of
// sync, so exceeding them ends the connection.
func (c *Conn) blockFragment(frag []byte, end bool) {
	c.hb.frames++
	c.hb.bytes += uint64(len(frag))
	if c.hb.frames > c.cfg.MaxHeaderBlockFrames {
		c.failCalm("continuation_flood", "too many CONTINUATION frames")
		return
	}
	if c.hb.bytes > uint64(c.cfg.MaxHeaderBlockBytes) {
		c.failCalm("header_block_too_large", "header block too large")
		return
	}
	if _, err := c.dec.Write(frag); err != nil {
		if err == hpack.ErrStringLength {
			// Longer than any string a permitted block can carry: our
			// limit, not a compression fault.
			c.failCalm("header_block_too_large", "header field too large")
			return
		}
		// "A decoding error in a field block MUST be treated as a
		// connection error (Section 5.4.1) of type COMPRESSION_ERROR."
		c.fail(connErr(ErrCodeCompression, "HPACK decoding failed"))
		return
	}
	if end {
		c.endBlock()
	}
}

var status431 = []hpack.HeaderField{{Name: ":status", Value: "431"}}

func (c *Conn) endBlock() {
	hb := c.hb
	c.hb.active = false
	err := c.dec.Close()
	c.dec.SetEmitEnabled(true)
	if err != nil {
		c.fail(connErr(ErrCodeCompression, "HPACK block truncated"))
		return
	}
	switch hb.kind {
	case blockDiscard:
	case blockReset:
		if s := c.streams[hb.streamID]; s != nil && hb.resetActive {
			c.codecReset(s, hb.resetCode, hb.resetReason)
		} else {
			c.count(hb.resetReason)
			c.rstInactive(hb.streamID, hb.resetCode)
		}
	case blockRequest:
		c.endRequest(&hb)
	case blockResponse:
		c.endResponse(&hb)
	case blockTrailers:
		c.endTrailers(&hb)
	}
}

// endRequest opens a stream for a complete, valid request (server role).
func (c *Conn) endRequest(hb *headerBlock) {
	id, es := hb.streamID, hb.endStream
	if hb.tooLarge {
		c.reject431(id, es)
		return
	}
	c.hdrs.reset()
	r := validateRequest(c.fields, c.local.EnableConnectProtocol, &c.hdrs)
	if r == "" && es && c.hdrs.ContentLength > 0 {
		// "A request or response is also malformed if the value of a
		// content-length header field does not equal the sum of the DATA
		// frame payload lengths that form the content"
		r = reasonLengthMismatch
	}
	if r != "" {
		c.count(r)
		c.rstInactive(id, ErrCodeProtocol)
		return
	}
	s := c.newStream(id, false)
	s.recvHeaders(es)
	s.recvPhase = phaseFinal
	s.contentLength = c.hdrs.ContentLength
	c.deliverHeaders(id, es)
}

// reject431 answers a request whose header list passed our limit: "A
// server that receives a larger field block than it is willing to handle
// can send an HTTP 431 (Request Header Fields Too Large) status code". If
// the client is still sending, RST_STREAM NO_ERROR asks it to stop (§8.1).
func (c *Conn) reject431(id uint32, endStream bool) {
	c.count("header_list_too_large")
	c.stats.StreamsRefused++
	c.writeBlock(id, status431, true)
	if endStream {
		c.closed.add(closedEntry{id: id, cause: causeEndStream, at: c.nowNanos()}, c.cfg.MaxClosedStreams)
		c.countReset()
		return
	}
	c.rstInactive(id, ErrCodeNo)
}

// endResponse handles a 1xx or final response (client role).
func (c *Conn) endResponse(hb *headerBlock) {
	s := c.streams[hb.streamID]
	if s == nil {
		return // the caller reset it while the block was arriving
	}
	es := hb.endStream
	if hb.tooLarge {
		// "A client can discard responses that it cannot process."
		c.codecReset(s, ErrCodeCancel, "response header list too large")
		return
	}
	c.hdrs.reset()
	if r := validateResponse(c.fields, es, &c.hdrs); r != "" {
		c.codecReset(s, ErrCodeProtocol, r)
		return
	}
	if c.hdrs.Status >= 200 {
		s.recvPhase = phaseFinal
		s.contentLength = c.hdrs.ContentLength
		// A response to HEAD, or a 304, describes a body it does not carry.
		if s.reqHead || c.hdrs.Status == 304 {
			s.contentLength = -1
		}
		if es && s.contentLength > 0 {
			c.codecReset(s, ErrCodeProtocol, reasonLengthMismatch)
			return
		}
		s.recvHeaders(es)
		if s.state == stateClosed {
			c.closeStream(s)
		}
	}
	c.deliverHeaders(hb.streamID, es)
}

func (c *Conn) endTrailers(hb *headerBlock) {
	s := c.streams[hb.streamID]
	if s == nil {
		return
	}
	if hb.tooLarge {
		c.codecReset(s, ErrCodeCancel, "trailer list too large")
		return
	}
	if r := validateTrailers(c.fields, hb.endStream); r != "" {
		c.codecReset(s, ErrCodeProtocol, r)
		return
	}
	if s.contentLength >= 0 && s.dataRecv != s.contentLength {
		c.codecReset(s, ErrCodeProtocol, reasonLengthMismatch)
		return
	}
	s.recvPhase = phaseTrailers
	s.recvHeaders(true)
	if s.state == stateClosed {
		c.closeStream(s)
	}
	c.h.OnTrailers(hb.streamID, c.fields)
}

func (c *Conn) deliverHeaders(id uint32, endStream bool) {
	c.hdrs.Fields = c.fields
	c.hdrs.EndStream = endStream
	c.h.OnHeaders(id, &c.hdrs)
}
