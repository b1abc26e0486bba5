package proxy

import (
	"net"
	"strconv"

	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h1"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
	"github.com/sluice-proxy/sluice/proxy/header"
)

// The HTTP/2 side of the header policy (package header): an HTTP/2
// request to an HTTP/1.1 upstream is framed with Content-Length when the
// client gave one or the whole body was in when the request left, else
// chunked (its trailers go into the last chunk; a Content-Length body
// drops them); an extended CONNECT becomes the RFC 6455 handshake. An
// HTTP/1.1 response keeps its Content-Length only for a length-delimited
// body (or none: HEAD, 304); its chunked trailers become a trailing
// HEADERS block.

func appendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }

// methodHasBody: methods whose request carries content by definition, so
// an empty body still gets "Content-Length: 0" (RFC 9110 §8.6).
func methodHasBody(m string) bool { return m == "POST" || m == "PUT" || m == "PATCH" }

// headerRequest is the neutral view of the stream's request toward u.
func (st *h2Stream) headerRequest(u *Upstream) header.Request {
	hc := st.hc
	return header.Request{
		Method: st.method, Target: st.path, Authority: st.authority, From: header.HTTP2, Fields: header.H2(st.fields),
		ClientIP: hc.ip, Scheme: hc.scheme, Trusted: hc.trusted, RequestID: header.Alias(st.x.reqID),
		HostOverride: st.x.rt.HostHeader, UpstreamHost: u.Host(), UpstreamScheme: u.Scheme(),
	}
}

// appendH2RequestHead appends the HTTP/1.1 head sent upstream for an
// HTTP/2 request, and decides the body's framing (st.x.reqChunked).
func (h *HTTP) appendH2RequestHead(dst []byte, st *h2Stream, u *Upstream) []byte {
	r := st.headerRequest(u)
	x := &st.x
	var fr header.Framing
	switch {
	case x.upgrade:
		r.Method = "GET" // RFC 8441 §5: the extended CONNECT is a WebSocket handshake
		st.wsKey = newWSKey()
		fr.WebSocketKey = st.wsKey
	case st.reqEnd && len(st.reqTrail) == 0:
		// The whole body is here (usually in the same read as HEADERS).
		if n := len(st.reqPend); n > 0 || methodHasBody(st.method) {
			fr.SetLength, fr.Length = true, int64(n)
		}
	case st.reqCL >= 0:
		fr.SetLength, fr.Length = true, st.reqCL
	default:
		x.reqChunked = true
		fr.Chunked = true
	}
	return h.hdr.AppendH1Request(dst, &r, &fr)
}

// finalFields translates a final response head, reusing the previous
// translation on this connection when the upstream sent the very same head
// bytes with the same body framing: a backend answering the same way each
// time (all but Date, once a second) skips the translation. The list is
// owned by hc until the next final head.
func (hc *h2Conn) finalFields(resp *h1.Response, raw []byte) []hpack.HeaderField {
	if hc.lastOK && resp.Body == hc.lastBody && string(raw) == string(hc.lastRaw) {
		return hc.lastHF
	}
	hf := hc.h1ToH2Fields(resp)
	hc.lastOK = len(raw) > 0 && len(raw) <= maxCachedHead
	if hc.lastOK {
		hc.lastRaw = append(hc.lastRaw[:0], raw...)
		hc.lastBody = resp.Body
		hc.lastHF = append(hc.lastHF[:0], hf...) // the strings are hf's own allocation
	}
	return hf
}

// maxCachedHead bounds the response head finalFields remembers.
const maxCachedHead = 2 << 10

// h1ToH2Fields translates an HTTP/1.1 response head (final or interim)
// into an HTTP/2 field list. The strings share one allocation; the slice
// is hc.hf, valid until the next call.
func (hc *h2Conn) h1ToH2Fields(resp *h1.Response) []hpack.HeaderField {
	r := header.Response{Status: resp.Status, From: header.H1Version(resp.Minor), Fields: header.H1(&resp.Headers)}
	// Content-Length stays for a length-delimited body, and for a response
	// without one (HEAD, 304), where it describes the representation.
	keepCL := resp.Body == h1.BodyLength || resp.Body == h1.BodyNone
	hc.hf = hc.h.hdr.AppendH2Response(hc.hf[:0], &hc.hs, &r, keepCL)
	return hc.hf
}

// h2ToH2Fields passes an h2c response head (final or interim) on. The
// slice is hc.hf, valid until the next call.
func (hc *h2Conn) h2ToH2Fields(hd *h2.Headers) []hpack.HeaderField {
	r := header.Response{Status: hd.Status, From: header.HTTP2, Fields: header.H2(hd.Fields)}
	hc.hf = hc.h.hdr.AppendH2Response(hc.hf[:0], &hc.hs, &r, true)
	return hc.hf
}

// h1TrailersToH2 translates the trailers of a chunked response.
func (hc *h2Conn) h1TrailersToH2(t *h1.Headers) []hpack.HeaderField {
	hc.hf = header.AppendH2Trailers(hc.hf[:0], &hc.hs, header.H1(t))
	return hc.hf
}

// validH2Target: what an HTTP/1.1 request line can carry: "*", or a path
// of visible ASCII without "#".
func validH2Target(p string) bool {
	if p == "*" {
		return true
	}
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// validH2Authority: host[:port] characters of RFC 3986 (reg-name,
// IP-literal, port); empty is allowed (Host then comes from the upstream).
func validH2Authority(a string) bool {
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '!', c == '$', c == '&', c == '\'',
			c == '(', c == ')', c == '*', c == '+', c == ',', c == ';', c == '=', c == ':',
			c == '[', c == ']', c == '%':
		default:
			return false
		}
	}
	return true
}

// validH2Values: HTTP/2 allows field values HTTP/1.1 does not (controls
// other than NUL, CR, LF); they are refused rather than forwarded.
func validH2Values(fields []hpack.HeaderField) bool {
	for _, f := range fields {
		if !h1.ValidFieldValue(f.Value) {
			return false
		}
	}
	return true
}

// remoteIP is a connection's peer address without the port.
func remoteIP(c *engine.Conn) string {
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.IP.String()
	case nil:
	default:
		if host, _, err := net.SplitHostPort(a.String()); err == nil {
			return host
		}
	}
	return ""
}
