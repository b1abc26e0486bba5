package h2

import (
	"golang.org/x/net/http2/hpack"
)

// Headers is a validated request or response header block, as delivered by
// Handler.OnHeaders. The pseudo-header fields are pulled out for
// convenience; Fields still holds every field in wire order, pseudo-header
// fields first. A Headers value is reused: copy what you keep.
type Headers struct {
	Fields []hpack.HeaderField

	// Request pseudo-header fields (server role).
	Method, Scheme, Authority, Path, Protocol string
	// Status is the response :status (client role), 0 for requests.
	Status int
	// ContentLength is the content-length value, -1 when absent.
	ContentLength int64
	// EndStream is set when the block ends the peer's side of the stream.
	EndStream bool
}

// reset clears h; Fields is set when the block is delivered.
func (h *Headers) reset() {
	*h = Headers{ContentLength: -1}
}

// Reasons a header list is malformed (RFC 9113 §8.1.1: "Malformed requests
// or responses that are detected MUST be treated as a stream error (Section
// 5.4.2) of type PROTOCOL_ERROR."). Constants, so rejecting allocates nothing.
const (
	reasonPseudoAfterRegular = "pseudo-header field after regular field"
	reasonPseudoDuplicate    = "duplicate pseudo-header field"
	reasonPseudoUnknown      = "unknown or misplaced pseudo-header field"
	reasonPseudoInTrailers   = "pseudo-header field in trailers"
	reasonNameInvalid        = "invalid field name"
	reasonValueInvalid       = "invalid field value"
	reasonConnSpecific       = "connection-specific header field"
	reasonTE                 = "te other than trailers"
	reasonNoMethod           = "missing :method"
	reasonNoScheme           = "missing :scheme"
	reasonNoPath             = "missing or empty :path"
	reasonBadPath            = "invalid :path"
	reasonConnectFields      = "CONNECT with :scheme or :path"
	reasonNoAuthority        = "missing :authority"
	reasonUserinfo           = ":authority with userinfo"
	reasonHostMismatch       = "host differs from :authority"
	reasonHostDuplicate      = "duplicate host"
	reasonProtocol           = ":protocol not allowed"
	reasonStatus             = "missing or invalid :status"
	reason101                = "101 status in HTTP/2"
	reasonInfoEndStream      = "informational response with END_STREAM"
	reasonContentLength      = "invalid content-length"
	reasonTrailersNoES       = "trailers without END_STREAM"
	reasonLengthMismatch     = "DATA length differs from content-length"
)

// tokenLower marks the bytes allowed in a regular field name: RFC 9110
// tchar, minus uppercase. RFC 9113 §8.2.1 forbids 0x00-0x20, 0x41-0x5a and
// 0x7f-0xff and the colon; restricting to tchar also keeps out separators a
// downstream HTTP/1.1 parser could be fooled by.
var tokenLower = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validMethod: a method is a token (RFC 9110 §9.1), case-sensitive.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !tokenLower[c] && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenLower[s[i]] {
			return false
		}
	}
	return true
}

// validValue: "A field value MUST NOT contain the zero value (ASCII NUL,
// 0x00), line feed (ASCII LF, 0x0a), or carriage return (ASCII CR, 0x0d) at
// any position. A field value MUST NOT start or end with an ASCII whitespace
// character (ASCII SP or HTAB, 0x20 or 0x09)."
func validValue(s string) bool {
	if s == "" {
		return true
	}
	if c := s[0]; c == ' ' || c == '\t' {
		return false
	}
	if c := s[len(s)-1]; c == ' ' || c == '\t' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 0, '\n', '\r':
			return false
		}
	}
	return true
}

