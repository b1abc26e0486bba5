package h1

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// BodyKind says how a message body is delimited (RFC 9112 §6.3).
type BodyKind uint8

// Body delimitations.
const (
	BodyNone       BodyKind = iota // no body
	BodyLength                     // exactly ContentLength bytes
	BodyChunked                    // chunked transfer coding
	BodyUntilClose                 // responses only: everything until the server closes
)

var bodyKindNames = [...]string{"none", "content-length", "chunked", "until-close"}

// String returns a short name of the kind.
func (k BodyKind) String() string {
	if int(k) < len(bodyKindNames) {
		return bodyKindNames[k]
	}
	return "unknown"
}

// MethodClass is what response framing needs to know about the request a
// response answers (RFC 9112 §6.3 rules 1 and 2).
type MethodClass uint8

// Method classes.
const (
	MethodOther   MethodClass = iota
	MethodHEAD                // responses never have a body
	MethodCONNECT             // a 2xx response starts a tunnel, no body
)

// String returns the method name the class stands for ("other" for the rest).
func (m MethodClass) String() string {
	switch m {
	case MethodHEAD:
		return "HEAD"
	case MethodCONNECT:
		return "CONNECT"
	}
	return "other"
}

// Request is a parsed request head. Every []byte field is a sub-slice of the
// buffer passed to ParseRequest and is valid only while the caller leaves
// those bytes alone: copy what must outlive the next read into that buffer.
// Reuse one Request per connection with Reset to avoid allocation.
type Request struct {
	Method  []byte
	Target  []byte
	Form    TargetForm
	Minor   int // 0 for HTTP/1.0, 1 for HTTP/1.1
	Headers Headers
	Host    []byte // value of the Host field, nil if absent
	// Authority is host[:port] of an absolute-form or authority-form
	// target, else nil. When set, it names the target host, not Host (RFC
	// 9112 §3.2.2: "the proxy MUST ignore the received Host header field
	// (if any) and instead replace it with the host information of the
	// request-target").
	Authority []byte

	Body          BodyKind // BodyNone, BodyLength or BodyChunked
	ContentLength int64    // when Body == BodyLength; -1 otherwise
	Close         bool     // the connection must close after this exchange
	Expect100     bool     // Expect: 100-continue in an HTTP/1.1 request
	Upgrade       bool     // HTTP/1.1 request with Upgrade and a Connection "upgrade" option
}

// Reset clears r for the next request, keeping the Headers capacity.
func (r *Request) Reset() {
	h := r.Headers
	h.Reset()
	*r = Request{Headers: h, ContentLength: -1}
}

// MethodClass returns the class of r's method, for ParseResponse.
func (r *Request) MethodClass() MethodClass {
	switch string(r.Method) {
	case "HEAD":
		return MethodHEAD
	case "CONNECT":
		return MethodCONNECT
	}
	return MethodOther
}

// Response is a parsed response head; its []byte fields are sub-slices of
// the parsed buffer, with the same lifetime rule as Request's.
type Response struct {
	Minor   int
	Status  int
	Reason  []byte
	Headers Headers

	Body          BodyKind
	ContentLength int64 // when Body == BodyLength; -1 otherwise
	Close         bool  // the connection must close after this response
	Upgrade       bool  // 101 Switching Protocols: the connection now speaks another protocol
}

// Reset clears r for the next response, keeping the Headers capacity.
func (r *Response) Reset() {
	h := r.Headers
	h.Reset()
	*r = Response{Headers: h, ContentLength: -1}
}

// Parser parses request and response heads from a buffer without copying.
// It remembers how far it has searched for the end of an incomplete head, so
// that retrying with more bytes does not rescan; the zero value is ready to
// use. A Parser is owned by one connection (one event loop) and one
// direction: the client side parses requests, the upstream side responses.
// It is not safe for concurrent use.
type Parser struct {
	Config Config
	scan   lineScanner
}

// Reset forgets a partially scanned head. Call it when the next call will
// not pass the same buffer prefix as the last one that returned ErrNeedMore.
func (p *Parser) Reset() { p.scan = lineScanner{} }

