package h2

import (
	"encoding/binary"
	"strconv"
)

// FrameHeaderLen is the size of the fixed frame header (RFC 9113 §4.1).
const FrameHeaderLen = 9

// ClientPreface is the fixed start of every client connection (RFC 9113 §3.4),
// followed by a SETTINGS frame.
const ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// FrameType is the 8-bit type of a frame (RFC 9113 §6).
type FrameType uint8

// Frame types of RFC 9113 §6.
const (
	FrameData         FrameType = 0x0
	FrameHeaders      FrameType = 0x1
	FramePriority     FrameType = 0x2
	FrameRSTStream    FrameType = 0x3
	FrameSettings     FrameType = 0x4
	FramePushPromise  FrameType = 0x5
	FramePing         FrameType = 0x6
	FrameGoAway       FrameType = 0x7
	FrameWindowUpdate FrameType = 0x8
	FrameContinuation FrameType = 0x9
)

var frameNames = [...]string{
	FrameData:         "DATA",
	FrameHeaders:      "HEADERS",
	FramePriority:     "PRIORITY",
	FrameRSTStream:    "RST_STREAM",
	FrameSettings:     "SETTINGS",
	FramePushPromise:  "PUSH_PROMISE",
	FramePing:         "PING",
	FrameGoAway:       "GOAWAY",
	FrameWindowUpdate: "WINDOW_UPDATE",
	FrameContinuation: "CONTINUATION",
}

// String returns the RFC name of the type, or UNKNOWN_0x.. for extension types.
func (t FrameType) String() string {
	if int(t) < len(frameNames) {
		return frameNames[t]
	}
	return "UNKNOWN_0x" + strconv.FormatUint(uint64(t), 16)
}

// Flags are the 8 flag bits of a frame header. Their meaning depends on the type.
type Flags uint8

// Frame flags (RFC 9113 §6).
const (
	FlagEndStream  Flags = 0x1  // DATA, HEADERS
	FlagAck        Flags = 0x1  // SETTINGS, PING
	FlagEndHeaders Flags = 0x4  // HEADERS, PUSH_PROMISE, CONTINUATION
	FlagPadded     Flags = 0x8  // DATA, HEADERS, PUSH_PROMISE
	FlagPriority   Flags = 0x20 // HEADERS
)

// Has reports whether all bits of v are set.
func (f Flags) Has(v Flags) bool { return f&v == v }

// FrameHeader is the 9-octet header every frame starts with (RFC 9113 §4.1).
type FrameHeader struct {
	Length   uint32 // payload length, 24 bits
	Type     FrameType
	Flags    Flags
	StreamID uint32 // 31 bits; the reserved bit is dropped when read
}

// ParseFrameHeader decodes the first FrameHeaderLen bytes of b. ok is false
// when b is shorter than that.
func ParseFrameHeader(b []byte) (h FrameHeader, ok bool) {
	if len(b) < FrameHeaderLen {
		return h, false
	}
	h.Length = uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
	h.Type = FrameType(b[3])
	h.Flags = Flags(b[4])
	// "The semantics of this bit are undefined, and the bit MUST remain
	// unset (0x00) when sending and MUST be ignored when receiving."
	h.StreamID = binary.BigEndian.Uint32(b[5:9]) & MaxStreamID
	return h, true
}

// Priority is the dependency information of a PRIORITY frame or of a
// HEADERS frame with the PRIORITY flag (RFC 9113 §5.3.2, deprecated). It is
// parsed and validated, never acted upon.
type Priority struct {
	StreamDep uint32
	Exclusive bool
	Weight    uint8 // wire value; the weight is Weight+1
}

// Frame is one parsed frame. Which fields are set depends on Type; the
// slices alias the buffer passed to Framer.ReadFrame, and the Frame itself
// is reused, so both are valid only until the next ReadFrame or until that
// buffer is modified.
type Frame struct {
	FrameHeader

	// Payload is, by type: DATA: the data, padding removed. HEADERS,
	// PUSH_PROMISE, CONTINUATION: the field block fragment, padding and
	// priority removed. SETTINGS: the raw parameters (see NumSettings,
	// Setting). GOAWAY: the debug data. Unknown types: the whole payload.
	Payload []byte

	PadLength    uint8    // DATA, HEADERS, PUSH_PROMISE with FlagPadded
	Priority     Priority // PRIORITY, HEADERS with FlagPriority
	Code         ErrCode  // RST_STREAM, GOAWAY
	LastStreamID uint32   // GOAWAY
	PromisedID   uint32   // PUSH_PROMISE
	Increment    uint32   // WINDOW_UPDATE
	PingData     [8]byte  // PING
}

