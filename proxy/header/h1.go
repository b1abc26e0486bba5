package header

import "github.com/sluice-proxy/sluice/httpcodec/h1"

// Framing is how the adapter frames the message it sends in HTTP/1.1:
// the fields sluice adds for it after the forwarded ones.
type Framing struct {
	// KeepContentLength passes the message's own Content-Length (once):
	// the body keeps the length it came with.
	KeepContentLength bool
	// SetLength sends Content-Length: Length, sluice's own.
	SetLength bool
	Length    int64
	Chunked   bool // Transfer-Encoding: chunked
	Close     bool // Connection: close
	KeepAlive bool // Connection: keep-alive (an HTTP/1.0 client's connection stays)
	// Upgrade sends Connection: upgrade and the message's Upgrade fields.
	Upgrade bool
	// WebSocketKey, when set, makes a request the RFC 6455 handshake of
	// an RFC 8441 extended CONNECT: Connection: Upgrade, Upgrade:
	// websocket and this Sec-WebSocket-Key.
	WebSocketKey string
}

// AppendH1Request appends the HTTP/1.1 head sent upstream for r: request
// line, Host, the fields that pass, the framing, the forwarding fields.
func (p *Policy) AppendH1Request(dst []byte, r *Request, fr *Framing) []byte {
	dst = h1.AppendRequestLine(dst, r.Method, r.Target, 1)
	dst = h1.AppendHeader(dst, "Host", p.Host(r))
	f := p.forward(r, HTTP11)
	v := &r.Fields
	for i := range v.Len() {
		if name, value := v.at(i); f.field(name, v.nominated(i), fr.KeepContentLength) {
			dst = h1.AppendHeader(dst, name, value)
		}
	}
	if f.nCookie > 0 {
		dst = append(dst, "Cookie: "...)
		dst = v.appendJoined(dst, Cookie, "; ")
		dst = append(dst, "\r\n"...)
	}
	dst = appendFraming(dst, v, fr)
	if f.xf {
		dst = append(dst, "X-Forwarded-For: "...)
		dst = f.appendXFF(dst, r)
		dst = append(dst, "\r\n"...)
		if f.nXFProto == 0 {
			dst = h1.AppendHeader(dst, "X-Forwarded-Proto", r.Scheme)
		}
		if r.Authority != "" && f.nXFHo == 0 {
			dst = h1.AppendHeader(dst, "X-Forwarded-Host", r.Authority)
		}
	}
	if r.RequestID != "" {
		dst = h1.AppendHeader(dst, "X-Request-Id", r.RequestID)
	}
	dst = append(dst, "Via: "...)
	dst = p.appendVia(dst, v, f.nVia, r.From)
	return append(dst, "\r\n\r\n"...)
}

// AppendH1Response appends the HTTP/1.1 head sent to the client for r.
// The status line is HTTP/1.1 whatever the client spoke (RFC 9110 §6.2: a
// server sends its highest conformant version).
func (p *Policy) AppendH1Response(dst []byte, r *Response, fr *Framing) []byte {
	reason := r.Reason
	if reason == "" {
		reason = h1.StatusText(r.Status)
	}
	dst = h1.AppendStatusLine(dst, 1, r.Status, reason)
	v := &r.Fields
	f := response{keepCL: fr.KeepContentLength}
	for i := range v.Len() {
		if name, value := v.at(i); f.field(name, v.nominated(i)) {
			dst = h1.AppendHeader(dst, name, value)
		}
	}
	dst = appendFraming(dst, v, fr)
	dst = append(dst, "Via: "...)
	dst = p.appendVia(dst, v, f.nVia, r.From)
	return append(dst, "\r\n\r\n"...)
}

// appendFraming appends the fields fr asks for.
func appendFraming(dst []byte, v *View, fr *Framing) []byte {
	if fr.SetLength {
		dst = h1.AppendContentLength(dst, fr.Length)
	}
	switch {
	case fr.WebSocketKey != "":
		dst = append(dst, "Connection: Upgrade\r\nUpgrade: websocket\r\n"...)
		dst = h1.AppendHeader(dst, "Sec-WebSocket-Key", fr.WebSocketKey)
	case fr.Upgrade:
		dst = append(dst, "Connection: upgrade\r\n"...)
		for i := range v.Len() {
			if name, value := v.at(i); KindOf(name) == Upgrade {
				dst = h1.AppendHeader(dst, "Upgrade", value)
			}
		}
	case fr.Close:
		dst = append(dst, "Connection: close\r\n"...)
	case fr.KeepAlive:
		dst = append(dst, "Connection: keep-alive\r\n"...)
	}
	if fr.Chunked {
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	}
	return dst
}

// AppendLastChunk appends the last chunk of a chunked body with the
// trailers of t that may travel (the trailer rule), then the CRLF that
// ends the body.
func AppendLastChunk(dst []byte, t View) []byte {
	dst = append(dst, "0\r\n"...)
	for i := range t.Len() {
		name, value := t.at(i)
		if TrailerAllowed(name) && !t.nominated(i) && h1.ValidFieldValue(value) {
			dst = h1.AppendHeader(dst, name, value)
		}
	}
	return append(dst, "\r\n"...)
}