// lineScanner finds the blank line that ends a head or trailer section,
// rejecting bare LF as it goes, and can resume where it stopped.
type lineScanner struct {
	scanned   int // bytes already searched for LF
	lineStart int // start of the line being scanned
	lines     int // complete lines seen
}

// find returns the index just past the LF of the blank line ending the
// section that starts at buf[0]. maxFirst > 0 limits the first line (414).
func (s *lineScanner) find(buf []byte, maxBytes, maxFirst int, tooLarge *Error) (int, *Error) {
	if s.scanned > len(buf) {
		*s = lineScanner{} // a shorter buffer: the caller did not Reset
	}
	end, e := s.scan(buf, maxBytes, maxFirst, tooLarge)
	if end > 0 && !terminated(buf[:end], maxFirst == 0) {
		// Only reachable when the buffer changed without a Reset: the
		// remembered position was stale. Start over, so that the section
		// handed to the field parser always ends with its blank line.
		*s = lineScanner{}
		end, e = s.scan(buf, maxBytes, maxFirst, tooLarge)
	}
	return end, e
}

// terminated reports whether b ends with CRLF CRLF, or is a lone CRLF when
// the section may be empty (trailers).
func terminated(b []byte, mayBeEmpty bool) bool {
	n := len(b)
	if mayBeEmpty && n == 2 {
		return string(b) == "\r\n"
	}
	return n >= 4 && string(b[n-4:]) == "\r\n\r\n"
}

func (s *lineScanner) scan(buf []byte, maxBytes, maxFirst int, tooLarge *Error) (int, *Error) {
	for {
		j := bytes.IndexByte(buf[s.scanned:], '\n')
		if j < 0 {
			s.scanned = len(buf)
			if s.lines == 0 && maxFirst > 0 && len(buf)-1 > maxFirst {
				return 0, ErrRequestLineTooLong
			}
			if len(buf) > maxBytes {
				return 0, tooLarge
			}
			return 0, nil
		}
		i := s.scanned + j
		if i == 0 || buf[i-1] != '\r' {
			return 0, ErrBareLF
		}
		if s.lines == 0 && maxFirst > 0 && i-1 > maxFirst {
			return 0, ErrRequestLineTooLong
		}
		s.lines++
		if i-1 == s.lineStart && (s.lines > 1 || maxFirst == 0) {
			if i+1 > maxBytes {
				return 0, tooLarge
			}
			return i + 1, nil
		}
		s.lineStart = i + 1
		s.scanned = i + 1
	}
}

// ParseRequest parses one request head from the start of buf into req
// (which it resets first). It returns the head's length n: the body, or the
// next pipelined request, starts at buf[n]; bytes past the head are never
// read. On ErrNeedMore, call again with buf extended (same prefix). Any
// other error is an *Error; answer StatusFor(err) and close the connection.
func (p *Parser) ParseRequest(req *Request, buf []byte) (n int, err error) {
	req.Reset()
	end, e := p.scan.find(buf, p.Config.maxHead(), p.Config.maxReqLine(), ErrHeadTooLarge)
	if e == nil && end == 0 {
		return 0, ErrNeedMore
	}
	p.scan = lineScanner{}
	if e == nil {
		e = p.parseRequest(req, buf[:end])
	}
	if e != nil {
		req.Reset()
		return 0, p.Config.fail(e)
	}
	return end, nil
}

