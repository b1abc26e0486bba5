// Package h1 is sluice's sans-I/O HTTP/1.1 codec (RFC 9110, RFC 9112): a
// strict, incremental parser for request and response heads, a body
// decoder for Content-Length, chunked and read-until-close bodies, and
// append-style encoders.
//
// # What it owns
//
// Bytes in, parsed values and byte counts out. It does no I/O, starts no
// goroutines, reads no clock and logs nothing; errors are typed (*Error),
// carry the status a proxy should answer with (StatusFor), and are reported
// to Config.CountError. Routing, header policy and connection handling
// belong to the proxy package.
//
// # Threading and lifetime
//
// A Parser, Request, Response and BodyDecoder belong to one connection on
// one event loop; none is safe for concurrent use. Parsed values are
// sub-slices of the caller's buffer, never copies: they are valid until the
// caller overwrites or reuses those bytes. Reusing one Request (Reset keeps
// the field slice) makes parsing allocation-free after the first message.
//
// # Incremental parsing
//
// ParseRequest and ParseResponse return ErrNeedMore until a whole head is
// in the buffer; the Parser remembers how far it searched, so a retry with
// more bytes only scans the new ones. They return the head's length and
// never look past it, so pipelined requests stay in the buffer. BodyDecoder
// consumes exactly the body and returns its data as sub-slices.
//
// # Limits
//
// Defaults (Config): a head of at most 32 KiB (431), 100 field lines (431),
// a request line of at most 8 KiB (414), a chunk-size line of at most 4096
// bytes, a trailer section of at most 8 KiB (431). They match nginx's
// large_client_header_buffers (4 × 8 KiB) and Apache's 100 fields; RFC 9112
// §3: "It is RECOMMENDED that all HTTP senders and recipients support, at a
// minimum, request-line lengths of 8000 octets."
//
// # Strictness
//
// Everything below is an error; a proxy answers StatusFor(err) and closes
// the connection, since the framing of what follows cannot be trusted.
//
// Framing (request smuggling):
//
//   - Content-Length together with Transfer-Encoding (ErrCLAndTE).
//     RFC 9112 §6.3: "If a message is received with both a Transfer-Encoding
//     and a Content-Length header field, the Transfer-Encoding overrides the
//     Content-Length. Such a message might indicate an attempt to perform
//     request smuggling (Section 11.2) or response splitting (Section 11.1)
//     and ought to be handled as an error." §6.1: "A server MAY reject a
//     request that contains both Content-Length and Transfer-Encoding".
//   - Content-Length field lines that differ (ErrCLMismatch). The rule:
//     several Content-Length field lines are accepted only when their values
//     are byte-for-byte identical (so "5" and "05" differ); they collapse to
//     one. A comma-separated list inside one line ("5, 5") is refused as
//     invalid syntax, as net/http does. RFC 9110 §8.6: "a recipient of a
//     Content-Length header field value consisting of the same decimal value
//     repeated as a comma-separated list (e.g, "Content-Length: 42, 42") MAY
//     either reject the message as invalid or replace that invalid field
//     value with a single instance of the decimal value"; repeated field
//     lines are that list (RFC 9110 §5.3), and sluice takes the "replace"
//     branch for them and the "reject" branch within one line.
//   - Content-Length that is not 1*DIGIT or does not fit in 63 bits: a sign,
//     hex, spaces inside, empty, overflow (ErrBadContentLength). RFC 9110
//     §8.6: "Content-Length = 1*DIGIT" and "a recipient MUST anticipate
//     potentially large decimal numerals and prevent parsing errors due to
//     integer conversion overflows or precision loss due to integer
//     representation".
//   - Transfer-Encoding whose final coding is not chunked
//     (ErrChunkedNotFinal, 400). RFC 9112 §6.3: "If a Transfer-Encoding
//     header field is present in a request and the chunked transfer coding
//     is not the final encoding, the message body length cannot be
//     determined reliably; the server MUST respond with the 400 (Bad Request)
//     status code and then close the connection."
//   - Any transfer coding other than chunked, before it ("gzip, chunked")
//     (ErrUnsupportedTransferCoding, 501): sluice does not decode gzip or
//     other transfer codings, and a proxy that re-frames the body must not
//     forward a coding it did not remove. RFC 9112 §6.1: "A server that
//     receives a request message with a transfer coding it does not
//     understand SHOULD respond with 501 (Not Implemented)." Responses get
//     the same treatment (and the 502 that any upstream error gets) instead
//     of RFC 9112 §6.3's read-until-close for a non-chunked final coding.
//   - chunked more than once, in one line or across lines (ErrChunkedTwice).
//     RFC 9112 §6.1: "A sender MUST NOT apply the chunked transfer coding
//     more than once to a message body".
//   - Transfer-Encoding that is empty or has an empty list element or a
//     non-token coding (ErrBadTransferEncoding). RFC 9110 §5.6.1 asks
//     recipients to skip empty list elements; on this field a disagreement
//     between hops is a smuggling vector, so sluice refuses, as net/http
//     does ("chunked," is not "chunked").
//   - Transfer-Encoding in an HTTP/1.0 message (ErrTransferEncodingHTTP10).
//     RFC 9112 §6.1: "A server or client that receives an HTTP/1.0 message
//     containing a Transfer-Encoding header field MUST treat the message as
//     if the framing is faulty, even if a Content-Length is present, and
//     close the connection after processing the message."
//   - A chunk size that is not 1–16 hex digits, is followed by anything but
//     ";" (whitespace included), or does not fit in 63 bits; a chunk-size
//     line longer than Config.MaxChunkLine (ErrBadChunkSize,
//     ErrChunkSizeOverflow, ErrChunkLineTooLong). RFC 9112 §7.1:
//     "chunk-size = 1*HEXDIG" and "recipients MUST anticipate potentially
//     large hexadecimal numerals and prevent parsing errors due to integer
//     conversion overflows or precision loss due to integer representation."
//   - Chunk extensions are parsed against the grammar and then ignored
//     (ErrBadChunkExtension). RFC 9112 §7.1.1: "chunk-ext = *( BWS ";" BWS
//     chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )" and "A recipient MUST
//     ignore unrecognized chunk extensions." BWS before the first ";" is
//     refused (net/http refuses it too); BWS inside the extension is allowed.
//   - Chunk data not followed by CRLF (ErrBadChunkTerminator). RFC 9112
//     §7.1: "chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF".
//   - Content-Length, Transfer-Encoding or Trailer named in the Trailer
//     field, and Content-Length, Transfer-Encoding, Trailer or Host sent as
//     a trailer field (ErrBadTrailerField). RFC 9110 §6.5.1: "Many fields
//     cannot be processed outside the header section because their
//     evaluation is necessary prior to receiving the content, such as those
//     that describe message framing, routing, authentication, request
//     modifiers, response controls, or content format."
//
// Lines:
//
//   - A bare LF where CRLF is required, in the start line, field lines, chunk
//     lines, after chunk data and in trailers (ErrBareLF). RFC 9112 §2.2:
//     "Although the line terminator for the start-line and fields is the
//     sequence CRLF, a recipient MAY recognize a single LF as a line
//     terminator and ignore any preceding CR." sluice does not take that MAY.
//   - A bare CR anywhere in those elements (ErrBareCR). RFC 9112 §2.2: "A
//     recipient of such a bare CR MUST consider that element to be invalid or
//     replace each bare CR with SP before processing the element or
//     forwarding the message."
//   - obs-fold (ErrObsFold). RFC 9112 §5.2: "A server that receives an
//     obs-fold in a request message that is not within a "message/http"
//     container MUST either reject the message by sending a 400 (Bad
//     Request), preferably with a representation explaining that obsolete
//     line folding is unacceptable, or replace each received obs-fold with
//     one or more SP octets prior to interpreting the field value or
//     forwarding the message downstream."
//   - Whitespace between the start line and the first field
//     (ErrWhitespaceAfterStart). RFC 9112 §2.2: "A recipient that receives
//     whitespace between the start-line and the first header field MUST
//     either reject the message as invalid or consume each
//     whitespace-preceded line without further processing of it".
//   - Whitespace between field name and colon (ErrSpaceBeforeColon). RFC 9112
//     §5.1: "A server MUST reject, with a response status code of 400 (Bad
//     Request), any received request message that contains whitespace
//     between a header field name and colon."
//   - A field name that is empty or not all tchar, or a line without a colon
//     (ErrBadFieldName, ErrMissingColon). RFC 9110 §5.1: "field-name =
//     token" and §5.6.2: "tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" /
//     "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA".
//   - NUL or another control character but HTAB in a field value, DEL
//     included (ErrBadFieldValue); obs-text (0x80–0xFF) is allowed. RFC 9110
//     §5.5: "a recipient of CR, LF, or NUL within a field value MUST either
//     reject the message or replace each of those characters with SP before
//     further processing or forwarding of that message. Field values
//     containing other CTL characters are also invalid".
//
// Request line and Host:
//
//   - A method that is not a token (ErrBadMethod). RFC 9110 §9.1: "method =
//     token".
//   - Anything but method SP request-target SP HTTP-version
//     (ErrBadRequestLine); a version that is not HTTP/DIGIT.DIGIT with
//     "HTTP" in upper case (ErrBadVersion, 400); a version other than 1.0
//     and 1.1 (ErrUnsupportedVersion, 505). RFC 9112 §3: "request-line =
//     method SP request-target SP HTTP-version" and "Recipients of an invalid
//     request-line SHOULD respond with either a 400 (Bad Request) error or a
//     301 (Moved Permanently) redirect". RFC 9112 §2.3: "HTTP-name =
//     %s"HTTP"" (case-sensitive).
//   - A request line longer than Config.MaxRequestLine (ErrRequestLineTooLong,
//     414). RFC 9112 §3: "A server that receives a request-target longer than
//     any URI it wishes to parse MUST respond with a 414 (URI Too Long)
//     status code".
//   - A request-target outside its forms (ErrBadTarget): origin-form
//     characters are RFC 3986 pchar, "/" and "?" plus { } | ^ ` (which
//     browsers send unescaped), every "%" followed by two hex digits; no
//     control, space, non-ASCII, "#", "\", quote or angle bracket.
//     Absolute-form only for http and https, with a non-empty host, no
//     userinfo, and a port of 1–5 digits up to 65535 when present.
//     Authority-form only for CONNECT and with a port; asterisk-form only
//     for OPTIONS. RFC 9112 §3.2.3: "The authority-form of request-target is
//     only used for CONNECT requests"; §3.2.4: "The asterisk-form of
//     request-target is only used for a server-wide OPTIONS request"; RFC
//     9110 §4.2.4: "a recipient SHOULD parse for userinfo and treat its
//     presence as an error"; RFC 9110 §4.2.1: "A sender MUST NOT generate an
//     "http" URI with an empty host identifier. A recipient that processes
//     such a URI reference MUST reject it as invalid."
//   - No Host in an HTTP/1.1 request, more than one Host field line (even if
//     identical, and in HTTP/1.0 too), or a Host value that is not uri-host
//     [ ":" port ] (ErrMissingHost, ErrMultipleHost, ErrBadHost). RFC 9112
//     §3.2: "A server MUST respond with a 400 (Bad Request) status code to
//     any HTTP/1.1 request message that lacks a Host header field and to any
//     request message that contains more than one Host header field line or
//     a Host header field with an invalid field value."
//   - A head, a field count or a trailer section over its limit
//     (ErrHeadTooLarge, ErrTooManyFields, ErrTrailerTooLarge: 431, RFC 6585
//     §5).
//
// Responses: a status code outside 100–599 (RFC 9110 §15: "All valid status
// codes are within the range of 100 to 599, inclusive.") or a malformed
// status line is ErrBadStatusLine; a missing SP after the status code is
// tolerated. Response errors keep the statuses above, but a proxy answers
// 502 for any of them.
//
// # Message semantics
//
// Request bodies (RFC 9112 §6.3): chunked, Content-Length, else none.
// Response bodies: none for HEAD, 1xx, 204, 304 and 2xx to CONNECT, else
// chunked, Content-Length, or until the server closes. Keep-alive (RFC 9112
// §9.3): a "close" option closes; HTTP/1.1 persists by default; HTTP/1.0
// persists only with a "keep-alive" option. Expect100 and Upgrade are
// reported for HTTP/1.1 requests only (RFC 9110 §10.1.1 and §7.8 say an
// HTTP/1.0 request's are ignored); Upgrade needs both the Upgrade field and
// an "upgrade" Connection option.
//
// # Agreement with net/http
//
// FuzzRequest and FuzzResponse check that every message sluice accepts,
// net/http's ReadRequest / ReadResponse accept too and read the same way
// (request line, fields, Host, keep-alive, body, trailers, bytes consumed);
// FuzzChunked does the same against httputil.NewChunkedReader. sluice may
// reject more. One difference is known and kept: net/http fails a chunked
// body once its framing (size lines and extensions) outweighs its data by
// 16 KiB; sluice has no such budget, since it keeps O(1) state per chunk and
// buffers no framing, so such a body costs the proxy only per-byte work
// that its deadlines bound. The fuzz inputs stay under 16 KiB for that
// reason. Limits are not compared: net/http's ReadRequest has none of its
// own (its server adds them), so the harness gives it a 32 KiB buffer.
//
// # Not done, on purpose
//
// No leading empty lines before a request line are skipped (RFC 9112 §2.2
// SHOULD; net/http does not either). No transfer coding but chunked is
// decoded. Field values are not unfolded or rewritten: every rule above
// rejects rather than repairs.
package h1
