package proxy

import (
	"strconv"

	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
	"github.com/sluice-proxy/sluice/proxy/header"
)

// The header policy is package header's, the same for every protocol
// pair; this file and h2headers.go adapt the HTTP/1.1 and HTTP/2 sides to
// it: they name the message's fields (header.View) and say how sluice
// frames the body (header.Framing).

// eqFold compares b with the lower-case ASCII string s, ignoring case.
func eqFold(b []byte, s string) bool { return header.EqualFold(b, s) }

// reqHeadInfo is what building an upstream request head needs besides
// the parsed request.
type reqHeadInfo struct {
	target   []byte // origin-form target
	host     []byte // the host the client asked for (may be empty)
	upstream *Upstream
	clientIP string
	scheme   string
	trusted  bool            // the client is a trusted proxy
	hostHdr  string          // the route's Host override, if any
	reqID    []byte          // X-Request-Id
	scratch  *header.Scratch // for HTTP/2 field lists: the loop's
}

// h1Request is the neutral view of an HTTP/1.1 client's request. Its
// strings alias req and in (valid while they are).
func h1Request(req *h1.Request, in *reqHeadInfo) header.Request {
	return header.Request{
		Method: header.Alias(req.Method), Target: header.Alias(in.target), Authority: header.Alias(in.host),
		From: header.H1Version(req.Minor), Fields: header.H1(&req.Headers),
		ClientIP: in.clientIP, Scheme: in.scheme, Trusted: in.trusted, RequestID: header.Alias(in.reqID),
		HostOverride: in.hostHdr, UpstreamHost: in.upstream.Host(), UpstreamScheme: in.upstream.Scheme(),
	}
}

// appendRequestHead appends the head sent to an HTTP/1.1 upstream for
// req: its body keeps its framing (a length, or chunks re-sent as such).
func (h *HTTP) appendRequestHead(dst []byte, req *h1.Request, in *reqHeadInfo) []byte {
	r := h1Request(req, in)
	return h.hdr.AppendH1Request(dst, &r, &header.Framing{
		KeepContentLength: req.Body == h1.BodyLength, Chunked: req.Body == h1.BodyChunked, Upgrade: req.Upgrade,
	})
}

// appendH2CRequestFields appends the fields of the h2c request for an
// HTTP/1.1 client's req; the body is sent as DATA, keeping only a length
// it came with. Names and values share one allocation.
func (h *HTTP) appendH2CRequestFields(dst []hpack.HeaderField, req *h1.Request, in *reqHeadInfo) []hpack.HeaderField {
	r := h1Request(req, in)
	return h.hdr.AppendH2Request(dst, in.scratch, &r, req.Body == h1.BodyLength)
}

// respHeadOpts says how the client connection frames the response.
type respHeadOpts struct {
	chunked   bool // sluice chunks the body
	close     bool // Connection: close
	keepAlive bool // Connection: keep-alive (HTTP/1.0 client that keeps the connection)
	upgrade   bool // 101: Connection: upgrade and the Upgrade field(s)
}

// framing is o as the header encoder takes it; the body's own length
// stays unless sluice chunks it.
func (o respHeadOpts) framing() header.Framing {
	return header.Framing{KeepContentLength: !o.chunked, Chunked: o.chunked, Close: o.close, KeepAlive: o.keepAlive, Upgrade: o.upgrade}
}

// appendResponseHead appends the head sent to an HTTP/1.1 client for an
// HTTP/1.1 upstream's resp.
func (h *HTTP) appendResponseHead(dst []byte, resp *h1.Response, o respHeadOpts) []byte {
	r := header.Response{Status: resp.Status, Reason: header.Alias(resp.Reason), From: header.H1Version(resp.Minor), Fields: header.H1(&resp.Headers)}
	fr := o.framing()
	return h.hdr.AppendH1Response(dst, &r, &fr)
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
