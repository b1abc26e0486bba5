package h2

import "encoding/binary"

// Encoders append one frame to dst and return the extended slice, in the
// manner of strconv.AppendInt. They write the header with a zero length,
// append the payload, then fill the length in: the frame is built in place
// with no intermediate buffer.
//
// They do not validate their arguments. The caller keeps payloads within
// the peer's SETTINGS_MAX_FRAME_SIZE (and below 2^24), stream identifiers
// within 31 bits and nonzero where the type requires it, and window
// increments within 1..2^31-1; Conn does all of that.

// startFrame appends a frame header with a zero length and returns the
// offset of the header, for endFrame.
func startFrame(dst []byte, t frameType, flags frameFlags, streamID uint32) ([]byte, int) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, byte(t), byte(flags),
		byte(streamID>>24)&0x7f, byte(streamID>>16), byte(streamID>>8), byte(streamID))
	return dst, start
}

// endFrame fills in the length of the frame started at start.
func endFrame(dst []byte, start int) []byte {
	n := len(dst) - start - frameHeaderLen
	dst[start] = byte(n >> 16)
	dst[start+1] = byte(n >> 8)
	dst[start+2] = byte(n)
	return dst
}

// appendPadding appends n zero octets: "Padding octets MUST be set to zero
// when sending."
func appendPadding(dst []byte, n uint8) []byte {
	for range n {
		dst = append(dst, 0)
	}
	return dst
}

// appendFrameHeader appends a frame header as is.
func appendFrameHeader(dst []byte, h frameHeader) []byte {
	return append(dst, byte(h.Length>>16), byte(h.Length>>8), byte(h.Length), byte(h.Type), byte(h.Flags),
		byte(h.StreamID>>24)&0x7f, byte(h.StreamID>>16), byte(h.StreamID>>8), byte(h.StreamID))
}

// appendFrame appends a frame of any type with a raw payload (extension
// frames, tests).
func appendFrame(dst []byte, t frameType, flags frameFlags, streamID uint32, payload []byte) []byte {
	dst, start := startFrame(dst, t, flags, streamID)
	dst = append(dst, payload...)
	return endFrame(dst, start)
}

// appendData appends a DATA frame.
func appendData(dst []byte, streamID uint32, endStream bool, data []byte) []byte {
	var flags frameFlags
	if endStream {
		flags = flagEndStream
	}
	dst, start := startFrame(dst, frameData, flags, streamID)
	dst = append(dst, data...)
	return endFrame(dst, start)
}

// appendDataPadded appends a DATA frame with flagPadded and padLen zero
// octets of padding (padLen 0 still costs the Pad Length octet).
func appendDataPadded(dst []byte, streamID uint32, endStream bool, data []byte, padLen uint8) []byte {
	flags := flagPadded
	if endStream {
		flags |= flagEndStream
	}
	dst, start := startFrame(dst, frameData, flags, streamID)
	dst = append(dst, padLen)
	dst = append(dst, data...)
	dst = appendPadding(dst, padLen)
	return endFrame(dst, start)
}

// appendHeaders appends a HEADERS frame without padding or priority.
func appendHeaders(dst []byte, streamID uint32, endStream, endHeaders bool, fragment []byte) []byte {
	var flags frameFlags
	if endStream {
		flags |= flagEndStream
	}
	if endHeaders {
		flags |= flagEndHeaders
	}
	dst, start := startFrame(dst, frameHeaders, flags, streamID)
	dst = append(dst, fragment...)
	return endFrame(dst, start)
}

// headersParams describes a HEADERS frame for appendHeadersFrame.
type headersParams struct {
	StreamID    uint32
	Fragment    []byte // field block fragment
	EndStream   bool
	EndHeaders  bool
	Padded      bool
	PadLength   uint8
	HasPriority bool
	Priority    priority
}

// appendHeadersFrame appends a HEADERS frame with optional padding and
// priority fields.
func appendHeadersFrame(dst []byte, p headersParams) []byte {
	var flags frameFlags
	if p.EndStream {
		flags |= flagEndStream
	}
	if p.EndHeaders {
		flags |= flagEndHeaders
	}
	if p.Padded {
		flags |= flagPadded
	}
	if p.HasPriority {
		flags |= flagPriority
	}
	dst, start := startFrame(dst, frameHeaders, flags, p.StreamID)
	if p.Padded {
		dst = append(dst, p.PadLength)
	}
	if p.HasPriority {
		dst = appendPriorityFields(dst, p.Priority)
	}
	dst = append(dst, p.Fragment...)
	if p.Padded {
		dst = appendPadding(dst, p.PadLength)
	}
	return endFrame(dst, start)
}

