package h1

import "errors"

// ErrNeedMore is returned when the input ends before the element being parsed
// does. It is not a protocol error: the caller keeps the bytes it has, appends
// more, and calls again with the longer buffer (the same prefix).
var ErrNeedMore = errors.New("h1: need more data")

// Error is a protocol error found in a message. Every value is one of the
// sentinels below, so errors.Is and == both work and returning one allocates
// nothing.
type Error struct {
	// Reason is a short stable token, suitable as a metric label
	// (for example "cl_te_conflict").
	Reason string
	// Status is the status code a server or proxy should answer with when
	// the error is found in a request. After it, the connection must be
	// closed: the framing of anything that follows cannot be trusted.
	Status int
	// Msg is a human-readable description.
	Msg string
}

func (e *Error) Error() string { return "h1: " + e.Msg }

func newErr(reason string, status int, msg string) *Error {
	return &Error{Reason: reason, Status: status, Msg: msg}
}

// Every error below is an *Error sentinel; Msg says what it rejects, Status
// is the answer, and doc.go quotes the RFC sentence each one enforces.

// Size limits (Config).
var (
	ErrRequestLineTooLong = newErr("request_line_too_long", 414, "request line longer than the configured limit")
	ErrHeadTooLarge       = newErr("head_too_large", 431, "message head larger than the configured limit")
	ErrTooManyFields      = newErr("too_many_fields", 431, "more header fields than the configured limit")
)

// Start line, field line and Host errors.
var (
	ErrBareLF               = newErr("bare_lf", 400, "LF without preceding CR")
	ErrBareCR               = newErr("bare_cr", 400, "CR not followed by LF")
	ErrObsFold              = newErr("obs_fold", 400, "obsolete line folding")
	ErrWhitespaceAfterStart = newErr("ws_after_start_line", 400, "whitespace between start line and first field")
	ErrBadRequestLine       = newErr("bad_request_line", 400, "malformed request line")
	ErrBadMethod            = newErr("bad_method", 400, "method is not a token")
	ErrBadTarget            = newErr("bad_target", 400, "malformed request-target")
	ErrBadVersion           = newErr("bad_version", 400, "malformed HTTP version")
	ErrUnsupportedVersion   = newErr("unsupported_version", 505, "HTTP version other than HTTP/1.0 and HTTP/1.1")
	ErrBadStatusLine        = newErr("bad_status_line", 400, "malformed status line")
	ErrSpaceBeforeColon     = newErr("space_before_colon", 400, "whitespace between field name and colon")
	ErrBadFieldName         = newErr("bad_field_name", 400, "field name is empty or contains a non-token character")
	ErrMissingColon         = newErr("missing_colon", 400, "field line without a colon")
	ErrBadFieldValue        = newErr("bad_field_value", 400, "control character in field value")
	ErrMissingHost          = newErr("missing_host", 400, "HTTP/1.1 request without Host")
	ErrMultipleHost         = newErr("multiple_host", 400, "more than one Host field line")
	ErrBadHost              = newErr("bad_host", 400, "invalid Host field value")
	ErrBadTrailerField      = newErr("bad_trailer_field", 400, "framing field named in Trailer or sent as a trailer")
	ErrTrailerTooLarge      = newErr("trailer_too_large", 431, "trailer section larger than the configured limit")
	ErrUnexpectedEOF        = newErr("unexpected_eof", 400, "connection closed before the message body ended")
)

// Framing errors (RFC 9112 §6 and §7): request smuggling defenses.
var (
	ErrCLAndTE                   = newErr("cl_te_conflict", 400, "both Content-Length and Transfer-Encoding")
	ErrCLMismatch                = newErr("cl_mismatch", 400, "several differing Content-Length values")
	ErrBadContentLength          = newErr("bad_content_length", 400, "Content-Length is not a non-negative decimal that fits in 63 bits")
	ErrBadTransferEncoding       = newErr("bad_transfer_encoding", 400, "malformed Transfer-Encoding")
	ErrChunkedNotFinal           = newErr("chunked_not_final", 400, "Transfer-Encoding whose final coding is not chunked")
	ErrChunkedTwice              = newErr("chunked_twice", 400, "chunked applied more than once")
	ErrUnsupportedTransferCoding = newErr("unsupported_transfer_coding", 501, "transfer coding other than chunked")
	ErrTransferEncodingHTTP10    = newErr("te_in_http10", 400, "Transfer-Encoding in an HTTP/1.0 message")
	ErrBadChunkSize              = newErr("bad_chunk_size", 400, "chunk size is not 1 to 16 hex digits")
	ErrChunkSizeOverflow         = newErr("chunk_size_overflow", 400, "chunk size does not fit in 63 bits")
	ErrChunkLineTooLong          = newErr("chunk_line_too_long", 400, "chunk size line longer than the configured limit")
	ErrBadChunkExtension         = newErr("bad_chunk_extension", 400, "malformed chunk extension")
	ErrBadChunkTerminator        = newErr("bad_chunk_terminator", 400, "chunk data not followed by CRLF")
)

// StatusFor returns the status code a server should answer with after err was
// returned while parsing a request: the Status of an *Error, 0 for nil and
// ErrNeedMore (nothing to answer yet), and 400 for anything else. A proxy that
// gets an error while parsing an upstream's response answers 502 instead.
func StatusFor(err error) int {
	if err == nil || err == ErrNeedMore {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 400
}
