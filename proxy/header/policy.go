package header

import "unsafe"

// The policy, for every protocol pair:
//
//   - Hop-by-hop fields are dropped: Connection, Keep-Alive,
//     Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, and every
//     field an HTTP/1.1 Connection option names (RFC 9110 §7.6.1). Host and
//     Content-Length are never dropped on a Connection option's say. The
//     one exception is "te: trailers" from an HTTP/2 client to an HTTP/2
//     upstream (RFC 9113 §8.2.2 allows it; gRPC needs it).
//   - Pseudo-header fields (":...") are never copied as fields: each
//     encoder writes its own start line or pseudo-headers.
//   - Content-Length passes once (RFC 9110 §8.6), and only where the
//     message keeps the framing it came with; otherwise the adapter states
//     the framing and the encoder writes it.
//   - Via gets "<version> <pseudonym>" appended, the version being the one
//     the message was received with (RFC 9110 §7.6.3), on every message
//     forwarded, interim responses included.
//
// Requests only:
//
//   - Host (HTTP/2: :authority) is the route's HostHeader if set, else the
//     upstream's host[:port] with RewriteHost or when the client named
//     none, else the client's. An HTTP/1.1 head sends it first.
//   - Unless NoXForwarded, by whether the client's address is trusted:
//     trusted: X-Forwarded-For is the client's list with the client's
//     address appended (one field); X-Forwarded-Proto, X-Forwarded-Host
//     and Forwarded pass as sent (sluice's own X-Forwarded-Proto and -Host
//     only when absent);
//     not trusted (the default: anyone): X-Forwarded-For is the client's
//     address alone, X-Forwarded-Proto is the client's scheme,
//     X-Forwarded-Host the host the client asked for, and Forwarded is
//     dropped: whatever the client sent could lie.
//   - X-Request-Id is the caller's (the client's when usable, else a new
//     one), always one field.
//   - HTTP/2 cookie crumbs become one Cookie field joined by "; " toward
//     HTTP/1.1 (RFC 9113 §8.2.3).
//   - An HTTP/2 client's sec-websocket-key never reaches an HTTP/1.1
//     upstream: sluice makes the RFC 6455 handshake itself (RFC 8441 §5).
//
// Trailers: fields that frame, route or describe the content, and the
// hop-by-hop ones, never travel as trailers (RFC 9110 §6.5.1); neither do
// pseudo-header fields (RFC 9113 §8.1) or values HTTP/1.1 cannot carry.

// Version is the protocol a message was received with, as Via names it.
type Version uint8

const (
	HTTP10 Version = iota
	HTTP11
	HTTP2
)

// H1Version is the Version of an HTTP/1.x message of minor version minor.
func H1Version(minor int) Version {
	if minor >= 1 {
		return HTTP11
	}
	return HTTP10
}

// Kind classifies a field name for the policy.
type Kind uint8

const (
	Regular Kind = iota
	Pseudo
	HopByHop // connection, keep-alive, proxy-connection, trailer, transfer-encoding
	TE
	Upgrade
	Host
	ContentLength
	Via
	XForwardedFor
	XForwardedProto
	XForwardedHost
	Forwarded
	RequestID
	Cookie
	WebSocketKey
	ContentType
	ContentEncoding
)

// hop reports the kinds that describe one connection, never the message.
func (k Kind) hop() bool { return k == HopByHop || k == TE || k == Upgrade }

