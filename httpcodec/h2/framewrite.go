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
func startFrame(dst []byte, t FrameType, flags Flags, streamID uint32) ([]byte, int) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, byte(t), byte(flags),
		byte(streamID>>24)&0x7f, byte(streamID>>16), byte(streamID>>8), byte(streamID))
	return dst, start
}

// endFrame fills in the length of the frame started at start.
func endFrame(dst []byte, start int) []byte {
	n := len(dst) - start - FrameHeaderLen
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

// AppendFrameHeader appends a frame header as is.
func AppendFrameHeader(dst []byte, h FrameHeader) []byte {
	return append(dst, byte(h.Length>>16), byte(h.Length>>8), byte(h.Length), byte(h.Type), byte(h.Flags),
		byte(h.StreamID>>24)&0x7f, byte(h.StreamID>>16), byte(h.StreamID>>8), byte(h.StreamID))
}

// AppendFrame appends a frame of any type with a raw payload (extension
// frames, tests).
func AppendFrame(dst []byte, t FrameType, flags Flags, streamID uint32, payload []byte) []byte {
	dst, start := startFrame(dst, t, flags, streamID)
	dst = append(dst, payload...)
	return endFrame(dst, start)
}

// AppendData appends a DATA frame.
func AppendData(dst []byte, streamID uint32, endStream bool, data []byte) []byte {
	var flags Flags
	if endStream {
		flags = FlagEndStream
	}
	dst, start := startFrame(dst, FrameData, flags, streamID)
	dst = append(dst, data...)
	return endFrame(dst, start)
}

// AppendDataPadded appends a DATA frame with FlagPadded and padLen zero
// octets of padding (padLen 0 still costs the Pad Length octet).
func AppendDataPadded(dst []byte, streamID uint32, endStream bool, data []byte, padLen uint8) []byte {
	flags := FlagPadded
	if endStream {
		flags |= FlagEndStream
	}
	dst, start := startFrame(dst, FrameData, flags, streamID)
	dst = append(dst, padLen)
	dst = append(dst, data...)
	dst = appendPadding(dst, padLen)
	return endFrame(dst, start)
}

// AppendHeaders appends a HEADERS frame without padding or priority.
func AppendHeaders(dst []byte, streamID uint32, endStream, endHeaders bool, fragment []byte) []byte {
	var flags Flags
	if endStream {
		flags |= FlagEndStream
	}
	if endHeaders {
		flags |= FlagEndHeaders
	}
	dst, start := startFrame(dst, FrameHeaders, flags, streamID)
	dst = append(dst, fragment...)
	return endFrame(dst, start)
}

// HeadersParams describes a HEADERS frame for AppendHeadersFrame.
type HeadersParams struct {
	StreamID    uint32
	Fragment    []byte // field block fragment
	EndStream   bool
	EndHeaders  bool
	Padded      bool
	PadLength   uint8
	HasPriority bool
	Priority    Priority
}

// AppendHeadersFrame appends a HEADERS frame with optional padding and
// priority fields.
func AppendHeadersFrame(dst []byte, p HeadersParams) []byte {
	var flags Flags
	if p.EndStream {
		flags |= FlagEndStream
	}
	if p.EndHeaders {
		flags |= FlagEndHeaders
	}
	if p.Padded {
		flags |= FlagPadded
	}
	if p.HasPriority {
		flags |= FlagPriority
	}
	dst, start := startFrame(dst, FrameHeaders, flags, p.StreamID)
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

func appendPriorityFields(dst []byte, p Priority) []byte {
	v := p.StreamDep & MaxStreamID
	if p.Exclusive {
		v |= 1 << 31
	}
	dst = binary.BigEndian.AppendUint32(dst, v)
	return append(dst, p.Weight)
}

// AppendPriority appends a PRIORITY frame.
func AppendPriority(dst []byte, streamID uint32, p Priority) []byte {
	dst, start := startFrame(dst, FramePriority, 0, streamID)
	dst = appendPriorityFields(dst, p)
	return endFrame(dst, start)
}

// AppendRSTStream appends a RST_STREAM frame.
func AppendRSTStream(dst []byte, streamID uint32, code ErrCode) []byte {
	dst, start := startFrame(dst, FrameRSTStream, 0, streamID)
	dst = binary.BigEndian.AppendUint32(dst, uint32(code))
	return endFrame(dst, start)
}

// AppendSettings appends a SETTINGS frame carrying the given parameters.
func AppendSettings(dst []byte, settings ...Setting) []byte {
	dst, start := startFrame(dst, FrameSettings, 0, 0)
	for _, s := range settings {
		dst = binary.BigEndian.AppendUint16(dst, uint16(s.ID))
		dst = binary.BigEndian.AppendUint32(dst, s.Val)
	}
	return endFrame(dst, start)
}

// AppendSettingsAck appends an empty SETTINGS frame with FlagAck.
func AppendSettingsAck(dst []byte) []byte {
	dst, start := startFrame(dst, FrameSettings, FlagAck, 0)
	return endFrame(dst, start)
}

// PushPromiseParams describes a PUSH_PROMISE frame for AppendPushPromise.
type PushPromiseParams struct {
	StreamID   uint32
	PromisedID uint32
	Fragment   []byte
	EndHeaders bool
	Padded     bool
	PadLength  uint8
}

// AppendPushPromise appends a PUSH_PROMISE frame. sluice never pushes; this
// exists for completeness and tests.
func AppendPushPromise(dst []byte, p PushPromiseParams) []byte {
	var flags Flags
	if p.EndHeaders {
		flags |= FlagEndHeaders
	}
	if p.Padded {
		flags |= FlagPadded
	}
	dst, start := startFrame(dst, FramePushPromise, flags, p.StreamID)
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

// AppendPing appends a PING frame, or its acknowledgment when ack is set.
func AppendPing(dst []byte, ack bool, data [8]byte) []byte {
	var flags Flags
	if ack {
		flags = FlagAck
	}
	dst, start := startFrame(dst, FramePing, flags, 0)
	dst = append(dst, data[:]...)
	return endFrame(dst, start)
}

// AppendGoAway appends a GOAWAY frame.
func AppendGoAway(dst []byte, lastStreamID uint32, code ErrCode, debug []byte) []byte {
	dst, start := startFrame(dst, FrameGoAway, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, lastStreamID&MaxStreamID)
	dst = binary.BigEndian.AppendUint32(dst, uint32(code))
	dst = append(dst, debug...)
	return endFrame(dst, start)
}

// AppendWindowUpdate appends a WINDOW_UPDATE frame; streamID 0 addresses the
// connection window.
func AppendWindowUpdate(dst []byte, streamID, increment uint32) []byte {
	dst, start := startFrame(dst, FrameWindowUpdate, 0, streamID)
	dst = binary.BigEndian.AppendUint32(dst, increment&MaxWindowSize)
	return endFrame(dst, start)
}

// AppendContinuation appends a CONTINUATION frame.
func AppendContinuation(dst []byte, streamID uint32, endHeaders bool, fragment []byte) []byte {
	var flags Flags
	if endHeaders {
		flags = FlagEndHeaders
	}
	dst, start := startFrame(dst, FrameContinuation, flags, streamID)
	dst = append(dst, fragment...)
	return endFrame(dst, start)
}
