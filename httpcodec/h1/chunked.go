package h1

import "bytes"

type chunkState uint8

const (
	stSize    chunkState = iota // expecting a chunk-size line
	stData                      // inside chunk data (or a read-until-close body)
	stDataEnd                   // expecting the CRLF after chunk data
	stTrailer                   // expecting the trailer section
	stDone
	stFailed // a protocol error was returned; it is returned again
)

// decodeChunked runs the chunked state machine (RFC 9112 §7.1) until it
// has data to return, the body ends, or input runs out.
func (d *BodyDecoder) decodeChunked(in []byte) (data []byte, n int, e *Error) {
	for {
		switch d.state {
		case stSize:
			size, k, e := parseChunkSize(in[n:], d.Config.maxChunkLine())
			if e != nil || k == 0 {
				return nil, n, e
			}
			n += k
			if size == 0 {
				d.state = stTrailer
				d.scan = lineScanner{}
			} else {
				d.remaining = size
				d.state = stData
			}
		case stData:
			avail := int64(len(in) - n)
			if avail == 0 {
				return nil, n, nil
			}
			if avail > d.remaining {
				avail = d.remaining
			}
			d.remaining -= avail
			if d.remaining == 0 {
				d.state = stDataEnd
			}
			return in[n : n+int(avail)], n + int(avail), nil
		case stDataEnd:
			rest := in[n:]
			if len(rest) == 0 || len(rest) == 1 && rest[0] == '\r' {
				return nil, n, nil
			}
			if rest[0] != '\r' || rest[1] != '\n' {
				switch {
				case rest[0] == '\n':
					return nil, n, ErrBareLF
				case rest[0] == '\r':
					return nil, n, ErrBareCR
				}
				return nil, n, ErrBadChunkTerminator
			}
			n += 2
			d.state = stSize
		case stTrailer:
			k, e := d.parseTrailers(in[n:])
			if e != nil || k == 0 {
				return nil, n, e
			}
			n += k
			d.state = stDone
		default: // stDone
			return nil, n, nil
		}
	}
}

// parseChunkSize parses chunk-size [ chunk-ext ] CRLF at the start of in.
// k == 0 with a nil error means the line is not complete yet.
func parseChunkSize(in []byte, maxLine int) (size int64, k int, e *Error) {
	lim := in
	if len(lim) > maxLine {
		lim = lim[:maxLine]
	}
	j := bytes.IndexByte(lim, '\n')
	if j < 0 {
		if len(in) >= maxLine {
			return 0, 0, ErrChunkLineTooLong
		}
		return 0, 0, nil
	}
	if j == 0 || in[j-1] != '\r' {
		return 0, 0, ErrBareLF
	}
	line := in[:j-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return 0, 0, ErrBareCR
	}
	i := 0
	for i < len(line) && class[line[i]]&cHex != 0 {
		size = size<<4 | hexVal(line[i])
		i++
		// 16 hex digits hold 64 bits; the 16th must leave the sign bit
		// clear. More digits, even leading zeros, are refused (as net/http
		// does), so the line can never wrap around.
		if i > 16 || i == 16 && size < 0 {
			return 0, 0, ErrChunkSizeOverflow
		}
	}
	if i == 0 {
		return 0, 0, ErrBadChunkSize
	}
	if i < len(line) {
		// Only a chunk extension may follow, starting right at ";".
		if line[i] != ';' {
			return 0, 0, ErrBadChunkSize
		}
		if !validChunkExt(line[i:]) {
			return 0, 0, ErrBadChunkExtension
		}
	}
	return size, j + 1, nil
}

// validChunkExt checks
//
//	chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//
// with chunk-ext-name a token and chunk-ext-val a token or quoted-string.
// The extension is then ignored. Trailing whitespace is refused.
func validChunkExt(x []byte) bool {
	i := 0
	ows := func() {
		for i < len(x) && isOWS(x[i]) {
			i++
		}
	}
	token := func() bool {
		s := i
		for i < len(x) && isTchar(x[i]) {
			i++
		}
		return i > s
	}
	for i < len(x) {
		ows()
		if i == len(x) || x[i] != ';' {
			return false
		}
		i++
		ows()
		if !token() {
			return false
		}
		s := i
		ows()
		if i == len(x) {
			return i == s
		}
		if x[i] != '=' {
			continue // the loop wants ";" next
		}
		i++
		ows()
		if i < len(x) && x[i] == '"' {
			if !quoted(x, &i) {
				return false
			}
		} else if !token() {
			return false
		}
	}
	return true
}

// quoted consumes a quoted-string (RFC 9110 §5.6.4) at x[*i].
func quoted(x []byte, i *int) bool {
	for j := *i + 1; j < len(x); j++ {
		switch c := x[j]; {
		case c == '"':
			*i = j + 1
			return true
		case c == '\\':
			j++
			if j == len(x) || class[x[j]]&cValue == 0 {
				return false
			}
		case class[c]&cQdtext == 0:
			return false
		}
	}
	return false
}

// parseTrailers parses trailer-section CRLF at the start of in into
// d.trailers, resuming its search for the blank line across calls.
func (d *BodyDecoder) parseTrailers(in []byte) (int, *Error) {
	end, e := d.scan.find(in, d.Config.maxTrailer(), 0, ErrTrailerTooLarge)
	if e != nil || end == 0 {
		return 0, e
	}
	d.scan = lineScanner{}
	maxFields := d.Config.maxFields()
	b := in[:end]
	for i := 0; ; {
		name, value, next, e := parseField(b, i)
		if e != nil {
			return 0, e
		}
		if name == nil {
			return end, nil
		}
		if isFramingField(name) || equalFold(name, "host") {
			return 0, ErrBadTrailerField
		}
		if d.trailers.Len() == maxFields {
			return 0, ErrTooManyFields
		}
		d.trailers.Add(name, value)
		i = next
	}
}

const hexDigits = "0123456789abcdef"

// AppendChunkHeader appends the chunk-size line for a chunk of size bytes
// (size > 0). The caller appends the data and then "\r\n"; AppendChunk does
// all three.
func AppendChunkHeader(dst []byte, size int) []byte {
	var tmp [16]byte
	i := len(tmp)
	u := uint64(size)
	for {
		i--
		tmp[i] = hexDigits[u&15]
		u >>= 4
		if u == 0 {
			break
		}
	}
	dst = append(dst, tmp[i:]...)
	return append(dst, '\r', '\n')
}

// AppendChunk appends data as one chunk. Empty data appends nothing, since a
// zero-size chunk would end the body.
func AppendChunk(dst, data []byte) []byte {
	if len(data) == 0 {
		return dst
	}
	dst = AppendChunkHeader(dst, len(data))
	dst = append(dst, data...)
	return append(dst, '\r', '\n')
}

// AppendLastChunk appends the last chunk, the trailer fields of t (nil for
// none) and the CRLF that ends the body. Trailer names and values are
// written as given: pass validated fields (see ValidFieldName).
func AppendLastChunk(dst []byte, t *Headers) []byte {
	dst = append(dst, '0', '\r', '\n')
	if t != nil {
		for _, f := range t.fields {
			dst = AppendHeader(dst, f.Name, f.Value)
		}
	}
	return append(dst, '\r', '\n')
}
