package h2

import (
	"encoding/binary"
	"strconv"
)

// frameHeaderLen is the size of the fixed frame header (RFC 9113 §4.1).
const frameHeaderLen = 9

// ClientPreface is the fixed start of every client connection (RFC 9113 §3.4),
// followed by a SETTINGS frame.
const ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// frameType is the 8-bit type of a frame (RFC 9113 §6).
type frameType uint8

// frame types of RFC 9113 §6.
const (
	frameData         frameType = 0x0
	frameHeaders      frameType = 0x1
	framePriority     frameType = 0x2
	frameRSTStream    frameType = 0x3
	frameSettings     frameType = 0x4
	framePushPromise  frameType = 0x5
	framePing         frameType = 0x6
	frameGoAway       frameType = 0x7
	frameWindowUpdate frameType = 0x8
	frameContinuation frameType = 0x9
)

var frameNames = [...]string{
	frameData:         "DATA",
	frameHeaders:      "HEADERS",
	framePriority:     "PRIORITY",
	frameRSTStream:    "RST_STREAM",
	frameSettings:     "SETTINGS",
	framePushPromise:  "PUSH_PROMISE",
	framePing:         "PING",
	frameGoAway:       "GOAWAY",
	frameWindowUpdate: "WINDOW_UPDATE",
	frameContinuation: "CONTINUATION",
}

// String returns the RFC name of the type, or UNKNOWN_0x.. for extension types.
func (t frameType) String() string {
	if int(t) < len(frameNames) {
		return frameNames[t]
	}
	return "UNKNOWN_0x" + strconv.FormatUint(uint64(t), 16)
}

// frameFlags are the 8 flag bits of a frame header. Their meaning depends on the type.
type frameFlags uint8

// frame flags (RFC 9113 §6).
const (
	flagEndStream  frameFlags = 0x1  // DATA, HEADERS
	flagAck        frameFlags = 0x1  // SETTINGS, PING
	flagEndHeaders frameFlags = 0x4  // HEADERS, PUSH_PROMISE, CONTINUATION
	flagPadded     frameFlags = 0x8  // DATA, HEADERS, PUSH_PROMISE
	flagPriority   frameFlags = 0x20 // HEADERS
)

// Has reports whether all bits of v are set.
func (f frameFlags) Has(v frameFlags) bool { return f&v == v }

// frameHeader is the 9-octet header every frame starts with (RFC 9113 §4.1).
type frameHeader struct {
	Length   uint32 // payload length, 24 bits
	Type     frameType
	Flags    frameFlags
	StreamID uint32 // 31 bits; the reserved bit is dropped when read
}

// parseFrameHeader decodes the first frameHeaderLen bytes of b. ok is false
// when b is shorter than that.
func parseFrameHeader(b []byte) (h frameHeader, ok bool) {
	if len(b) < frameHeaderLen {
		return h, false
	}
	h.Length = uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
	h.Type = frameType(b[3])
	h.Flags = frameFlags(b[4])
	// "The semantics of this bit are undefined, and the bit MUST remain
	// unset (0x00) when sending and MUST be ignored when receiving."
	h.StreamID = binary.BigEndian.Uint32(b[5:9]) & MaxStreamID
	return h, true
}

// priority is the dependency information of a PRIORITY frame or of a
// HEADERS frame with the PRIORITY flag (RFC 9113 §5.3.2, deprecated). It is
// parsed and validated, never acted upon.
type priority struct {
	StreamDep uint32
	Exclusive bool
	Weight    uint8 // wire value; the weight is Weight+1
}

// frame is one parsed frame. Which fields are set depends on Type; the
// slices alias the buffer passed to framer.ReadFrame, and the frame itself
// is reused, so both are valid only until the next ReadFrame or until that
// buffer is modified.
type frame struct {
	frameHeader

	// Payload is, by type: DATA: the data, padding removed. HEADERS,
	// PUSH_PROMISE, CONTINUATION: the field block fragment, padding and
	// priority removed. SETTINGS: the raw parameters (see NumSettings,
	// setting). GOAWAY: the debug data. Unknown types: the whole payload.
	Payload []byte

	PadLength    uint8    // DATA, HEADERS, PUSH_PROMISE with flagPadded
	Priority     priority // PRIORITY, HEADERS with flagPriority
	Code         ErrCode  // RST_STREAM, GOAWAY
	LastStreamID uint32   // GOAWAY
	PromisedID   uint32   // PUSH_PROMISE
	Increment    uint32   // WINDOW_UPDATE
	PingData     [8]byte  // PING
}

// EndStream reports flagEndStream on a DATA or HEADERS frame.
func (f *frame) EndStream() bool {
	return (f.Type == frameData || f.Type == frameHeaders) && f.Flags.Has(flagEndStream)
}

// EndHeaders reports flagEndHeaders on a HEADERS, PUSH_PROMISE or CONTINUATION frame.
func (f *frame) EndHeaders() bool {
	return (f.Type == frameHeaders || f.Type == framePushPromise || f.Type == frameContinuation) &&
		f.Flags.Has(flagEndHeaders)
}

// IsAck reports flagAck on a SETTINGS or PING frame.
func (f *frame) IsAck() bool {
	return (f.Type == frameSettings || f.Type == framePing) && f.Flags.Has(flagAck)
}