func (p *Parser) parseRequest(req *Request, b []byte) *Error {
	lineEnd := bytes.IndexByte(b, '\n') - 1 // b[lineEnd] == '\r'
	if lineEnd < 0 || b[lineEnd] != '\r' {
		return ErrBareLF // only when a changed buffer was passed without Reset
	}
	line := b[:lineEnd]
	if bytes.IndexByte(line, '\r') >= 0 {
		return ErrBareCR
	}
	if len(line) == 0 {
		return ErrBadRequestLine
	}
	i := 0
	for i < len(line) && isTchar(line[i]) {
		i++
	}
	if i == len(line) || line[i] != ' ' {
		if i == 0 || i < len(line) {
			return ErrBadMethod
		}
		return ErrBadRequestLine
	}
	if i == 0 {
		return ErrBadMethod
	}
	req.Method = line[:i]
	i++
	ts := i
	for i < len(line) && line[i] > ' ' && line[i] < 0x7f {
		i++
	}
	if i == len(line) {
		return ErrBadRequestLine
	}
	if line[i] != ' ' {
		return ErrBadTarget // control or non-ASCII byte
	}
	req.Target = line[ts:i]
	if len(req.Target) == 0 {
		return ErrBadRequestLine
	}
	v := line[i+1:]
	if len(v) != 8 || !validVersion(v) {
		return ErrBadVersion
	}
	if v[5] != '1' || v[7] > '1' {
		return ErrUnsupportedVersion
	}
	req.Minor = int(v[7] - '0')
	var e *Error
	if req.Form, req.Authority, e = parseTarget(req.Method, req.Target); e != nil {
		return e
	}

	var f framing
	if e = p.parseFields(&req.Headers, &f, b, lineEnd+2); e != nil {
		return e
	}
	if f.hosts > 1 {
		return ErrMultipleHost
	}
	if f.hosts == 0 && req.Minor == 1 {
		return ErrMissingHost
	}
	req.Host = f.host
	req.Body, req.ContentLength = BodyNone, -1
	if f.te {
		if e = f.checkTE(req.Minor); e != nil {
			return e
		}
		req.Body = BodyChunked
	} else if f.cl {
		req.Body, req.ContentLength = BodyLength, f.clValue
	}
	req.Close = f.close || req.Minor == 0 && !f.keepAlive
	req.Expect100 = f.expect100 && req.Minor == 1
	req.Upgrade = f.connUpgrade && f.upgrade && req.Minor == 1
	return nil
}

// ParseResponse parses one response head from the start of buf into resp,
// with the same contract as ParseRequest. m is the class of the request
// method the response answers, which decides whether a body follows.
// Interim (1xx) responses are returned like any other, with Body BodyNone;
// the caller parses again for the final response.
func (p *Parser) ParseResponse(resp *Response, buf []byte, m MethodClass) (n int, err error) {
	resp.Reset()
	end, e := p.scan.find(buf, p.Config.maxHead(), p.Config.maxHead(), ErrHeadTooLarge)
	if e == ErrRequestLineTooLong {
		e = ErrHeadTooLarge
	}
	if e == nil && end == 0 {
		return 0, ErrNeedMore
	}
	p.scan = lineScanner{}
	if e == nil {
		e = p.parseResponse(resp, buf[:end], m)
	}
	if e != nil {
		resp.Reset()
		return 0, p.Config.fail(e)
	}
	return end, nil
}

func (p *Parser) parseResponse(resp *Response, b []byte, m MethodClass) *Error {
	lineEnd := bytes.IndexByte(b, '\n') - 1
	if lineEnd < 0 || b[lineEnd] != '\r' {
		return ErrBareLF // only when a changed buffer was passed without Reset
	}
	line := b[:lineEnd]
	if bytes.IndexByte(line, '\r') >= 0 {
		return ErrBareCR
	}
	// status-line = HTTP-version SP status-code SP [ reason-phrase ]
	// The second SP is tolerated when missing, as clients commonly do.
	if len(line) < 12 || !validVersion(line[:8]) || line[8] != ' ' {
		return ErrBadStatusLine
	}
	if line[5] != '1' || line[7] > '1' {
		return ErrUnsupportedVersion
	}
	resp.Minor = int(line[7] - '0')
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return ErrBadStatusLine
		}
		code = code*10 + int(c-'0')
	}
	// RFC 9110 §15: "All valid status codes are within the range of 100
	// to 599, inclusive."
	if code < 100 || code > 599 {
		return ErrBadStatusLine
	}
	resp.Status = code
	if len(line) > 12 {
		if line[12] != ' ' {
			return ErrBadStatusLine
		}
		for _, c := range line[13:] {
			if class[c]&cValue == 0 {
				return ErrBadStatusLine
			}
		}
		resp.Reason = line[13:]
	}

	// RFC 9112 §6.3: for a 2xx answer to CONNECT "A client MUST ignore any
	// Content-Length or Transfer-Encoding header fields received in such a
	// message." Otherwise framing fields are validated even when the status
	// rules a body out.
	f := framing{ignore: m == MethodCONNECT && code/100 == 2}
	if e := p.parseFields(&resp.Headers, &f, b, lineEnd+2); e != nil {
		return e
	}
	if f.te {
		if e := f.checkTE(resp.Minor); e != nil {
			return e
		}
	}
	resp.ContentLength = -1
	switch {
	case code < 200 || code == 204 || code == 304 || m == MethodHEAD ||
		m == MethodCONNECT && code < 300:
		resp.Body = BodyNone
	case f.te:
		resp.Body = BodyChunked
	case f.cl:
		resp.Body, resp.ContentLength = BodyLength, f.clValue
	default:
		resp.Body = BodyUntilClose
	}
	resp.Close = f.close || resp.Minor == 0 && !f.keepAlive || resp.Body == BodyUntilClose
	resp.Upgrade = code == 101
	return nil
}

