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

// h2w writes one HTTP/2 field list: fields whose strings are immutable
// are appended as they are, the others are copied into s.b and become
// one string at the end.
type h2w struct {
	dst   []hpack.HeaderField
	s     *Scratch
	start int
}

// newH2W starts a list in dst; s nil: scratch is allocated if needed.
func newH2W(dst []hpack.HeaderField, s *Scratch) h2w {
	if s != nil {
		s.b, s.sp = s.b[:0], s.sp[:0]
	}
	return h2w{dst: dst, s: s}
}

// ref appends a field whose strings outlive the list.
func (w *h2w) ref(name, value string) {
	w.dst = append(w.dst, hpack.HeaderField{Name: name, Value: value})
}

// begin starts a copied field: its name (lower-cased) is copied now, its
// value is what the caller appends to w.s.b before end.
func (w *h2w) begin(name string) {
	if w.s == nil {
		w.s = new(Scratch)
	}
	w.start = len(w.s.b)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		w.s.b = append(w.s.b, c)
	}
	w.s.sp = append(w.s.sp, span{i: len(w.dst), name: len(w.s.b) - w.start})
	w.dst = append(w.dst, hpack.HeaderField{})
}

func (w *h2w) end() { w.s.sp[len(w.s.sp)-1].end = len(w.s.b) }

// own appends a copied field.
func (w *h2w) own(name, value string) {
	w.begin(name)
	w.s.b = append(w.s.b, value...)
	w.end()
}

// pass appends the i-th field of v: an HTTP/2 list's as it is (its
// Sensitive mark kept), an HTTP/1.1 one lower-cased and copied.
func (w *h2w) pass(v *View, i int, name, value string) {
	if v.h1 == nil {
		w.dst = append(w.dst, v.h2[i])
	} else {
		w.own(name, value)
	}
}

// field appends name: value, copied unless immutable.
func (w *h2w) field(name, value string, immutable bool) {
	if immutable {
		w.ref(name, value)
	} else {
		w.own(name, value)
	}
}

// finish makes the copied fields' strings, one allocation for all.
func (w *h2w) finish() []hpack.HeaderField {
	if w.s == nil || len(w.s.sp) == 0 {
		return w.dst
	}
	all := string(w.s.b)
	at := 0
	for _, sp := range w.s.sp {
		w.dst[sp.i] = hpack.HeaderField{Name: all[at : at+sp.name], Value: all[at+sp.name : sp.end]}
		at = sp.end
	}
	w.s.b = w.s.b[:0]
	return w.dst
}

// AppendH2Request appends the field list sent to an HTTP/2 upstream for
// r: pseudo-header fields, the fields that pass (Content-Length with
// keepCL, once), the forwarding fields.
func (p *Policy) AppendH2Request(dst []hpack.HeaderField, s *Scratch, r *Request, keepCL bool) []hpack.HeaderField {
	w := newH2W(dst, s)
	h2in := r.From == HTTP2 // the request's strings are the HPACK decoder's
	w.field(":method", r.Method, h2in)
	w.ref(":scheme", r.UpstreamScheme)
	host := p.Host(r)
	w.field(":authority", host, h2in || host != r.Authority)
	w.field(":path", r.Target, h2in)
	f := p.forward(r, HTTP2)
	v := &r.Fields
	for i := range v.Len() {
		if name, value, nominated := v.field(i); f.field(name, nominated, keepCL) {
			w.pass(v, i, name, value)
		}
	}
	if f.xf {
		w.begin("x-forwarded-for")
		w.s.b = f.appendXFF(w.s.b, r)
		w.end()
		if f.nXFProto == 0 {
			w.ref("x-forwarded-proto", r.Scheme)
		}
		if r.Authority != "" && f.nXFHo == 0 {
			w.field("x-forwarded-host", r.Authority, h2in)
		}
	}
	if r.RequestID != "" {
		w.own("x-request-id", r.RequestID)
	}
	p.via2(&w, v, f.nVia, r.From)
	return w.finish()
}

// AppendH2Response appends the field list sent to an HTTP/2 client for r:
// :status, the fields that pass (Content-Length with keepCL, once), Via.
func (p *Policy) AppendH2Response(dst []hpack.HeaderField, s *Scratch, r *Response, keepCL bool) []hpack.HeaderField {
	w := newH2W(dst, s)
	w.ref(":status", StatusString(r.Status))
	v := &r.Fields
	f := response{keepCL: keepCL}
	for i := range v.Len() {
		if name, value, nominated := v.field(i); f.field(name, nominated) {
			w.pass(v, i, name, value)
		}
	}
	p.via2(&w, v, f.nVia, r.From)
	return w.finish()
}

// via2 appends Via: sluice's constant alone, or joined to the received.
func (p *Policy) via2(w *h2w, v *View, nVia int, from Version) {
	if nVia == 0 {
		w.ref("via", p.via[from])
		return
	}
	w.begin("via")
	w.s.b = p.appendVia(w.s.b, v, nVia, from)
	w.end()
}

// AppendH2Trailers appends the trailers of t that may travel (the trailer
// rule) as HTTP/2 fields: an HTTP/2 list's as they are, HTTP/1.1 ones
// lower-cased and copied.
func AppendH2Trailers(dst []hpack.HeaderField, s *Scratch, t View) []hpack.HeaderField {
	w := newH2W(dst, s)
	for i := range t.Len() {
		name, value, nominated := t.field(i)
		if !nominated && TrailerAllowed(name) {
			w.pass(&t, i, name, value)
		}
	}
	return w.finish()
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
