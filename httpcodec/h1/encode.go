package h1

import "strconv"

// Text is what the encoders accept for names and values: a string constant
// or a sub-slice of a parsed buffer, without conversion.
type Text interface{ ~string | ~[]byte }

// The encoders write what they are given. Bytes from a parsed message are
// already valid; anything else (configuration, computed values) should be
// checked once with ValidMethod, ValidFieldName and ValidFieldValue, since a
// CR or LF in a value would let it inject fields or split the message.

func appendVersion(dst []byte, minor int) []byte {
	if minor == 0 {
		return append(dst, "HTTP/1.0"...)
	}
	return append(dst, "HTTP/1.1"...)
}

// AppendRequestLine appends "method SP target SP HTTP/1.minor CRLF".
func AppendRequestLine[M, T Text](dst []byte, method M, target T, minor int) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = append(dst, target...)
	dst = append(dst, ' ')
	dst = appendVersion(dst, minor)
	return append(dst, '\r', '\n')
}

// AppendStatusLine appends "HTTP/1.minor SP code SP reason CRLF"; the space
// before the reason is written even when it is empty (RFC 9112 §4). Pass
// StatusText(code) for the canonical phrase.
func AppendStatusLine[R Text](dst []byte, minor, code int, reason R) []byte {
	dst = appendVersion(dst, minor)
	dst = append(dst, ' ', byte('0'+code/100%10), byte('0'+code/10%10), byte('0'+code%10), ' ')
	dst = append(dst, reason...)
	return append(dst, '\r', '\n')
}

// AppendHeader appends one field line "name: value CRLF".
func AppendHeader[N, V Text](dst []byte, name N, value V) []byte {
	dst = append(dst, name...)
	dst = append(dst, ':', ' ')
	dst = append(dst, value...)
	return append(dst, '\r', '\n')
}

// AppendContentLength appends "Content-Length: n CRLF".
func AppendContentLength(dst []byte, n int64) []byte {
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, '\r', '\n')
}

// AppendEndOfHead appends the CRLF that ends a head.
func AppendEndOfHead(dst []byte) []byte { return append(dst, '\r', '\n') }

// AppendHeaders appends every field of h, in order.
func AppendHeaders(dst []byte, h *Headers) []byte {
	for _, f := range h.fields {
		dst = AppendHeader(dst, f.Name, f.Value)
	}
	return dst
}

// AppendEndToEnd appends the fields of h a proxy forwards: all but those
// h.IsHopByHop reports (the fixed hop-by-hop names and every name listed in
// a Connection field), and only the first of repeated identical
// Content-Length lines. The proxy then adds its own fields (Via,
// X-Forwarded-For, Transfer-Encoding if it re-chunks) and AppendEndOfHead.
func AppendEndToEnd(dst []byte, h *Headers) []byte {
	// Collect the Connection values once; past a handful, fall back to
	// h.IsHopByHop, which rescans.
	// The usual options ("keep-alive", "close", "upgrade") name no field
	// that is not already dropped; only other options need a per-field look.
	var conn [4][]byte
	nconn := 0
	for _, f := range h.fields {
		if len(f.Name) == 10 && equalFold(f.Name, "connection") && namesOthers(f.Value) {
			if nconn < len(conn) {
				conn[nconn] = f.Value
			}
			nconn++
		}
	}
	seenCL := false
	for _, f := range h.fields {
		if IsHopByHopName(f.Name) {
			continue
		}
		if len(f.Name) == 14 && equalFold(f.Name, "content-length") {
			// Identical repeats were accepted; forward one (RFC 9110 §8.6:
			// "replace that invalid field value with a single instance").
			if seenCL {
				continue
			}
			seenCL = true
		}
		if nconn > len(conn) {
			if h.IsHopByHop(f.Name) {
				continue
			}
		} else if nconn > 0 && nominable(f.Name) && nominated(conn[:nconn], f.Name) {
			continue
		}
		dst = AppendHeader(dst, f.Name, f.Value)
	}
	return dst
}