// framing collects what the fields say about framing and the connection.
type framing struct {
	ignore    bool // Content-Length and Transfer-Encoding are not framing
	cl        bool
	clRaw     []byte
	clValue   int64
	te        bool
	teBad     bool
	teChunked int  // number of chunked codings
	teLast    bool // the last coding seen is chunked
	teOther   bool // some coding other than chunked

	hosts int
	host  []byte

	close, keepAlive, connUpgrade bool
	upgrade, expect100            bool
}

// checkTE applies RFC 9112 §6.1 and §6.3 to a present Transfer-Encoding.
func (f *framing) checkTE(minor int) *Error {
	switch {
	case f.cl:
		return ErrCLAndTE
	case minor == 0:
		return ErrTransferEncodingHTTP10
	case f.teBad:
		return ErrBadTransferEncoding
	case f.teChunked > 1:
		return ErrChunkedTwice
	case !f.teLast:
		return ErrChunkedNotFinal
	case f.teOther:
		return ErrUnsupportedTransferCoding
	}
	return nil
}

// parseFields parses field lines from b[i:] through the blank line that
// ends b, appending them to h and noting framing fields in f.
func (p *Parser) parseFields(h *Headers, f *framing, b []byte, i int) *Error {
	maxFields := p.Config.maxFields()
	first := true
	for {
		name, value, next, e := parseField(b, i)
		if e != nil {
			if e == ErrObsFold && first {
				return ErrWhitespaceAfterStart
			}
			return e
		}
		if name == nil {
			return nil
		}
		first = false
		if len(h.fields) == maxFields {
			return ErrTooManyFields
		}
		h.fields = append(h.fields, Field{Name: name, Value: value})
		if e = f.note(name, value); e != nil {
			return e
		}
		i = next
	}
}

