package header

import (
	"strconv"

	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// Scratch is the memory HTTP/2 encodings reuse; keep one per connection.
// The zero value is ready.
type Scratch struct {
	b  []byte
	sp []span
}

// span places one copied field: dst index, name length, end in b.
type span struct{ i, name, end int }

// An HTTP/2 field list is written append-style into dst: fields whose
// strings are immutable are appended as they are; the others are copied
// into s.b, with a placeholder in dst, and become one string at the end
// (finish).

// reset starts a list; a nil s is replaced by a fresh one.
func (s *Scratch) reset() *Scratch {
	if s == nil {
		return new(Scratch)
	}
	s.b, s.sp = s.b[:0], s.sp[:0]
	return s
}

// begin starts a copied field: its name (lower-cased) is copied now, its
// value is what the caller appends to s.b before end.
func (s *Scratch) begin(dst []hpack.HeaderField, name string) []hpack.HeaderField {
	start := len(s.b)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		s.b = append(s.b, c)
	}
	s.sp = append(s.sp, span{i: len(dst), name: len(s.b) - start})
	return append(dst, hpack.HeaderField{})
}

func (s *Scratch) end() { s.sp[len(s.sp)-1].end = len(s.b) }

// own appends a copied field.
func (s *Scratch) own(dst []hpack.HeaderField, name, value string) []hpack.HeaderField {
	dst = s.begin(dst, name)
	s.b = append(s.b, value...)
	s.end()
	return dst
}

// field appends name: value, copied unless immutable.
func (s *Scratch) field(dst []hpack.HeaderField, name, value string, immutable bool) []hpack.HeaderField {
	if immutable {
		return append(dst, hpack.HeaderField{Name: name, Value: value})
	}
	return s.own(dst, name, value)
}

// finish makes the copied fields' strings, one allocation for all.
func (s *Scratch) finish(dst []hpack.HeaderField) []hpack.HeaderField {
	if len(s.sp) == 0 {
		return dst
	}
	all := string(s.b)
	at := 0
	for _, sp := range s.sp {
		dst[sp.i] = hpack.HeaderField{Name: all[at : at+sp.name], Value: all[at+sp.name : sp.end]}
		at = sp.end
	}
	s.b = s.b[:0]
	return dst
}

// AppendH2Request appends the field list sent to an HTTP/2 upstream for
// r: pseudo-header fields, the fields that pass (Content-Length with
// keepCL, once), the forwarding fields. s may be nil (then it allocates).
func (p *Policy) AppendH2Request(dst []hpack.HeaderField, s *Scratch, r *Request, keepCL bool) []hpack.HeaderField {
	s = s.reset()
	h2in := r.From == HTTP2 // the request's strings are the HPACK decoder's
	host := p.Host(r)
	dst = s.field(dst, ":method", r.Method, h2in)
	dst = append(dst, hpack.HeaderField{Name: ":scheme", Value: r.UpstreamScheme})
	dst = s.field(dst, ":authority", host, h2in || host != r.Authority)
	dst = s.field(dst, ":path", r.Target, h2in)
	f := p.forward(r, HTTP2)
	v := &r.Fields
	if v.h1 == nil {
		for i := range v.h2 {
			if hf := &v.h2[i]; f.field(hf.Name, false, keepCL) {
				dst = append(dst, *hf) // its Sensitive mark kept
			}
		}
	} else {
		for i := range v.f1 {
			if name, value := v.at(i); f.field(name, v.nominated(i), keepCL) {
				dst = s.own(dst, name, value)
			}
		}
	}
	if f.xf {
		dst = s.begin(dst, "x-forwarded-for")
		s.b = f.appendXFF(s.b, r)
		s.end()
		if f.nXFProto == 0 {
			dst = append(dst, hpack.HeaderField{Name: "x-forwarded-proto", Value: r.Scheme})
		}
		if r.Authority != "" && f.nXFHo == 0 {
			dst = s.field(dst, "x-forwarded-host", r.Authority, h2in)
		}
	}
	if r.RequestID != "" {
		dst = s.own(dst, "x-request-id", r.RequestID)
	}
	dst = p.via2(dst, s, v, f.nVia, r.From)
	return s.finish(dst)
}

