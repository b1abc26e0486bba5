package proxy

import (
	"log/slog"
	"net"
	"strconv"

	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// Header translation between HTTP/2 and HTTP/1.1, with the policy of
// headers.go:
//
//   - HTTP/2 → HTTP/1.1 request: the request line from :method and :path,
//     Host from :authority (or the host field; the upstream's with
//     RewriteHost), the regular fields as they are (HTTP/2 names are
//     lower case already), cookie crumbs joined into one Cookie field with
//     "; " (RFC 9113 §8.2.3), te dropped (hop-by-hop), X-Forwarded-* and
//     Via "2.0 <pseudonym>" as for HTTP/1.1. The body is framed with
//     Content-Length when the client gave one or the whole body was in
//     when the request left, else chunked; request trailers go into the
//     last chunk (a Content-Length body drops them).
//   - HTTP/1.1 → HTTP/2 response: :status, field names lower-cased,
//     hop-by-hop fields (and those a Connection option names) dropped,
//     Content-Length kept only for a length-delimited body, Via appended
//     "1.x <pseudonym>"; the trailers of a chunked body become a trailing
//     HEADERS block (framing and routing fields dropped).
//   - HTTP/2 → h2c (h2up.go): fields pass as they are, te: trailers
//     included (gRPC needs it), with X-Forwarded-* and Via; :scheme is
//     http.

// statusStrings holds "100" to "599", so a :status costs no allocation.
var statusStrings = func() (s [600]string) {
	for i := 100; i < 600; i++ {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusString(code int) string {
	if code >= 100 && code < 600 {
		return statusStrings[code]
	}
	return strconv.Itoa(code)
}

func appendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }

// methodHasBody: methods whose request carries content by definition, so
// an empty body still gets "Content-Length: 0" (RFC 9110 §8.6).
func methodHasBody(m string) bool { return m == "POST" || m == "PUT" || m == "PATCH" }

// appendH2RequestHead appends the HTTP/1.1 head sent upstream for an
// HTTP/2 request, and decides the body's framing (st.x.reqChunked).
func (h *HTTP) appendH2RequestHead(dst []byte, st *h2Stream, u *Upstream) []byte {
	method := st.method
	if st.x.upgrade {
		method = "GET" // RFC 8441 §5: the extended CONNECT is a WebSocket handshake
	}
	dst = h1.AppendRequestLine(dst, method, st.path, 1)
	if hh := st.x.rt.HostHeader; hh != "" {
		dst = h1.AppendHeader(dst, "Host", hh)
	} else if h.cfg.RewriteHost || st.authority == "" {
		dst = h1.AppendHeader(dst, "Host", u.host)
	} else {
		dst = h1.AppendHeader(dst, "Host", st.authority)
	}
	xf := !h.cfg.NoXForwarded
	fw := reqFilter{xf: xf, trusted: st.hc.trusted}
	var nCookie int
	for _, f := range st.fields {
		switch f.Name {
		case "host", "content-length", "te", "trailer", "connection", "keep-alive",
			"proxy-connection", "transfer-encoding", "upgrade", "sec-websocket-key":
			continue
		case "cookie":
			nCookie++
			continue
		}
		if !fw.policy(specialName(f.Name)) {
			continue
		}
		dst = h1.AppendHeader(dst, f.Name, f.Value)
	}
	nVia := fw.nVia
	if nCookie > 0 {
		dst = append(dst, "Cookie: "...)
		dst = appendJoinedH2(dst, st.fields, "cookie", "; ")
		dst = append(dst, "\r\n"...)
	}
	x := &st.x
	switch {
	case x.upgrade:
		dst = st.appendWSUpgrade(dst)
	case st.reqEnd && len(st.reqTrail) == 0:
		// The whole body is here (usually in the same read as HEADERS).
		if n := len(st.reqPend); n > 0 || methodHasBody(st.method) {
			dst = h1.AppendContentLength(dst, int64(n))
		}
	case st.reqCL >= 0:
		dst = h1.AppendContentLength(dst, st.reqCL)
	default:
		x.reqChunked = true
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	}
	if xf {
		dst = append(dst, "X-Forwarded-For: "...)
		dst = fw.appendXFF(dst, st.hc.ip, func(d []byte) []byte { return appendJoinedH2(d, st.fields, "x-forwarded-for", ", ") })
		dst = append(dst, "\r\n"...)
		if fw.nXFProto == 0 {
			dst = append(dst, "X-Forwarded-Proto: "...)
			dst = append(dst, st.hc.scheme...)
			dst = append(dst, "\r\n"...)
		}
		if st.authority != "" && fw.nXFHost == 0 {
			dst = h1.AppendHeader(dst, "X-Forwarded-Host", st.authority)
		}
	}
	if len(x.reqID) > 0 {
		dst = h1.AppendHeader(dst, "X-Request-Id", x.reqID)
	}
	dst = append(dst, "Via: "...)
	if nVia > 0 {
		dst = appendJoinedH2(dst, st.fields, "via", ", ")
		dst = append(dst, ", "...)
	}
	dst = append(dst, h.via2...)
	dst = append(dst, "\r\n\r\n"...)
	return dst
}

// appendJoinedH2 appends the non-empty values of the fields named name,
// joined with sep.
func appendJoinedH2(dst []byte, fields []hpack.HeaderField, name, sep string) []byte {
	first := true
	for _, f := range fields {
		if f.Name != name || f.Value == "" {
			continue
		}
		if !first {
			dst = append(dst, sep...)
		}
		first = false
		dst = append(dst, f.Value...)
	}
	return dst
}

// forbiddenTrailer: fields that must not travel as trailers (framing,
// routing) or are hop-by-hop (RFC 9110 §6.5.1).
func forbiddenTrailer(name string) bool {
	switch name {
	case "content-length", "transfer-encoding", "trailer", "host", "te", "connection",
		"keep-alive", "proxy-connection", "upgrade", "content-type", "content-encoding":
		return true
	}
	return len(name) == 0 || name[0] == ':'
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
	hf := hc.h1ToH2Fields(resp, true)
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

// h1ToH2Fields translates an HTTP/1.1 response head into an HTTP/2 field
// list (final: a final response, whose Via is added). The strings share
// one allocation; the slice is hc.hf, valid until the next call.
func (hc *h2Conn) h1ToH2Fields(resp *h1.Response, final bool) []hpack.HeaderField {
	hdr := &resp.Headers
	slow := nominatesOthers(hdr)
	// Content-Length stays for a length-delimited body, and for a response
	// without one (HEAD, 304), where it describes the representation.
	keepCL := resp.Body == h1.BodyLength || resp.Body == h1.BodyNone
	b := hc.tmp[:0]
	// First pass: lower-cased names and values, back to back.
	seenCL := false
	nVia := 0
	type span struct{ name, end int }
	var spans [64]span
	sp := spans[:0]
	for _, f := range hdr.Fields() {
		if h1.IsHopByHopName(f.Name) || slow && hdr.IsHopByHop(f.Name) {
			continue
		}
		switch specialName(f.Name) {
		case spContentLength:
			if seenCL || !keepCL {
				continue
			}
			seenCL = true
		case spVia:
			nVia++
			continue
		}
		start := len(b)
		for _, c := range f.Name {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b = append(b, c)
		}
		nameEnd := len(b)
		b = append(b, f.Value...)
		sp = append(sp, span{name: nameEnd - start, end: len(b)})
	}
	viaStart := len(b)
	if final {
		if nVia > 0 {
			b = appendJoined(b, hdr, spVia, slow)
			b = append(b, ", "...)
		}
		b = append(b, hc.h.viaValue[min(resp.Minor, 1)]...)
	}
	all := string(b)
	hc.tmp = b[:0]
	hf := append(hc.hf[:0], hpack.HeaderField{Name: ":status", Value: statusString(resp.Status)})
	at := 0
	for _, s := range sp {
		hf = append(hf, hpack.HeaderField{Name: all[at : at+s.name], Value: all[at+s.name : s.end]})
		at = s.end
	}
	if final {
		hf = append(hf, hpack.HeaderField{Name: "via", Value: all[viaStart:]})
	}
	hc.hf = hf
	return hf
}

// h1TrailersToH2 translates the trailers of a chunked response.
func (hc *h2Conn) h1TrailersToH2(t *h1.Headers) []hpack.HeaderField {
	hc.hf, hc.tmp = appendH2Trailers(hc.hf[:0], t, hc.tmp)
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

// account records a finished stream in the metrics and the access log.
func (st *h2Stream) account() {
	x := &st.x
	m := st.hc.h.m
	m.request(x.rt, x.u, protoH2, x.status, engine.Dur(st.hc.ls.l.Now()-x.start).Seconds())
	if !st.hc.h.accessOn() {
		return
	}
	var upHead int64
	if x.headAt != 0 && x.sentAt != 0 {
		upHead = x.headAt - x.sentAt
	}
	attrs := [...]slog.Attr{
		slog.String("conn", st.hc.c.String()),
		slog.Uint64("stream", uint64(st.id)),
		slog.String("client", st.hc.ip),
		slog.String("method", string(x.logb[:x.mEnd])),
		slog.String("host", string(x.logb[x.tEnd:x.hEnd])),
		slog.String("path", string(x.logb[x.mEnd:x.tEnd])),
		slog.String("proto", "HTTP/2.0"),
		slog.Int("status", x.status),
		slog.Int64("bytes_in", x.bytesIn),
		slog.Int64("bytes_out", x.bytesOut),
		slog.Duration("duration", engine.Dur(engine.Now()-x.start)),
		slog.Duration("upstream_header", engine.Dur(upHead)),
		slog.String("user_agent", userAgent(x)),
		slog.String("tls_version", st.hc.tlsVer),
		slog.String("alpn", st.hc.alpn),
		slog.String("request_id", string(x.reqID)),
		slog.String("route", routeName(x.rt)),
		slog.String("upstream", x.upAddr),
		slog.Int("attempts", x.attempts),
		slog.String("end", x.end.String()),
	}
	st.hc.h.logAccess(attrs[:])
}