// KindOf classifies name, ignoring ASCII case.
func KindOf[T ~string | ~[]byte](name T) Kind {
	if len(name) > 0 && name[0] == ':' {
		return Pseudo
	}
	// Dispatch on length so most names cost one comparison at most.
	switch len(name) {
	case 2:
		if EqualFold(name, "te") {
			return TE
		}
	case 3:
		if EqualFold(name, "via") {
			return Via
		}
	case 4:
		if EqualFold(name, "host") {
			return Host
		}
	case 6:
		if EqualFold(name, "cookie") {
			return Cookie
		}
	case 7:
		if EqualFold(name, "upgrade") {
			return Upgrade
		}
		if EqualFold(name, "trailer") {
			return HopByHop
		}
	case 9:
		if EqualFold(name, "forwarded") {
			return Forwarded
		}
	case 10:
		if EqualFold(name, "connection") || EqualFold(name, "keep-alive") {
			return HopByHop
		}
	case 12:
		if EqualFold(name, "x-request-id") {
			return RequestID
		}
		if EqualFold(name, "content-type") {
			return ContentType
		}
	case 14:
		if EqualFold(name, "content-length") {
			return ContentLength
		}
	case 15:
		if EqualFold(name, "x-forwarded-for") {
			return XForwardedFor
		}
	case 16:
		if EqualFold(name, "proxy-connection") {
			return HopByHop
		}
		if EqualFold(name, "x-forwarded-host") {
			return XForwardedHost
		}
		if EqualFold(name, "content-encoding") {
			return ContentEncoding
		}
	case 17:
		if EqualFold(name, "transfer-encoding") {
			return HopByHop
		}
		if EqualFold(name, "x-forwarded-proto") {
			return XForwardedProto
		}
		if EqualFold(name, "sec-websocket-key") {
			return WebSocketKey
		}
	}
	return Regular
}