// FlowLen is the number of bytes a DATA frame counts against flow control:
// "The entire DATA frame payload is included in flow control, including the
// Pad Length and Padding fields if present." Zero for other types.
func (f *frame) FlowLen() uint32 {
	if f.Type != frameData {
		return 0
	}
	return f.Length
}

// NumSettings returns the number of parameters in a SETTINGS frame.
func (f *frame) NumSettings() int {
	if f.Type != frameSettings {
		return 0
	}
	return len(f.Payload) / 6
}

// setting returns the i-th parameter of a SETTINGS frame.
func (f *frame) setting(i int) setting {
	p := f.Payload[i*6 : i*6+6]
	return setting{ID: settingID(binary.BigEndian.Uint16(p)), Val: binary.BigEndian.Uint32(p[2:])}
}

// framer parses frames out of caller-owned buffers. It checks every rule
// RFC 9113 states about a frame on its own (lengths, stream 0, flags,
// padding, setting values); rules that involve other frames or stream state
// (CONTINUATION sequencing, stream states, windows) belong to Conn.
//
// The zero value accepts frames up to DefaultMaxFrameSize.
type framer struct {
	// MaxReadFrameSize is the largest payload accepted: the
	// SETTINGS_MAX_FRAME_SIZE this endpoint advertised. 0 means 16384.
	MaxReadFrameSize uint32

	f frame
}

// ReadFrame parses the frame at the start of b.
//
// It returns errNeedMore (n == 0) when b does not hold a whole frame. An
// oversized frame is reported as soon as its header is readable.
//
// On success it returns the frame and n, the bytes it occupies in b. The
// frame and its slices stay valid until the next call or until b changes.
//
// A *ConnError means the connection must end. A *StreamError comes with a
// valid frame and n: the frame is well formed enough to skip (and for
// HEADERS, its field block must still be decoded to keep HPACK in sync).
func (fr *framer) ReadFrame(b []byte) (f *frame, n int, err error) {
	h, ok := parseFrameHeader(b)
	if !ok {
		return nil, 0, errNeedMore
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
	end := frameHeaderLen + int(h.Length)
	if len(b) < end {
		return nil, 0, errNeedMore
	}
	f = &fr.f
	*f = frame{frameHeader: h}
	parse := parseUnknown
	if int(h.Type) < len(frameParsers) {
		parse = frameParsers[h.Type]
	}
	if err := parse(f, b[frameHeaderLen:end]); err != nil {
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
var frameParsers = [...]func(f *frame, p []byte) error{
	frameData:         parseData,
	frameHeaders:      parseHeaders,
	framePriority:     parsePriority,
	frameRSTStream:    parseRSTStream,
	frameSettings:     parseSettings,
	framePushPromise:  parsePushPromise,
	framePing:         parsePing,
	frameGoAway:       parseGoAway,
	frameWindowUpdate: parseWindowUpdate,
	frameContinuation: parseContinuation,
}

func parseUnknown(f *frame, p []byte) error {
	f.Payload = p
	return nil
}

// stripPadding removes the Pad Length octet and the padding. fixed is the
// number of octets of fixed fields between the Pad Length and the content
// (priority or promised id); they stay at the front of the returned slice.
func stripPadding(f *frame, p []byte, fixed int) ([]byte, error) {
	if !f.Flags.Has(flagPadded) {
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

func parseData(f *frame, p []byte) error {
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

func readPriority(p []byte) priority {
	v := binary.BigEndian.Uint32(p)
	return priority{StreamDep: v & MaxStreamID, Exclusive: v>>31 == 1, Weight: p[4]}
}

func parseHeaders(f *frame, p []byte) error {
	// "If a HEADERS frame is received whose Stream Identifier field is 0x00,
	// the recipient MUST respond with a connection error (Section 5.4.1) of
	// type PROTOCOL_ERROR."
	if f.StreamID == 0 {
		return connErr(ErrCodeProtocol, "HEADERS on stream 0")
	}
	fixed := 0
	if f.Flags.Has(flagPriority) {
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

func parsePriority(f *frame, p []byte) error {
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

func parseRSTStream(f *frame, p []byte) error {
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

func parseSettings(f *frame, p []byte) error {
	// "If an endpoint receives a SETTINGS frame whose Stream Identifier field
	// is anything other than 0x00, the endpoint MUST respond with a
	// connection error (Section 5.4.1) of type PROTOCOL_ERROR."
	if f.StreamID != 0 {
		return connErr(ErrCodeProtocol, "SETTINGS on a stream")
	}
	if f.Flags.Has(flagAck) {
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
		s := setting{ID: settingID(binary.BigEndian.Uint16(p[i:])), Val: binary.BigEndian.Uint32(p[i+2:])}
		if err := s.Valid(); err != nil {
			return err
		}
	}
	return nil
}

func parsePushPromise(f *frame, p []byte) error {
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

func parsePing(f *frame, p []byte) error {
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

func parseGoAway(f *frame, p []byte) error {
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

func parseWindowUpdate(f *frame, p []byte) error {
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

func parseContinuation(f *frame, p []byte) error {
	// "If a CONTINUATION frame is received with a Stream Identifier field of
	// 0x00, the recipient MUST respond with a connection error (Section
	// 5.4.1) of type PROTOCOL_ERROR."
	if f.StreamID == 0 {
		return connErr(ErrCodeProtocol, "CONTINUATION on stream 0")
	}
	f.Payload = p
	return nil
}