// namesOthers reports whether a Connection value has an option other than
// close and the fixed hop-by-hop names.
func namesOthers(v []byte) bool {
	for len(v) > 0 {
		var el []byte
		el, v = nextElem(v)
		if len(el) > 0 && !IsHopByHopName(el) && !equalFold(el, "close") {
			return true
		}
	}
	return false
}

func nominated(conn [][]byte, name []byte) bool {
	for _, v := range conn {
		if listHas(v, name) {
			return true
		}
	}
	return false
}

// AppendRequestHead appends r's head as parsed: request line, every field,
// final CRLF. To forward a request, build the head from AppendRequestLine,
// AppendEndToEnd and AppendHeader instead.
func AppendRequestHead(dst []byte, r *Request) []byte {
	dst = AppendRequestLine(dst, r.Method, r.Target, r.Minor)
	dst = AppendHeaders(dst, &r.Headers)
	return append(dst, '\r', '\n')
}

// AppendResponseHead appends r's head as parsed: status line, every field,
// final CRLF.
func AppendResponseHead(dst []byte, r *Response) []byte {
	dst = AppendStatusLine(dst, r.Minor, r.Status, r.Reason)
	dst = AppendHeaders(dst, &r.Headers)
	return append(dst, '\r', '\n')
}

// ValidMethod reports whether m is a token (RFC 9110 §9.1).
func ValidMethod[S Text](m S) bool { return ValidFieldName(m) }

// ValidFieldName reports whether name is a non-empty token (RFC 9110 §5.1).
func ValidFieldName[S Text](name S) bool {
	if len(name) == 0 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isTchar(name[i]) {
			return false
		}
	}
	return true
}

// ValidFieldValue reports whether v may be sent as a field value: no
// control characters but HTAB, and no leading or trailing whitespace
// (RFC 9110 §5.5).
func ValidFieldValue[S Text](v S) bool {
	for i := 0; i < len(v); i++ {
		if class[v[i]]&cValue == 0 {
			return false
		}
	}
	return len(v) == 0 || !isOWS(v[0]) && !isOWS(v[len(v)-1])
}

// StatusText returns the RFC 9110 reason phrase for code, or "" if the code
// is not registered there (or in RFC 6585 / RFC 8297 for 103, 428, 429, 431,
// 511, and RFC 7725 for 451).
func StatusText(code int) string {
	switch code {
	case 100:
		return "Continue"
	case 101:
		return "Switching Protocols"
	case 103:
		return "Early Hints"
	case 200:
		return "OK"
	case 201:
		return "Created"
	case 202:
		return "Accepted"
	case 203:
		return "Non-Authoritative Information"
	case 204:
		return "No Content"
	case 205:
		return "Reset Content"
	case 206:
		return "Partial Content"
	case 300:
		return "Multiple Choices"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Found"
	case 303:
		return "See Other"
	case 304:
		return "Not Modified"
	case 305:
		return "Use Proxy"
	case 307:
		return "Temporary Redirect"
	case 308:
		return "Permanent Redirect"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 402:
		return "Payment Required"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 406:
		return "Not Acceptable"
	case 407:
		return "Proxy Authentication Required"
	case 408:
		return "Request Timeout"
	case 409:
		return "Conflict"
	case 410:
		return "Gone"
	case 411:
		return "Length Required"
	case 412:
		return "Precondition Failed"
	case 413:
		return "Content Too Large"
	case 414:
		return "URI Too Long"
	case 415:
		return "Unsupported Media Type"
	case 416:
		return "Range Not Satisfiable"
	case 417:
		return "Expectation Failed"
	case 421:
		return "Misdirected Request"
	case 422:
		return "Unprocessable Content"
	case 426:
		return "Upgrade Required"
	case 428:
		return "Precondition Required"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 451:
		return "Unavailable For Legal Reasons"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	case 511:
		return "Network Authentication Required"
	}
	return ""
}