// parseField parses the field line at b[i:]. For the blank line it returns
// a nil name. b ends with the section's blank line and every LF in it is
// preceded by CR, so indexing one past a CR stays in bounds.
func parseField(b []byte, i int) (name, value []byte, next int, e *Error) {
	start := i
	switch c := b[i]; {
	case c == '\r':
		if b[i+1] != '\n' {
			return nil, nil, 0, ErrBareCR
		}
		return nil, nil, i + 2, nil
	case isOWS(c):
		// RFC 9112 §5.2: obs-fold.
		return nil, nil, 0, ErrObsFold
	}
	for _, c := range b[start:] { // range: no bounds check per byte
		if class[c]&cTchar == 0 {
			break
		}
		i++
	}
	switch b[i] {
	case ':':
	case ' ', '\t':
		return nil, nil, 0, ErrSpaceBeforeColon
	case '\r':
		if b[i+1] != '\n' {
			return nil, nil, 0, ErrBareCR
		}
		return nil, nil, 0, ErrMissingColon
	default:
		return nil, nil, 0, ErrBadFieldName
	}
	if i == start {
		return nil, nil, 0, ErrBadFieldName
	}
	name = b[start:i]
	i++
	for isOWS(b[i]) {
		i++
	}
	vs := i
	// Eight bytes at a time up to the first control byte; HTAB is the only
	// one a value may hold, so step over it and go on.
	for {
		if i+8 <= len(b) {
			m := ctlMask(binary.LittleEndian.Uint64(b[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		} else {
			for class[b[i]]&cValue != 0 {
				i++
			}
		}
		if b[i] != '\t' {
			break
		}
		i++
	}
	if b[i] != '\r' {
		return nil, nil, 0, ErrBadFieldValue
	}
	if b[i+1] != '\n' {
		return nil, nil, 0, ErrBareCR
	}
	ve := i
	for ve > vs && isOWS(b[ve-1]) {
		ve--
	}
	return name, b[vs:ve], i + 2, nil
}

// note records a field that matters to framing or connection handling.
// Names are dispatched on length first so most fields cost one switch.
func (f *framing) note(name, value []byte) *Error {
	switch len(name) {
	case 4:
		if equalFold(name, "host") {
			f.hosts++
			f.host = value
			if len(value) > 0 && !validAuthority(value, false) {
				return ErrBadHost
			}
		}
	case 6:
		if equalFold(name, "expect") && listHas(value, "100-continue") {
			f.expect100 = true
		}
	case 7:
		if equalFold(name, "upgrade") {
			f.upgrade = f.upgrade || len(value) > 0
		} else if equalFold(name, "trailer") {
			for v := value; len(v) > 0; {
				var el []byte
				el, v = nextElem(v)
				if isFramingField(el) {
					return ErrBadTrailerField
				}
			}
		}
	case 10:
		if equalFold(name, "connection") {
			for v := value; len(v) > 0; {
				var el []byte
				el, v = nextElem(v)
				switch {
				case equalFold(el, "close"):
					f.close = true
				case equalFold(el, "keep-alive"):
					f.keepAlive = true
				case equalFold(el, "upgrade"):
					f.connUpgrade = true
				}
			}
		}
	case 14:
		if !f.ignore && equalFold(name, "content-length") {
			n, ok := parseContentLength(value)
			if !ok {
				return ErrBadContentLength
			}
			// Identical repeated field lines collapse; any difference,
			// even "5" against "05", is an error.
			if f.cl && !bytes.Equal(value, f.clRaw) {
				return ErrCLMismatch
			}
			f.cl, f.clRaw, f.clValue = true, value, n
		}
	case 17:
		if !f.ignore && equalFold(name, "transfer-encoding") {
			f.te = true
			f.noteTE(value)
		}
	}
	return nil
}

// noteTE records the codings of one Transfer-Encoding field line. Empty
// list elements are rejected: on this field strictness beats RFC 9110
// §5.6.1's leniency, as a disagreement here is a smuggling vector.
func (f *framing) noteTE(v []byte) {
	for {
		el := v
		more := false
		if j := bytes.IndexByte(v, ','); j >= 0 {
			el, v, more = v[:j], v[j+1:], true
		}
		el = trimOWS(el)
		if !f.noteCoding(el) || !more {
			return
		}
	}
}

// noteCoding records one transfer-coding; false stops the scan.
func (f *framing) noteCoding(el []byte) bool {
	if len(el) == 0 {
		f.teBad = true
		return false
	}
	if equalFold(el, "chunked") {
		f.teChunked++
		f.teLast = true
		return true
	}
	// Another coding: a token, possibly with parameters.
	j := 0
	for j < len(el) && isTchar(el[j]) {
		j++
	}
	if j == 0 || j < len(el) && el[j] != ';' && !isOWS(el[j]) {
		f.teBad = true
		return false
	}
	f.teOther = true
	f.teLast = false
	return true
}

// validVersion checks HTTP-version = HTTP-name "/" DIGIT "." DIGIT, with
// HTTP-name case-sensitive (RFC 9112 §2.3).
func validVersion(v []byte) bool {
	return string(v[:5]) == "HTTP/" && '0' <= v[5] && v[5] <= '9' && v[6] == '.' && '0' <= v[7] && v[7] <= '9'
}

// parseContentLength parses 1*DIGIT into a non-negative int64.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// isFramingField reports names that must never be trailer fields.
func isFramingField(name []byte) bool {
	return equalFold(name, "content-length") || equalFold(name, "transfer-encoding") ||
		equalFold(name, "trailer")
}