// AppendH2Response appends the field list sent to an HTTP/2 client for r:
// :status, the fields that pass (Content-Length with keepCL, once), Via.
// s may be nil (then it allocates).
func (p *Policy) AppendH2Response(dst []hpack.HeaderField, s *Scratch, r *Response, keepCL bool) []hpack.HeaderField {
	s = s.reset()
	dst = append(dst, hpack.HeaderField{Name: ":status", Value: StatusString(r.Status)})
	v := &r.Fields
	f := response{keepCL: keepCL}
	if v.h1 == nil {
		for i := range v.h2 {
			if hf := &v.h2[i]; f.field(hf.Name, false) {
				dst = append(dst, *hf)
			}
		}
	} else {
		for i := range v.f1 {
			if name, value := v.at(i); f.field(name, v.nominated(i)) {
				dst = s.own(dst, name, value)
			}
		}
	}
	dst = p.via2(dst, s, v, f.nVia, r.From)
	return s.finish(dst)
}

// via2 appends Via: sluice's constant alone, or joined to the received.
func (p *Policy) via2(dst []hpack.HeaderField, s *Scratch, v *View, nVia int, from Version) []hpack.HeaderField {
	if nVia == 0 {
		return append(dst, hpack.HeaderField{Name: "via", Value: p.via[from]})
	}
	dst = s.begin(dst, "via")
	s.b = p.appendVia(s.b, v, nVia, from)
	s.end()
	return dst
}

// AppendH2Trailers appends the trailers of t that may travel (the trailer
// rule) as HTTP/2 fields: an HTTP/2 list's as they are, HTTP/1.1 ones
// lower-cased and copied. s may be nil for an HTTP/2 list.
func AppendH2Trailers(dst []hpack.HeaderField, s *Scratch, t View) []hpack.HeaderField {
	if t.h1 == nil {
		for i := range t.h2 {
			if hf := &t.h2[i]; TrailerAllowed(hf.Name) {
				dst = append(dst, *hf)
			}
		}
		return dst
	}
	s = s.reset()
	for i := range t.f1 {
		if name, value := t.at(i); TrailerAllowed(name) && !t.nominated(i) {
			dst = s.own(dst, name, value)
		}
	}
	return s.finish(dst)
}

// statusStrings holds "100" to "599", so a :status costs no allocation.
var statusStrings = func() (s [600]string) {
	for i := 100; i < 600; i++ {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

// StatusString is code as a :status value.
func StatusString(code int) string {
	if code >= 100 && code < 600 {
		return statusStrings[code]
	}
	return strconv.Itoa(code)
}

// Own is a request sluice makes itself, a health probe: it forwards
// nothing, so it has no forwarding fields and no Via.
type Own struct {
	Method, Path string
	Host         string // Host, or :authority
	Scheme       string // :scheme (HTTP/2)
	UserAgent    string
}

// AppendH1 appends o as an HTTP/1.1 head that asks for the connection's
// close: a probe's connection carries one request.
func (o *Own) AppendH1(dst []byte) []byte {
	dst = h1.AppendRequestLine(dst, o.Method, o.Path, 1)
	dst = h1.AppendHeader(dst, "Host", o.Host)
	dst = h1.AppendHeader(dst, "User-Agent", o.UserAgent)
	dst = append(dst, "Connection: close\r\n"...)
	return h1.AppendEndOfHead(dst)
}

// H2 is o as an HTTP/2 field list.
func (o *Own) H2() []hpack.HeaderField {
	return []hpack.HeaderField{
		{Name: ":method", Value: o.Method},
		{Name: ":scheme", Value: o.Scheme},
		{Name: ":authority", Value: o.Host},
		{Name: ":path", Value: o.Path},
		{Name: "user-agent", Value: o.UserAgent},
	}
}