func appendPriorityFields(dst []byte, p priority) []byte {
	v := p.StreamDep & MaxStreamID
	if p.Exclusive {
		v |= 1 << 31
	}
	dst = binary.BigEndian.AppendUint32(dst, v)
	return append(dst, p.Weight)
}

// appendPriority appends a PRIORITY frame.
func appendPriority(dst []byte, streamID uint32, p priority) []byte {
	dst, start := startFrame(dst, framePriority, 0, streamID)
	dst = appendPriorityFields(dst, p)
	return endFrame(dst, start)
}

// appendRSTStream appends a RST_STREAM frame.
func appendRSTStream(dst []byte, streamID uint32, code ErrCode) []byte {
	dst, start := startFrame(dst, frameRSTStream, 0, streamID)
	dst = binary.BigEndian.AppendUint32(dst, uint32(code))
	return endFrame(dst, start)
}

// appendSettings appends a SETTINGS frame carrying the given parameters.
func appendSettings(dst []byte, settings ...setting) []byte {
	dst, start := startFrame(dst, frameSettings, 0, 0)
	for _, s := range settings {
		dst = binary.BigEndian.AppendUint16(dst, uint16(s.ID))
		dst = binary.BigEndian.AppendUint32(dst, s.Val)
	}
	return endFrame(dst, start)
}

// appendSettingsAck appends an empty SETTINGS frame with flagAck.
func appendSettingsAck(dst []byte) []byte {
	dst, start := startFrame(dst, frameSettings, flagAck, 0)
	return endFrame(dst, start)
}

// pushPromiseParams describes a PUSH_PROMISE frame for appendPushPromise.
type pushPromiseParams struct {
	StreamID   uint32
	PromisedID uint32
	Fragment   []byte
	EndHeaders bool
	Padded     bool
	PadLength  uint8
}

// appendPushPromise appends a PUSH_PROMISE frame. sluice never pushes; this
// exists for completeness and tests.
func appendPushPromise(dst []byte, p pushPromiseParams) []byte {
	var flags frameFlags
	if p.EndHeaders {
		flags |= flagEndHeaders
	}
	if p.Padded {
		flags |= flagPadded
	}
	dst, start := startFrame(dst, framePushPromise, flags, p.StreamID)
	if p.Padded {
		dst = append(dst, p.PadLength)
	}
	dst = binary.BigEndian.AppendUint32(dst, p.PromisedID&MaxStreamID)
	dst = append(dst, p.Fragment...)
	if p.Padded {
		dst = appendPadding(dst, p.PadLength)
	}
	return endFrame(dst, start)
}

// appendPing appends a PING frame, or its acknowledgment when ack is set.
func appendPing(dst []byte, ack bool, data [8]byte) []byte {
	var flags frameFlags
	if ack {
		flags = flagAck
	}
	dst, start := startFrame(dst, framePing, flags, 0)
	dst = append(dst, data[:]...)
	return endFrame(dst, start)
}

// appendGoAway appends a GOAWAY frame.
func appendGoAway(dst []byte, lastStreamID uint32, code ErrCode, debug []byte) []byte {
	dst, start := startFrame(dst, frameGoAway, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, lastStreamID&MaxStreamID)
	dst = binary.BigEndian.AppendUint32(dst, uint32(code))
	dst = append(dst, debug...)
	return endFrame(dst, start)
}

// appendWindowUpdate appends a WINDOW_UPDATE frame; streamID 0 addresses the
// connection window.
func appendWindowUpdate(dst []byte, streamID, increment uint32) []byte {
	dst, start := startFrame(dst, frameWindowUpdate, 0, streamID)
	dst = binary.BigEndian.AppendUint32(dst, increment&MaxWindowSize)
	return endFrame(dst, start)
}

// appendContinuation appends a CONTINUATION frame.
func appendContinuation(dst []byte, streamID uint32, endHeaders bool, fragment []byte) []byte {
	var flags frameFlags
	if endHeaders {
		flags = flagEndHeaders
	}
	dst, start := startFrame(dst, frameContinuation, flags, streamID)
	dst = append(dst, fragment...)
	return endFrame(dst, start)
}
