package h2

import (
	"errors"
	"strconv"
)

// ErrCode is an HTTP/2 error code (RFC 9113 §7), carried by RST_STREAM and GOAWAY.
type ErrCode uint32

// Error codes of RFC 9113 §7.
const (
	ErrCodeNo                 ErrCode = 0x0
	ErrCodeProtocol           ErrCode = 0x1
	ErrCodeInternal           ErrCode = 0x2
	ErrCodeFlowControl        ErrCode = 0x3
	ErrCodeSettingsTimeout    ErrCode = 0x4
	ErrCodeStreamClosed       ErrCode = 0x5
	ErrCodeFrameSize          ErrCode = 0x6
	ErrCodeRefusedStream      ErrCode = 0x7
	ErrCodeCancel             ErrCode = 0x8
	ErrCodeCompression        ErrCode = 0x9
	ErrCodeConnect            ErrCode = 0xa
	ErrCodeEnhanceYourCalm    ErrCode = 0xb
	ErrCodeInadequateSecurity ErrCode = 0xc
	ErrCodeHTTP11Required     ErrCode = 0xd
)

var errCodeNames = [...]string{
	ErrCodeNo:                 "NO_ERROR",
	ErrCodeProtocol:           "PROTOCOL_ERROR",
	ErrCodeInternal:           "INTERNAL_ERROR",
	ErrCodeFlowControl:        "FLOW_CONTROL_ERROR",
	ErrCodeSettingsTimeout:    "SETTINGS_TIMEOUT",
	ErrCodeStreamClosed:       "STREAM_CLOSED",
	ErrCodeFrameSize:          "FRAME_SIZE_ERROR",
	ErrCodeRefusedStream:      "REFUSED_STREAM",
	ErrCodeCancel:             "CANCEL",
	ErrCodeCompression:        "COMPRESSION_ERROR",
	ErrCodeConnect:            "CONNECT_ERROR",
	ErrCodeEnhanceYourCalm:    "ENHANCE_YOUR_CALM",
	ErrCodeInadequateSecurity: "INADEQUATE_SECURITY",
	ErrCodeHTTP11Required:     "HTTP_1_1_REQUIRED",
}

// String returns the RFC name of the code, or UNKNOWN_ERROR_0x.. for codes
// the RFC does not define (which, per §7, trigger no special behavior).
func (c ErrCode) String() string {
	if int(c) < len(errCodeNames) {
		return errCodeNames[c]
	}
	return "UNKNOWN_ERROR_0x" + strconv.FormatUint(uint64(c), 16)
}

// Initiator records which party raised an error.
type Initiator uint8

const (
	// ByCodec: this package detected a protocol violation or a limit
	// being exceeded in what the peer sent, and sent RST_STREAM or GOAWAY.
	ByCodec Initiator = iota
	// ByCaller: the caller asked for it (ResetStream, GoAway).
	ByCaller
	// ByPeer: the peer sent the RST_STREAM or GOAWAY.
	ByPeer
)

// String returns "codec", "caller" or "peer".
func (i Initiator) String() string {
	switch i {
	case ByCodec:
		return "codec"
	case ByCaller:
		return "caller"
	case ByPeer:
		return "peer"
	}
	return "initiator_" + strconv.Itoa(int(i))
}

// ConnError is an error that ends the whole connection (RFC 9113 §5.4.1).
// When the codec raises one, a GOAWAY carrying Code is queued for output.
type ConnError struct {
	Code   ErrCode
	Reason string
	By     Initiator
}

// Error describes the error with its code, initiator and reason.
func (e *ConnError) Error() string {
	s := "h2: connection error " + e.Code.String() + " (" + e.By.String() + ")"
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// StreamError is an error that ends one stream (RFC 9113 §5.4.2).
// When the codec raises one, a RST_STREAM carrying Code is queued.
type StreamError struct {
	StreamID uint32
	Code     ErrCode
	Reason   string
	By       Initiator
}

// Error describes the error with its stream, code, initiator and reason.
func (e *StreamError) Error() string {
	s := "h2: stream " + strconv.FormatUint(uint64(e.StreamID), 10) + " error " +
		e.Code.String() + " (" + e.By.String() + ")"
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// HeaderError reports a header list the caller asked to send that RFC 9113
// §8.2-8.3 forbids. Nothing was sent.
type HeaderError struct {
	Name   string // offending field name, when one is to blame
	Reason string
}

// Error describes the offending field and rule.
func (e *HeaderError) Error() string {
	if e.Name == "" {
		return "h2: invalid header list: " + e.Reason
	}
	return "h2: invalid header field " + strconv.Quote(e.Name) + ": " + e.Reason
}

// Errors returned by the framer and by Conn's write methods.
var (
	// errNeedMore: the input holds no complete frame yet; call again with more bytes.
	errNeedMore = errors.New("h2: need more data")
	// ErrStreamNotWritable: the stream is unknown, closed, or closed for sending.
	ErrStreamNotWritable = errors.New("h2: stream not writable")
	// ErrHeadersNotSent: DATA or trailers before the stream's headers.
	ErrHeadersNotSent = errors.New("h2: headers not sent yet")
	// ErrHeadersSent: a second final header block; use WriteTrailers.
	ErrHeadersSent = errors.New("h2: final headers already sent")
	// ErrGoAway: no new streams after a GOAWAY was sent or received.
	ErrGoAway = errors.New("h2: connection going away")
	// ErrStreamLimit: the peer's SETTINGS_MAX_CONCURRENT_STREAMS is reached.
	ErrStreamLimit = errors.New("h2: peer's concurrent stream limit reached")
	// ErrStreamIDsExhausted: all 2^31 stream identifiers are used; open a new connection.
	ErrStreamIDsExhausted = errors.New("h2: stream identifiers exhausted")
	// ErrRole: the operation is not valid for this connection's role.
	ErrRole = errors.New("h2: operation not valid for this role")
	// ErrHeaderListTooLarge: the header list exceeds the peer's SETTINGS_MAX_HEADER_LIST_SIZE.
	ErrHeaderListTooLarge = errors.New("h2: header list larger than the peer accepts")
	// ErrTooManyPings: Config.MaxOutstandingPings pings await their ACK.
	ErrTooManyPings = errors.New("h2: too many outstanding pings")
)

// connErr builds a codec-raised connection error.
func connErr(code ErrCode, reason string) *ConnError {
	return &ConnError{Code: code, Reason: reason, By: ByCodec}
}

// streamErr builds a codec-raised stream error.
func streamErr(id uint32, code ErrCode, reason string) *StreamError {
	return &StreamError{StreamID: id, Code: code, Reason: reason, By: ByCodec}
}