// EndStream reports FlagEndStream on a DATA or HEADERS frame.
func (f *Frame) EndStream() bool {
	return (f.Type == FrameData || f.Type == FrameHeaders) && f.Flags.Has(FlagEndStream)
}

// EndHeaders reports FlagEndHeaders on a HEADERS, PUSH_PROMISE or CONTINUATION frame.
func (f *Frame) EndHeaders() bool {
	return (f.Type == FrameHeaders || f.Type == FramePushPromise || f.Type == FrameContinuation) &&
		f.Flags.Has(FlagEndHeaders)
}

// IsAck reports FlagAck on a SETTINGS or PING frame.
func (f *Frame) IsAck() bool {
	return (f.Type == FrameSettings || f.Type == FramePing) && f.Flags.Has(FlagAck)
}

// FlowLen is the number of bytes a DATA frame counts against flow control:
// "The entire DATA frame payload is included in flow control, including the
// Pad Length and Padding fields if present." Zero for other types.
func (f *Frame) FlowLen() uint32 {
	if f.Type != FrameData {
		return 0
	}
	return f.Length
}

// NumSettings returns the number of parameters in a SETTINGS frame.
func (f *Frame) NumSettings() int {
	if f.Type != FrameSettings {
		return 0
	}
	return len(f.Payload) / 6
}

// Setting returns the i-th parameter of a SETTINGS frame.
func (f *Frame) Setting(i int) Setting {
	p := f.Payload[i*6 : i*6+6]
	return Setting{ID: SettingID(binary.BigEndian.Uint16(p)), Val: binary.BigEndian.Uint32(p[2:])}
}

// Framer parses frames out of caller-owned buffers. It checks every rule
// RFC 9113 states about a frame on its own (lengths, stream 0, flags,
// padding, setting values); rules that involve other frames or stream state
// (CONTINUATION sequencing, stream states, windows) belong to Conn.
//
// The zero value accepts frames up to DefaultMaxFrameSize.
type Framer struct {
	// MaxReadFrameSize is the largest payload accepted: the
	// SETTINGS_MAX_FRAME_SIZE this endpoint advertised. 0 means 16384.
	MaxReadFrameSize uint32

	f Frame
}

// ReadFrame parses the frame at the start of b.
//
// It returns ErrNeedMore (n == 0) when b does not hold a whole frame. An
// oversized frame is reported as soon as its header is readable.
//
// On success it returns the frame and n, the bytes it occupies in b. The
// Frame and its slices stay valid until the next call or until b changes.
//
// A *ConnError means the connection must end. A *StreamError comes with a
// valid frame and n: the frame is well formed enough to skip (and for
// HEADERS, its field block must still be decoded to keep HPACK in sync).
func (fr *Framer) ReadFrame(b []byte) (f *Frame, n int, err error) {
	h, ok := ParseFrameHeader(b)
	if !ok {
		return nil, 0, ErrNeedMore
	}
	max := fr.MaxReadFrameSize
	if max == 0 {
		max = DefaultMaxFrameSize
	}
	// "An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame
	// exceeds the size defined in SETTINGS_MAX_FRAME_SIZE". Checked before
	// the payload arrives so a peer cannot make us wait for 16 MiB.
	if h.Length > max {
		return nil, 0, connErr(ErrCodeFrameSize, "frame larger than SETTINGS_MAX_FRAME_SIZE")
	}
	end := FrameHeaderLen + int(h.Length)
	if len(b) < end {
		return nil, 0, ErrNeedMore
	}
	f = &fr.f
	*f = Frame{FrameHeader: h}
	parse := parseUnknown
	if int(h.Type) < len(frameParsers) {
		parse = frameParsers[h.Type]
	}
	if err := parse(f, b[FrameHeaderLen:end]); err != nil {
		if se, ok := err.(*StreamError); ok {
			return f, end, se
		}
		return nil, 0, err
	}
	return f, end, nil
}

// frameParsers is indexed by frame type. Each parser fills f from the
// payload p and enforces the MUSTs of that type's section, quoted beside
// the check. Types past the table are extension frames: "Implementations
// MUST ignore and discard frames of unknown types."
var frameParsers = [...]func(f *Frame, p []byte) error{
	FrameData:         parseData,
	FrameHeaders:      parseHeaders,
	FramePriority:     parsePriority,
	FrameRSTStream:    parseRSTStream,
	FrameSettings:     parseSettings,
	FramePushPromise:  parsePushPromise,
	FramePing:         parsePing,
	FrameGoAway:       parseGoAway,
	FrameWindowUpdate: parseWindowUpdate,
	FrameContinuation: parseContinuation,
}

func parseUnknown(f *Frame, p []byte) error {
	f.Payload = p
	return nil
}