// checkRegular validates a regular (non-pseudo) field valid in any header
// block: "An endpoint MUST NOT generate an HTTP/2 message containing
// connection-specific header fields ... any message containing
// connection-specific header fields MUST be treated as malformed."
func checkRegular(f *hpack.HeaderField) string {
	if !validName(f.Name) {
		return reasonNameInvalid
	}
	if !validValue(f.Value) {
		return reasonValueInvalid
	}
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return reasonConnSpecific
	case "te":
		// "The only exception to this is the TE header field, which MAY be
		// present in an HTTP/2 request; when it is, it MUST NOT contain any
		// value other than "trailers"."
		if !asciiEqualFold(f.Value, "trailers") {
			return reasonTE
		}
	}
	return ""
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// parseContentLength accepts 1*DIGIT without overflow.
func parseContentLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// mergeContentLength folds one content-length field into cl (-1 = none
// yet). Repeated fields must agree (RFC 9110 §8.6).
func mergeContentLength(cl int64, v string) (int64, bool) {
	n, ok := parseContentLength(v)
	if !ok || (cl >= 0 && cl != n) {
		return cl, false
	}
	return n, true
}

// validateRequest checks a request header block (RFC 9113 §8.3.1) and fills
// h. allowProtocol is whether we advertised SETTINGS_ENABLE_CONNECT_PROTOCOL.
// It returns "" or the reason the request is malformed.
func validateRequest(fields []hpack.HeaderField, allowProtocol bool, h *Headers) string {
	var sawRegular, sawMethod, sawScheme, sawAuthority, sawPath, sawProtocol, sawHost bool
	var host string
	for i := range fields {
		f := &fields[i]
		if len(f.Name) > 0 && f.Name[0] == ':' {
			// "All pseudo-header fields MUST appear in a field block before
			// all regular field lines."
			if sawRegular {
				return reasonPseudoAfterRegular
			}
			if !validValue(f.Value) {
				return reasonValueInvalid
			}
			var seen *bool
			switch f.Name {
			case ":method":
				seen, h.Method = &sawMethod, f.Value
			case ":scheme":
				seen, h.Scheme = &sawScheme, f.Value
			case ":authority":
				seen, h.Authority = &sawAuthority, f.Value
			case ":path":
				seen, h.Path = &sawPath, f.Value
			case ":protocol":
				// RFC 8441 §3: only after SETTINGS_ENABLE_CONNECT_PROTOCOL.
				if !allowProtocol {
					return reasonProtocol
				}
				seen, h.Protocol = &sawProtocol, f.Value
			default:
				// "Endpoints MUST treat a request or response that contains
				// undefined or invalid pseudo-header fields as malformed."
				return reasonPseudoUnknown
			}
			// "The same pseudo-header field name MUST NOT appear more than
			// once in a field block."
			if *seen {
				return reasonPseudoDuplicate
			}
			*seen = true
			continue
		}
		sawRegular = true
		if r := checkRegular(f); r != "" {
			return r
		}
		switch f.Name {
		case "content-length":
			cl, ok := mergeContentLength(h.ContentLength, f.Value)
			if !ok {
				return reasonContentLength
			}
			h.ContentLength = cl
		case "host":
			if sawHost {
				return reasonHostDuplicate
			}
			sawHost, host = true, f.Value
		}
	}
	if !sawMethod || !validMethod(h.Method) {
		return reasonNoMethod
	}
	if h.Method == "CONNECT" && !sawProtocol {
		// "The :scheme and :path pseudo-header fields MUST be omitted. The
		// :authority pseudo-header field contains the host and port to
		// connect to."
		if sawScheme || sawPath {
			return reasonConnectFields
		}
		if !sawAuthority {
			return reasonNoAuthority
		}
		return checkHost(h, sawHost, host)
	}
	if sawProtocol && h.Method != "CONNECT" {
		return reasonProtocol
	}
	// "All HTTP/2 requests MUST include exactly one valid value for the
	// :method, :scheme, and :path pseudo-header fields, unless they are
	// CONNECT requests"
	if !sawScheme || h.Scheme == "" {
		return reasonNoScheme
	}
	if !sawPath || h.Path == "" {
		// "This pseudo-header field MUST NOT be empty for "http" or "https"
		// URIs"
		return reasonNoPath
	}
	if sawProtocol && !sawAuthority {
		return reasonNoAuthority
	}
	if h.Scheme == "http" || h.Scheme == "https" {
		// "... an OPTIONS request for an "http" or "https" URI that does not
		// include a path component; these MUST include a ":path"
		// pseudo-header field with a value of '*'". Otherwise origin-form.
		if h.Path[0] != '/' && (h.Path != "*" || h.Method != "OPTIONS") {
			return reasonBadPath
		}
		// ":authority MUST NOT include the deprecated userinfo subcomponent
		// for "http" or "https" schemed URIs."
		for i := 0; i < len(h.Authority); i++ {
			if h.Authority[i] == '@' {
				return reasonUserinfo
			}
		}
	}
	return checkHost(h, sawHost, host)
}

