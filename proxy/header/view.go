package header

import (
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// View is the neutral view of one received message's fields: HTTP/1.1
// parsed fields (any case, Connection options to honour) or an HTTP/2
// field list (lower case; the codec refused connection-specific fields,
// RFC 9113 §8.2.2). The zero View has no fields.
type View struct {
	h1   *h1.Headers
	f1   []h1.Field // h1's fields
	h2   []hpack.HeaderField
	slow bool // HTTP/1.1: a Connection field names other fields
}

// H1 views parsed HTTP/1.1 fields (nil: none).
func H1(h *h1.Headers) View {
	if h == nil {
		return View{}
	}
	return View{h1: h, f1: h.Fields(), slow: nominatesOthers(h)}
}

// H2 views an HTTP/2 field list.
func H2(f []hpack.HeaderField) View { return View{h2: f} }

// Len is the number of fields, dropped ones included.
func (v *View) Len() int {
	if v.h1 != nil {
		return len(v.f1)
	}
	return len(v.h2)
}

// at returns the i-th field; HTTP/1.1 strings alias the parser's buffer.
func (v *View) at(i int) (name, value string) {
	if v.h1 != nil {
		f := &v.f1[i]
		return Alias(f.Name), Alias(f.Value)
	}
	f := &v.h2[i]
	return f.Name, f.Value
}

// nominated reports an HTTP/1.1 field a Connection option names (to be
// dropped).
func (v *View) nominated(i int) bool { return v.slow && v.h1.IsHopByHop(v.f1[i].Name) }

// appendJoined appends the non-empty values of the fields of kind k,
// joined with sep (RFC 9110 §5.3: the same as repeated field lines).
func (v *View) appendJoined(dst []byte, k Kind, sep string) []byte {
	first := true
	for i := range v.Len() {
		name, value := v.at(i)
		if value == "" || KindOf(name) != k || v.nominated(i) {
			continue
		}
		if !first {
			dst = append(dst, sep...)
		}
		first = false
		dst = append(dst, value...)
	}
	return dst
}

// nominatesOthers reports whether a Connection field of h names an option
// that is not itself a fixed hop-by-hop name or "close": only then does
// each field need the slower h.IsHopByHop check.
func nominatesOthers(h *h1.Headers) bool {
	for _, f := range h.Fields() {
		if len(f.Name) != 10 || !EqualFold(f.Name, "connection") {
			continue
		}
		v := f.Value
		for len(v) > 0 {
			var el []byte
			el, v = nextElem(v)
			if len(el) > 0 && !KindOf(el).hop() && !EqualFold(el, "close") {
				return true
			}
		}
	}
	return false
}

// nextElem splits the first element off a comma-separated list, trimming
// optional whitespace.
func nextElem(v []byte) (el, rest []byte) {
	i := 0
	for i < len(v) && v[i] != ',' {
		i++
	}
	el, rest = v[:i], v[min(i+1, len(v)):]
	for len(el) > 0 && (el[0] == ' ' || el[0] == '\t') {
		el = el[1:]
	}
	for len(el) > 0 && (el[len(el)-1] == ' ' || el[len(el)-1] == '\t') {
		el = el[:len(el)-1]
	}
	return el, rest
}