// stripPadding removes the Pad Length octet and the padding. fixed is the
// number of octets of fixed fields between the Pad Length and the content
// (priority or promised id); they stay at the front of the returned slice.
func stripPadding(f *Frame, p []byte, fixed int) ([]byte, error) {
	if !f.Flags.Has(FlagPadded) {
		if len(p) < fixed {
			return nil, connErr(ErrCodeFrameSize, f.Type.String()+" frame too short")
		}
		return p, nil
	}
	// "An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame
	// ... is too small to contain mandatory frame data."
	if len(p) < 1+fixed {
		return nil, connErr(ErrCodeFrameSize, f.Type.String()+" frame too short for its padding")
	}
	pad := int(p[0])
	f.PadLength = p[0]
	p = p[1:]
	// DATA: "If the length of the padding is the length of the frame payload
	// or greater, the recipient MUST treat this as a connection error
	// (Section 5.4.1) of type PROTOCOL_ERROR." HEADERS/PUSH_PROMISE: same
	// rule on what remains after the fixed fields.
	if pad > len(p)-fixed {
		return nil, connErr(ErrCodeProtocol, "padding exceeds "+f.Type.String()+" payload")
	}
	return p[:len(p)-pad], nil
}

func parseData(f *Frame, p []byte) error {
	// "If a DATA frame is received whose Stream Identifier field is 0x00,
	// the recipient MUST respond with a connection error (Section 5.4.1) of
	// type PROTOCOL_ERROR."
	if f.StreamID == 0 {
		return connErr(ErrCodeProtocol, "DATA on stream 0")
	}
	data, err := stripPadding(f, p, 0)
	if err != nil {
		return err
	}
	f.Payload = data
	return nil
}

func readPriority(p []byte) Priority {
	v := binary.BigEndian.Uint32(p)
	return Priority{StreamDep: v & MaxStreamID, Exclusive: v>>31 == 1, Weight: p[4]}
}

func parseHeaders(f *Frame, p []byte) error {
	// "If a HEADERS frame is received whose Stream Identifier field is 0x00,
	// the recipient MUST respond with a connection error (Section 5.4.1) of
	// type PROTOCOL_ERROR."
	if f.StreamID == 0 {
		return connErr(ErrCodeProtocol, "HEADERS on stream 0")
	}
	fixed := 0
	if f.Flags.Has(FlagPriority) {
		fixed = 5
	}
	frag, err := stripPadding(f, p, fixed)
	if err != nil {
		return err
	}
	f.Payload = frag[fixed:]
	if fixed > 0 {
		f.Priority = readPriority(frag)
		// §5.3.1: "A stream cannot depend on itself. An endpoint MUST treat
		// this as a stream error (Section 5.4.2) of type PROTOCOL_ERROR."
		if f.Priority.StreamDep == f.StreamID {
			return streamErr(f.StreamID, ErrCodeProtocol, "stream depends on itself")
		}
	}
	return nil
}

func parsePriority(f *Frame, p []byte) error {
	// "If a PRIORITY frame is received with a stream identifier of 0x00, the
	// recipient MUST respond with a connection error (Section 5.4.1) of type
	// PROTOCOL_ERROR."
	if f.StreamID == 0 {
		return connErr(ErrCodeProtocol, "PRIORITY on stream 0")
	}
	// "A PRIORITY frame with a length other than 5 octets MUST be treated as
	// a stream error (Section 5.4.2) of type FRAME_SIZE_ERROR."
	if len(p) != 5 {
		return streamErr(f.StreamID, ErrCodeFrameSize, "PRIORITY length not 5")
	}
	f.Priority = readPriority(p)
	if f.Priority.StreamDep == f.StreamID {
		return streamErr(f.StreamID, ErrCodeProtocol, "stream depends on itself")
	}
	return nil
}

func parseRSTStream(f *Frame, p []byte) error {
	// "If a RST_STREAM frame is received with a stream identifier of 0x00,
	// the recipient MUST treat this as a connection error (Section 5.4.1) of
	// type PROTOCOL_ERROR."
	if f.StreamID == 0 {
		return connErr(ErrCodeProtocol, "RST_STREAM on stream 0")
	}
	// "A RST_STREAM frame with a length other than 4 octets MUST be treated
	// as a connection error (Section 5.4.1) of type FRAME_SIZE_ERROR."
	if len(p) != 4 {
		return connErr(ErrCodeFrameSize, "RST_STREAM length not 4")
	}
	f.Code = ErrCode(binary.BigEndian.Uint32(p))
	return nil
}

