package h1

// Byte classes, one table lookup per input byte on the hot path.
const (
	cTchar   = 1 << iota // RFC 9110 §5.6.2 tchar
	cValue               // field-vchar, SP, HTAB: allowed inside a field value
	cTarget              // allowed in a request-target path or query (see target.go)
	cHex                 // HEXDIG
	cRegName             // unreserved / sub-delims (RFC 3986 reg-name without pct-encoded)
	cQdtext              // qdtext of a quoted-string (RFC 9110 §5.6.4)
)

var class = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alpha := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
		digit := '0' <= b && b <= '9'
		if alpha || digit || indexOf("!#$%&'*+-.^_`|~", b) {
			t[c] |= cTchar
		}
		if b == '\t' || b >= 0x20 && b != 0x7f {
			t[c] |= cValue // VCHAR, SP, HTAB and obs-text (>= 0x80)
		}
		unreserved := alpha || digit || indexOf("-._~", b)
		subDelims := indexOf("!$&'()*+,;=", b)
		// RFC 3986 pchar plus "/" and "?" (query), "%" (checked for two
		// hex digits separately), and the characters browsers are known
		// to send unescaped in paths and queries: { } | ^ `.
		if unreserved || subDelims || indexOf(":@/?%{}|^`", b) {
			t[c] |= cTarget
		}
		if digit || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F' {
			t[c] |= cHex
		}
		if unreserved || subDelims {
			t[c] |= cRegName
		}
		if b == '\t' || b == ' ' || b == 0x21 || 0x23 <= b && b <= 0x5b || 0x5d <= b && b <= 0x7e || b >= 0x80 {
			t[c] |= cQdtext
		}
	}
	return t
}()

func indexOf(s string, b byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return true
		}
	}
	return false
}

func isTchar(b byte) bool { return class[b]&cTchar != 0 }

// lower folds ASCII upper case; field names and codings are ASCII.
func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + ('a' - 'A')
	}
	return b
}

// equalFold reports whether b and s are equal ignoring ASCII case.
func equalFold[S ~string | ~[]byte](b []byte, s S) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func isOWS(b byte) bool { return b == ' ' || b == '\t' }

func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func hexVal(b byte) int64 {
	switch {
	case '0' <= b && b <= '9':
		return int64(b - '0')
	case 'a' <= b && b <= 'f':
		return int64(b-'a') + 10
	default:
		return int64(b-'A') + 10
	}
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// ctlMask flags (high bit of the byte) the bytes of w, read little-endian,
// that are below 0x20 (HTAB included) or are DEL. It uses the borrow trick:
// x-n sets a byte's high bit when that byte is below n and had its high bit
// clear. A borrow only spreads upward from a byte that matched, so the mask
// is non-zero exactly when some byte matches and its lowest flag marks the
// first such byte; flags above it may be spurious.
func ctlMask(w uint64) uint64 {
	below := (w - lsb*0x20) &^ w & msb
	x := w ^ (lsb * 0x7f)
	del := (x - lsb) &^ x & msb
	return below | del
}
