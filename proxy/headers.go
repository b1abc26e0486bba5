package proxy

import (
	"strconv"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// Header policy, both directions:
//
//   - Hop-by-hop fields are dropped: Connection, Keep-Alive,
//     Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, and every
//     field a Connection option names (RFC 9110 §7.6.1). Host and
//     Content-Length are never dropped on a Connection option's say.
//   - Repeated identical Content-Length lines are sent once.
//   - Via gets "1.x <pseudonym>" appended (RFC 9110 §7.6.3), x being the
//     version the message was received with.
//   - The framing sluice itself uses is added: Transfer-Encoding: chunked
//     when it chunks, Connection: close when the connection will close,
//     Connection: keep-alive to an HTTP/1.0 client that keeps it, and
//     Connection: upgrade plus the Upgrade field(s) for an upgrade.
//
// Requests only:
//
//   - Host is sent first; it is the client's (for an absolute-form target,
//     the target's authority, RFC 9112 §3.2.2) unless RewriteHost is set or
//     the client sent none (HTTP/1.0), when it is the upstream's host[:port].
//   - The target is sent in origin form (absolute form is reduced to its
//     path and query; "OPTIONS *" stays "*").
//   - Unless NoXForwarded, by whether the client's address is in
//     TrustedProxies (forward.go):
//     trusted: X-Forwarded-For is the client's list with the client's
//     address appended (one field); X-Forwarded-Proto, X-Forwarded-Host
//     and Forwarded are passed on as sent (sluice's own X-Forwarded-Proto
//     and -Host only when absent);
//     not trusted (the default: anyone): X-Forwarded-For is the client's
//     address alone, X-Forwarded-Proto is http or https and
//     X-Forwarded-Host the host the client asked for, and Forwarded is
//     dropped: whatever the client sent could lie.
//   - X-Request-Id is the client's when it sent a usable one (1 to 128
//     visible ASCII characters), else one sluice generates; always one
//     field, written in the access log (request_id).

// special names the proxy rewrites rather than copies.
type special uint8

const (
	spNone special = iota
	spHost
	spContentLength
	spVia
	spXFF
	spXFProto
	spXFHost
	spForwarded
	spRequestID
)

// reqFilter passes the fields of a client request on to an upstream,
// whatever the protocol: hop-by-hop fields (and those Connection names)
// go, Host goes (the caller sends its own), Via and, unless NoXForwarded,
// X-Forwarded-* go but are counted, for the caller to append to or
// replace. The caller applies its own Content-Length rule.
type reqFilter struct {
	hdr               *h1.Headers
	slow, xf          bool // slow: Connection names other fields
	trusted           bool // the client is a trusted proxy: its X-Forwarded-* and Forwarded stand
	nXFF, nVia        int
	nXFProto, nXFHost int // passed on from a trusted client
}

func (r *reqFilter) keep(name []byte) (special, bool) {
	if h1.IsHopByHopName(name) || r.slow && r.hdr.IsHopByHop(name) {
		return spNone, false
	}
	sp := specialName(name)
	return sp, r.policy(sp)
}

// policy decides whether a field of kind sp is passed on as sent, and
// counts what the caller appends to or adds. The same for every protocol
// pair (HTTP/1.1 or HTTP/2 on either side).
func (r *reqFilter) policy(sp special) bool {
	switch sp {
	case spHost, spRequestID:
		return false // the caller sends its own
	case spVia:
		r.nVia++
		return false
	case spXFF:
		if r.xf {
			r.nXFF++
			return false
		}
	case spXFProto:
		if r.xf && !r.trusted {
			return false
		}
		r.nXFProto++
	case spXFHost:
		if r.xf && !r.trusted {
			return false
		}
		r.nXFHost++
	case spForwarded:
		return !r.xf || r.trusted
	}
	return true
}

// appendXFF appends X-Forwarded-For's value: a trusted client's list
// (joined by join) then the client's address, or the address alone.
func (r *reqFilter) appendXFF(dst []byte, clientIP string, join func([]byte) []byte) []byte {
	if r.trusted && r.nXFF > 0 {
		dst = join(dst)
		dst = append(dst, ", "...)
	}
	return append(dst, clientIP...)
}

func specialName[T ~string | ~[]byte](name T) special {
	switch len(name) {
	case 3:
		if eqFold(name, "via") {
			return spVia
		}
	case 4:
		if eqFold(name, "host") {
			return spHost
		}
	case 14:
		if eqFold(name, "content-length") {
			return spContentLength
		}
	case 15:
		if eqFold(name, "x-forwarded-for") {
			return spXFF
		}
	case 9:
		if eqFold(name, "forwarded") {
			return spForwarded
		}
	case 12:
		if eqFold(name, "x-request-id") {
			return spRequestID
		}
	case 16:
		if eqFold(name, "x-forwarded-host") {
			return spXFHost
		}
	case 17:
		if eqFold(name, "x-forwarded-proto") {
			return spXFProto
		}
	}
	return spNone
}

// eqFold compares b with the lower-case ASCII string s, ignoring case.
func eqFold[T ~string | ~[]byte](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// nominatesOthers reports whether a Connection field of h names an option
// that is not itself a fixed hop-by-hop name or "close": only then does
// each field need the slower h.IsHopByHop check.
func nominatesOthers(h *h1.Headers) bool {
	for _, f := range h.Fields() {
		if len(f.Name) != 10 || !eqFold(f.Name, "connection") {
			continue
		}
		v := f.Value
		for len(v) > 0 {
			var el []byte
			el, v = nextElem(v)
			if len(el) > 0 && !h1.IsHopByHopName(el) && !eqFold(el, "close") {
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

// reqHeadInfo is what building an upstream request head needs besides
// the parsed request.
type reqHeadInfo struct {
	target   []byte // origin-form target
	host     []byte // the host the client asked for (may be empty)
	upstream *Upstream
	clientIP string
	scheme   string
	trusted  bool   // the client is a trusted proxy
	hostHdr  string // the route's Host override, if any
	reqID    []byte // X-Request-Id
}

// appendRequestHead appends the head sent to the upstream for req.
func (h *HTTP) appendRequestHead(dst []byte, req *h1.Request, in *reqHeadInfo) []byte {
	dst = h1.AppendRequestLine(dst, req.Method, in.target, 1)
	if in.hostHdr != "" {
		dst = h1.AppendHeader(dst, "Host", in.hostHdr)
	} else if h.cfg.RewriteHost || len(in.host) == 0 {
		dst = h1.AppendHeader(dst, "Host", in.upstream.host)
	} else {
		dst = h1.AppendHeader(dst, "Host", in.host)
	}
	xf := !h.cfg.NoXForwarded
	hdr := &req.Headers
	fw := reqFilter{hdr: hdr, slow: nominatesOthers(hdr), xf: xf, trusted: in.trusted}
	seenCL := false
	for _, f := range hdr.Fields() {
		sp, ok := fw.keep(f.Name)
		if !ok || sp == spContentLength && seenCL {
			continue
		}
		seenCL = seenCL || sp == spContentLength
		dst = h1.AppendHeader(dst, f.Name, f.Value)
	}
	slow, nVia := fw.slow, fw.nVia
	if req.Body == h1.BodyChunked {
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	}
	if req.Upgrade {
		dst = append(dst, "Connection: upgrade\r\n"...)
		for _, f := range hdr.Fields() {
			if len(f.Name) == 7 && eqFold(f.Name, "upgrade") {
				dst = h1.AppendHeader(dst, "Upgrade", f.Value)
			}
		}
	}
	if xf {
		dst = append(dst, "X-Forwarded-For: "...)
		dst = fw.appendXFF(dst, in.clientIP, func(b []byte) []byte { return appendJoined(b, hdr, spXFF, slow) })
		dst = append(dst, "\r\n"...)
		if fw.nXFProto == 0 {
			dst = append(dst, "X-Forwarded-Proto: "...)
			dst = append(dst, in.scheme...)
			dst = append(dst, "\r\n"...)
		}
		if len(in.host) > 0 && fw.nXFHost == 0 {
			dst = h1.AppendHeader(dst, "X-Forwarded-Host", in.host)
		}
	}
	if len(in.reqID) > 0 {
		dst = h1.AppendHeader(dst, "X-Request-Id", in.reqID)
	}
	dst = append(dst, "Via: "...)
	if nVia > 0 {
		dst = appendJoined(dst, hdr, spVia, slow)
		dst = append(dst, ", "...)
	}
	dst = append(dst, h.viaValue[min(req.Minor, 1)]...)
	dst = append(dst, "\r\n\r\n"...)
	return dst
}

// appendJoined appends the values of every field of kind sp in h, joined
// with ", " (RFC 9110 §5.3: the same as repeated field lines).
func appendJoined(dst []byte, h *h1.Headers, sp special, slow bool) []byte {
	first := true
	for _, f := range h.Fields() {
		if specialName(f.Name) != sp || slow && h.IsHopByHop(f.Name) || len(f.Value) == 0 {
			continue
		}
		if !first {
			dst = append(dst, ", "...)
		}
		first = false
		dst = append(dst, f.Value...)
	}
	return dst
}

// respHeadOpts says how the client connection frames the response.
type respHeadOpts struct {
	chunked   bool // sluice chunks the body
	close     bool // Connection: close
	keepAlive bool // Connection: keep-alive (HTTP/1.0 client that keeps the connection)
	upgrade   bool // 101: Connection: upgrade and the Upgrade field(s)
}

// appendResponseHead appends the head sent to the client for resp. The
// status line is HTTP/1.1 whatever the client spoke (RFC 9110 §6.2: a
// server sends its highest conformant version).
func (h *HTTP) appendResponseHead(dst []byte, resp *h1.Response, o respHeadOpts) []byte {
	reason := resp.Reason
	if len(reason) == 0 {
		dst = h1.AppendStatusLine(dst, 1, resp.Status, h1.StatusText(resp.Status))
	} else {
		dst = h1.AppendStatusLine(dst, 1, resp.Status, reason)
	}
	hdr := &resp.Headers
	slow := nominatesOthers(hdr)
	seenCL := false
	nVia := 0
	for _, f := range hdr.Fields() {
		if h1.IsHopByHopName(f.Name) || slow && hdr.IsHopByHop(f.Name) {
			continue
		}
		switch specialName(f.Name) {
		case spContentLength:
			if seenCL || o.chunked {
				continue
			}
			seenCL = true
		case spVia:
			nVia++
			continue
		}
		dst = h1.AppendHeader(dst, f.Name, f.Value)
	}
	switch {
	case o.upgrade:
		dst = append(dst, "Connection: upgrade\r\n"...)
		for _, f := range hdr.Fields() {
			if len(f.Name) == 7 && eqFold(f.Name, "upgrade") {
				dst = h1.AppendHeader(dst, "Upgrade", f.Value)
			}
		}
	case o.close:
		dst = append(dst, "Connection: close\r\n"...)
	case o.keepAlive:
		dst = append(dst, "Connection: keep-alive\r\n"...)
	}
	if o.chunked {
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	}
	dst = append(dst, "Via: "...)
	if nVia > 0 {
		dst = appendJoined(dst, hdr, spVia, slow)
		dst = append(dst, ", "...)
	}
	dst = append(dst, h.viaValue[min(resp.Minor, 1)]...)
	dst = append(dst, "\r\n\r\n"...)
	return dst
}

// appendErrorResponse appends a complete response sluice makes itself: a
// short text body naming the status, and Connection: close when the
// connection will close. A response to HEAD gets the head only.
func appendErrorResponse(dst []byte, code int, closeConn, head bool) []byte {
	text := h1.StatusText(code)
	dst = h1.AppendStatusLine(dst, 1, code, text)
	dst = append(dst, "Content-Type: text/plain; charset=utf-8\r\n"...)
	n := 3 + 1 + len(text) + 1
	dst = h1.AppendContentLength(dst, int64(n))
	if closeConn {
		dst = append(dst, "Connection: close\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	if !head {
		dst = strconv.AppendInt(dst, int64(code), 10)
		dst = append(dst, ' ')
		dst = append(dst, text...)
		dst = append(dst, '\n')
	}
	return dst
}

// originForm reduces an absolute-form target to the path and query it
// names. Asterisk and origin forms are returned as they are. The path
// "/" is supplied when the authority is followed directly by "?" or by
// nothing; tmp holds the result then.
func originForm(target []byte, form h1.TargetForm, tmp []byte) []byte {
	if form != h1.AbsoluteForm {
		return target
	}
	i := 0
	for i+2 < len(target) && !(target[i] == ':' && target[i+1] == '/' && target[i+2] == '/') {
		i++
	}
	i += 3
	for i < len(target) && target[i] != '/' && target[i] != '?' {
		i++
	}
	if i < len(target) && target[i] == '/' {
		return target[i:]
	}
	tmp = append(tmp[:0], '/')
	return append(tmp, target[min(i, len(target)):]...)
}