// EqualFold compares b with the lower-case ASCII string s, ignoring case.
func EqualFold[T ~string | ~[]byte](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// TrailerAllowed reports whether a field named name may travel as a
// trailer (the trailer rule above).
func TrailerAllowed[T ~string | ~[]byte](name T) bool {
	if len(name) == 0 {
		return false
	}
	switch KindOf(name) {
	case Regular, Via, XForwardedFor, XForwardedProto, XForwardedHost, Forwarded, RequestID, Cookie, WebSocketKey:
		return true
	}
	return false
}

// Policy is one configuration's header policy. Immutable; share it.
type Policy struct {
	rewriteHost  bool
	noXForwarded bool
	via          [3]string // by Version: "1.0 p", "1.1 p", "2.0 p"
}

// NewPolicy makes the policy for the Via pseudonym (a valid field value),
// RewriteHost and NoXForwarded.
func NewPolicy(pseudonym string, rewriteHost, noXForwarded bool) *Policy {
	return &Policy{
		rewriteHost:  rewriteHost,
		noXForwarded: noXForwarded,
		via:          [3]string{"1.0 " + pseudonym, "1.1 " + pseudonym, "2.0 " + pseudonym},
	}
}

// Via is the value sluice adds to Via for a message received as v.
func (p *Policy) Via(v Version) string { return p.via[v] }

// Request is what forwarding a request needs besides its fields. From an
// HTTP/1.1 client, Method, Target and Authority may alias the parser's
// buffer (Alias); RequestID always may.
type Request struct {
	Method    string
	Target    string // origin form, or "*"; HTTP/2: :path
	Authority string // the host the client asked for; "" if none
	From      Version
	Fields    View

	ClientIP  string // the client's address, for X-Forwarded-For
	Scheme    string // the client's scheme, for X-Forwarded-Proto
	Trusted   bool   // the client's address is a trusted proxy's
	RequestID string // X-Request-Id; "" for none

	HostOverride   string // the route's HostHeader, or ""
	UpstreamHost   string // the upstream's host[:port]
	UpstreamScheme string // :scheme toward an HTTP/2 upstream
}

// Host is the Host (HTTP/2: :authority) sent upstream for r.
func (p *Policy) Host(r *Request) string {
	switch {
	case r.HostOverride != "":
		return r.HostOverride
	case p.rewriteHost || r.Authority == "":
		return r.UpstreamHost
	}
	return r.Authority
}

// Response is what forwarding a response needs besides its fields.
type Response struct {
	Status int
	Reason string // HTTP/1.1 reason phrase as received; "" for the standard one
	From   Version
	Fields View
}

// forward applies the request rules to the fields of one request, and
// counts what the encoder then appends to or adds.
type forward struct {
	xf, trusted     bool
	cookieJoin      bool // HTTP/2 cookie crumbs are joined into one field
	te, wsKey       bool // te and sec-websocket-key pass
	nXFF, nVia      int
	nXFProto, nXFHo int
	nCookie         int
	seenCL          bool
}

func (p *Policy) forward(r *Request, to Version) forward {
	h2h2 := r.From == HTTP2 && to == HTTP2
	return forward{
		xf:         !p.noXForwarded,
		trusted:    r.Trusted,
		cookieJoin: r.From == HTTP2 && to != HTTP2,
		te:         h2h2,
		wsKey:      r.From != HTTP2 || to == HTTP2,
	}
}

// pass decides whether a request field of kind k passes as sent.
// Content-Length is the encoder's (framing); pseudo-header fields and Host
// its own.
func (f *forward) pass(k Kind) bool {
	switch k {
	case Pseudo, HopByHop, Upgrade, Host, RequestID:
		return false
	case TE:
		return f.te
	case WebSocketKey:
		return f.wsKey
	case Cookie:
		if f.cookieJoin {
			f.nCookie++
			return false
		}
	case Via:
		f.nVia++
		return false
	case XForwardedFor:
		if f.xf {
			f.nXFF++
			return false
		}
	case XForwardedProto:
		if f.xf && !f.trusted {
			return false
		}
		f.nXFProto++
	case XForwardedHost:
		if f.xf && !f.trusted {
			return false
		}
		f.nXFHo++
	case Forwarded:
		return !f.xf || f.trusted
	}
	return true
}

// field decides whether a request field passes as sent; Content-Length
// passes once, with keepCL.
func (f *forward) field(name string, nominated, keepCL bool) bool {
	k := KindOf(name)
	if k == Regular && !nominated {
		return true // most fields, in a few instructions
	}
	if nominated || !f.pass(k) {
		return false
	}
	if k == ContentLength {
		if f.seenCL || !keepCL {
			return false
		}
		f.seenCL = true
	}
	return true
}

// response applies the response rules to the fields of one response:
// pseudo-header and hop-by-hop fields go, Via is counted for the encoder
// to append to, Content-Length passes once, with keepCL.
type response struct {
	keepCL, seenCL bool
	nVia           int
}

func (f *response) field(name string, nominated bool) bool {
	k := KindOf(name)
	if nominated {
		return false
	}
	switch {
	case k == Regular:
		return true
	case k == Via:
		f.nVia++
		return false
	case k == Pseudo || k.hop():
		return false
	case k == ContentLength:
		if f.seenCL || !f.keepCL {
			return false
		}
		f.seenCL = true
	}
	return true
}

// appendXFF appends X-Forwarded-For's value: a trusted client's list then
// the client's address, or the address alone.
func (f *forward) appendXFF(dst []byte, r *Request) []byte {
	if f.trusted && f.nXFF > 0 {
		dst = r.Fields.appendJoined(dst, XForwardedFor, ", ")
		dst = append(dst, ", "...)
	}
	return append(dst, r.ClientIP...)
}

// appendVia appends Via's value: the received ones, then sluice's.
func (p *Policy) appendVia(dst []byte, v *View, nVia int, from Version) []byte {
	if nVia > 0 {
		dst = v.appendJoined(dst, Via, ", ")
		dst = append(dst, ", "...)
	}
	return append(dst, p.via[from]...)
}

// Alias returns b as a string without copying: valid only while b's
// bytes are not modified. For HTTP/1.1 parse results, which live until
// the connection's next message.
func Alias(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// ValidHost reports whether s can be sent as a Host field or :authority
// (RFC 9110 §7.2): a host name or IP literal and an optional port, no
// spaces, no path, at most 255 bytes.
func ValidHost(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}