// checkHost: "A server SHOULD treat a request as malformed if it contains a
// Host header field that identifies an entity that differs from the entity
// in the ":authority" pseudo-header field." A proxy routes on one and
// forwards the other, so a disagreement is refused.
func checkHost(h *Headers, sawHost bool, host string) string {
	if sawHost && h.Authority != "" && !asciiEqualFold(host, h.Authority) {
		return reasonHostMismatch
	}
	return ""
}

// validateResponse checks a response header block (RFC 9113 §8.3.2) and
// fills h. endStream is the END_STREAM flag of the block.
func validateResponse(fields []hpack.HeaderField, endStream bool, h *Headers) string {
	var sawRegular, sawStatus bool
	for i := range fields {
		f := &fields[i]
		if len(f.Name) > 0 && f.Name[0] == ':' {
			if sawRegular {
				return reasonPseudoAfterRegular
			}
			if f.Name != ":status" {
				return reasonPseudoUnknown
			}
			if sawStatus {
				return reasonPseudoDuplicate
			}
			sawStatus = true
			s := f.Value
			if len(s) != 3 || s[0] < '1' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9' {
				return reasonStatus
			}
			h.Status = int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
			continue
		}
		sawRegular = true
		if r := checkRegular(f); r != "" {
			return r
		}
		if f.Name == "content-length" {
			cl, ok := mergeContentLength(h.ContentLength, f.Value)
			if !ok {
				return reasonContentLength
			}
			h.ContentLength = cl
		}
	}
	// "For HTTP/2 responses, a single ":status" pseudo-header field is
	// defined ... This pseudo-header field MUST be included in all
	// responses"
	if !sawStatus {
		return reasonStatus
	}
	// §8.6: "The 101 (Switching Protocols) informational status code ...
	// is not applicable to HTTP/2."
	if h.Status == 101 {
		return reason101
	}
	// §8.1: a 1xx block is followed by more headers, so it cannot end the stream.
	if h.Status < 200 && endStream {
		return reasonInfoEndStream
	}
	return ""
}

// validateTrailers checks a trailer block: "Trailers MUST NOT include
// pseudo-header fields", and it must end the stream.
func validateTrailers(fields []hpack.HeaderField, endStream bool) string {
	for i := range fields {
		f := &fields[i]
		if len(f.Name) > 0 && f.Name[0] == ':' {
			return reasonPseudoInTrailers
		}
		if r := checkRegular(f); r != "" {
			return r
		}
	}
	// "An endpoint that receives a HEADERS frame without the END_STREAM
	// flag set after receiving the HEADERS frame that opens a request or
	// after receiving a final (non-informational) status code MUST treat
	// the corresponding request or response as malformed."
	if !endStream {
		return reasonTrailersNoES
	}
	return ""
}

// headerListSize is the SETTINGS_MAX_HEADER_LIST_SIZE measure of fields.
func headerListSize(fields []hpack.HeaderField) uint64 {
	var n uint64
	for i := range fields {
		n += uint64(len(fields[i].Name)) + uint64(len(fields[i].Value)) + 32
	}
	return n
}

// blameField finds the field a reason points at, for HeaderError.
func blameField(fields []hpack.HeaderField, reason string) string {
	for i := range fields {
		f := &fields[i]
		isPseudo := len(f.Name) > 0 && f.Name[0] == ':'
		switch reason {
		case reasonNameInvalid:
			if !isPseudo && !validName(f.Name) {
				return f.Name
			}
		case reasonValueInvalid:
			if !validValue(f.Value) {
				return f.Name
			}
		case reasonConnSpecific, reasonTE:
			if !isPseudo && checkRegular(f) == reason {
				return f.Name
			}
		}
	}
	return ""
}