func parseSettings(f *Frame, p []byte) error {
	// "If an endpoint receives a SETTINGS frame whose Stream Identifier field
	// is anything other than 0x00, the endpoint MUST respond with a
	// connection error (Section 5.4.1) of type PROTOCOL_ERROR."
	if f.StreamID != 0 {
		return connErr(ErrCodeProtocol, "SETTINGS on a stream")
	}
	if f.Flags.Has(FlagAck) {
		// "Receipt of a SETTINGS frame with the ACK flag set and a length
		// field value other than 0 MUST be treated as a connection error
		// (Section 5.4.1) of type FRAME_SIZE_ERROR."
		if len(p) != 0 {
			return connErr(ErrCodeFrameSize, "SETTINGS ACK with a payload")
		}
		return nil
	}
	// "A SETTINGS frame with a length other than a multiple of 6 octets MUST
	// be treated as a connection error (Section 5.4.1) of type
	// FRAME_SIZE_ERROR."
	if len(p)%6 != 0 {
		return connErr(ErrCodeFrameSize, "SETTINGS length not a multiple of 6")
	}
	f.Payload = p
	for i := 0; i < len(p); i += 6 {
		s := Setting{ID: SettingID(binary.BigEndian.Uint16(p[i:])), Val: binary.BigEndian.Uint32(p[i+2:])}
		if err := s.Valid(); err != nil {
			return err
		}
	}
	return nil
}

func parsePushPromise(f *Frame, p []byte) error {
	// "If the Stream Identifier field specifies the value 0x00, a recipient
	// MUST respond with a connection error (Section 5.4.1) of type
	// PROTOCOL_ERROR."
	if f.StreamID == 0 {
		return connErr(ErrCodeProtocol, "PUSH_PROMISE on stream 0")
	}
	frag, err := stripPadding(f, p, 4)
	if err != nil {
		return err
	}
	f.PromisedID = binary.BigEndian.Uint32(frag) & MaxStreamID
	f.Payload = frag[4:]
	return nil
}

func parsePing(f *Frame, p []byte) error {
	// "If a PING frame is received with a Stream Identifier field value
	// other than 0x00, the recipient MUST respond with a connection error
	// (Section 5.4.1) of type PROTOCOL_ERROR."
	if f.StreamID != 0 {
		return connErr(ErrCodeProtocol, "PING on a stream")
	}
	// "Receipt of a PING frame with a length field value other than 8 MUST
	// be treated as a connection error (Section 5.4.1) of type
	// FRAME_SIZE_ERROR."
	if len(p) != 8 {
		return connErr(ErrCodeFrameSize, "PING length not 8")
	}
	copy(f.PingData[:], p)
	return nil
}

func parseGoAway(f *Frame, p []byte) error {
	// "An endpoint MUST treat a GOAWAY frame with a stream identifier other
	// than 0x00 as a connection error (Section 5.4.1) of type
	// PROTOCOL_ERROR."
	if f.StreamID != 0 {
		return connErr(ErrCodeProtocol, "GOAWAY on a stream")
	}
	if len(p) < 8 {
		return connErr(ErrCodeFrameSize, "GOAWAY shorter than 8")
	}
	f.LastStreamID = binary.BigEndian.Uint32(p) & MaxStreamID
	f.Code = ErrCode(binary.BigEndian.Uint32(p[4:]))
	f.Payload = p[8:]
	return nil
}

func parseWindowUpdate(f *Frame, p []byte) error {
	// "A WINDOW_UPDATE frame with a length other than 4 octets MUST be
	// treated as a connection error (Section 5.4.1) of type
	// FRAME_SIZE_ERROR."
	if len(p) != 4 {
		return connErr(ErrCodeFrameSize, "WINDOW_UPDATE length not 4")
	}
	f.Increment = binary.BigEndian.Uint32(p) & MaxWindowSize
	// "A receiver MUST treat the receipt of a WINDOW_UPDATE frame with a
	// flow-control window increment of 0 as a stream error (Section 5.4.2)
	// of type PROTOCOL_ERROR; errors on the connection flow-control window
	// MUST be treated as a connection error (Section 5.4.1)."
	if f.Increment == 0 {
		if f.StreamID == 0 {
			return connErr(ErrCodeProtocol, "WINDOW_UPDATE increment 0 on the connection")
		}
		return streamErr(f.StreamID, ErrCodeProtocol, "WINDOW_UPDATE increment 0")
	}
	return nil
}

func parseContinuation(f *Frame, p []byte) error {
	// "If a CONTINUATION frame is received with a Stream Identifier field of
	// 0x00, the recipient MUST respond with a connection error (Section
	// 5.4.1) of type PROTOCOL_ERROR."
	if f.StreamID == 0 {
		return connErr(ErrCodeProtocol, "CONTINUATION on stream 0")
	}
	f.Payload = p
	return nil
}
