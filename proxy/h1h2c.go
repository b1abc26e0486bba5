package proxy

import (
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h1"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
)

// An HTTP/1.1 client's request to an h2c upstream is translated: it
// becomes one stream of a multiplexed h2c connection (h2up.go).
//
//   - Request: :method, :scheme http, :authority from Host (or the
//     absolute-form target; the upstream's with RewriteHost), :path; field
//     names lower-cased; hop-by-hop fields (and Connection options)
//     dropped, te included; X-Forwarded-* and Via "1.x <pseudonym>". The
//     body is decoded from its HTTP/1.1 framing and sent as DATA as it
//     arrives; a chunked body's trailers become a trailing HEADERS block.
//   - Response: the status line with its standard reason phrase, the
//     fields as they come (lower case), Via "2.0 <pseudonym>". The body
//     keeps its content-length when the upstream gave one; otherwise it is
//     chunked for an HTTP/1.1 client (read until close for HTTP/1.0).
//   - Trailers (gRPC's grpc-status, ...) are forwarded in the last chunk
//     when the body is chunked: whenever the upstream sent no
//     content-length, or announced trailers with a trailer field (its
//     content-length is then dropped). A response with a content-length
//     and no trailer field, or to an HTTP/1.0 client, has no place for
//     them in HTTP/1.1: trailers are dropped.
//   - Interim responses: 100 Continue to a client that asked for it, 103
//     and other 1xx to HTTP/1.1 clients, as on the HTTP/1.1 path.
//   - Backpressure: request DATA goes as far as the upstream's windows
//     allow, the rest (at most one read) waits while the client's reads
//     are paused; response DATA is credited upstream only while the
//     client's output is under its high-water mark.
//   - Timeouts: TimerProto of the client connection is the response
//     header timeout, then the read timeout between DATA frames.
//   - Upgrade (WebSocket) to an h2c upstream is not translated (RFC 8441
//     extended CONNECT is not spoken upstream): the request goes without
//     its Upgrade field and gets an ordinary response.

// connectH2C starts an attempt on a stream of an h2c connection to u.
func (cc *clientConn) connectH2C(u *Upstream) {
	x := &cc.x
	x.u = u
	x.upAddr = u.addr
	x.attempts++
	u.inflight.Add(1)
	up := cc.ls.h2Acquire(u)
	if up == nil { // at the upstream's in-use cap, every connection full
		cc.endAttempt(u, resQueueFull)
		cc.respondError(errQueueFullErr)
		return
	}
	x.bodySent = 0
	id, err := up.open(cc, x.upFields, x.reqDone)
	if err != nil {
		cc.endAttempt(u, resBadResponse)
		cc.respondError(&proxyError{kind: errUpBadResponse, err: err})
		return
	}
	x.up, x.upID, x.upOpen = up, id, true
	if x.reqDone {
		x.sentAll = true
	}
	if up.ready() {
		cc.upReady()
	}
}

// upReady: the stream's connection is open; until now the body waited,
// unread, in the engine (readBody), so a failed dial could go elsewhere.
func (cc *clientConn) upReady() {
	x := &cc.x
	if !x.upOpen {
		return
	}
	x.sentAt = engine.Now()
	if x.reqDone || x.expect100 {
		cc.c.SetTimer(engine.TimerProto, cc.x.respHT(cc.h))
	}
	cc.unpause(pauseDial)
}

// sendBodyH2C sends request body data upstream as DATA.
func (cc *clientConn) sendBodyH2C(data []byte) bodyStep {
	x := &cc.x
	w := x.up.writeData(x.upID, data, false)
	x.bodySent += int64(w)
	if cc.state != csBody || !x.upOpen {
		return stepEnded
	}
	if w < len(data) {
		// The upstream's window is full: keep the rest, read no more.
		x.upPend = append(x.upPend[:0], data[w:]...)
		cc.pause(pauseUpstream)
		return stepFull
	}
	return stepOn
}

// bodyDoneH2C: the client's body was read to its end. The request ends
// upstream once the window took the last bytes.
func (cc *clientConn) bodyDoneH2C() {
	x := &cc.x
	x.reqDone = true
	cc.c.ClearTimer(engine.TimerIdle)
	cc.c.ClearTimer(engine.TimerHeader)
	x.body.stop()
	if cc.state == csBody {
		cc.state = csWait
	}
	if t := cc.body.Trailers(); x.reqChunked && t.Len() > 0 {
		x.upFields, _ = appendH2Trailers(x.upFields[:0], t, nil) // the request fields are not needed any more
	} else {
		x.upFields = x.upFields[:0]
	}
	if len(x.upPend) == 0 {
		cc.endRequestH2C()
	}
}

func (cc *clientConn) endRequestH2C() {
	x := &cc.x
	if len(x.upFields) > 0 {
		x.up.writeTrailers(x.upID, x.upFields)
	} else {
		x.up.writeData(x.upID, nil, true)
	}
	x.sentAll = true
	if !x.respStarted {
		cc.c.SetTimer(engine.TimerProto, cc.x.respHT(cc.h))
	}
}

// ---- h2c upstream events (upSink, through sinks.go) ----

// upWindowOpen sends what the window refused before, then reads on.
func (cc *clientConn) upWindowOpen() {
	x := &cc.x
	if !x.upOpen || len(x.upPend) == 0 {
		return
	}
	w := x.up.writeData(x.upID, x.upPend, false)
	x.bodySent += int64(w)
	x.upPend = x.upPend[:copy(x.upPend, x.upPend[w:])]
	if len(x.upPend) > 0 {
		return
	}
	if x.reqDone {
		cc.endRequestH2C()
		return
	}
	cc.unpause(pauseUpstream)
}

// upHeaders turns an h2c response head into an HTTP/1.1 one.
func (cc *clientConn) upHeaders(hd *h2.Headers) {
	x := &cc.x
	if hd.Status < 200 {
		cc.c.SetTimer(engine.TimerProto, cc.x.respHT(cc.h))
		switch {
		case x.minor == 0:
		case hd.Status == 100:
			if x.expect100 && !x.cont100 && !x.reqDone {
				x.cont100 = true
				cc.c.Write(continue100)
			}
		default:
			cc.buf = cc.h.appendH2ResponseHead(cc.buf[:0], hd, respHeadOpts{}, false)
			cc.c.Write(cc.buf)
		}
		return
	}
	now := engine.Now()
	x.headAt = now
	cc.h.m.upHeadDur.Update(engine.Dur(now - x.sentAt).Seconds())
	x.status = hd.Status
	addCL0 := false
	switch {
	case x.mc == h1.MethodHEAD || hd.Status == 204 || hd.Status == 304:
		x.out = outNone
	case x.minor >= 1 && !hd.EndStream && declaresTrailers(hd):
		x.out = outChunked // room for the trailers the upstream announced
	case hd.ContentLength >= 0:
		x.out = outLength
	case hd.EndStream:
		x.out, addCL0 = outLength, true
	case x.minor >= 1:
		x.out = outChunked
	default:
		x.out = outClose
	}
	cc.buf = cc.h.appendH2ResponseHead(cc.buf[:0], hd, cc.headOpts(), addCL0)
	x.respStarted = true
	cc.c.Write(cc.buf)
	if hd.EndStream {
		cc.endResponseH2C(nil)
		return
	}
	cc.c.SetTimer(engine.TimerProto, cc.x.readT(cc.h))
}

// upData forwards response DATA; it is credited upstream at once unless
// the client is over its high-water mark (then on OnWritable).
func (cc *clientConn) upData(data []byte, end bool) {
	x := &cc.x
	if len(data) > 0 && x.out != outNone {
		cc.writeOut(data)
	}
	if cc.c.OverHighWater() {
		x.upUncredit += len(data)
		cc.c.NotifyWritable()
	} else {
		x.up.consumed(x.upID, len(data))
	}
	if end {
		cc.endResponseH2C(nil)
		return
	}
	cc.c.SetTimer(engine.TimerProto, cc.x.readT(cc.h))
}

// upTrailers ends the response; the trailers go into the last chunk.
func (cc *clientConn) upTrailers(fields []hpack.HeaderField) {
	cc.endResponseH2C(fields)
}

// upReset: the upstream stream failed. A refused one is retried when no
// body byte went out (the h2c path keeps no copy of a decoded body).
func (cc *clientConn) upReset(err *proxyError, refused bool) {
	x := &cc.x
	if !x.upOpen {
		return
	}
	x.upOpen = false
	u := x.u
	if refused && !x.respStarted && x.attempts <= x.retries() && x.bodySent == 0 && !x.cont100 && len(x.upPend) == 0 {
		cc.endAttempt(u, resultFor(err.kind))
		u.m.results[resRetried].Inc()
		cc.h.m.retries.Inc()
		if err.kind.connecting() {
			cc.h.failed(u, engine.Now())
			cc.connect(u, nil, nil) // another upstream if there is one
			return
		}
		cc.connectH2C(u)
		return
	}
	cc.h2cFailed(err, true)
}

// h2cFailed ends the attempt with an error: 502/504 before the response
// head, a cut response after.
func (cc *clientConn) h2cFailed(err *proxyError, closed bool) {
	x := &cc.x
	if !closed {
		x.upOpen = false
		x.up.cancel(x.upID)
	}
	u := x.u
	cc.endAttempt(u, resultFor(err.kind))
	if err.kind.upstreamSide() {
		cc.h.failed(u, engine.Now())
	}
	cc.c.ClearTimer(engine.TimerProto)
	if cc.dead || cc.state == csClosing {
		return
	}
	x.end = err.kind
	if x.respStarted {
		x.truncated = true
		cc.finish()
		return
	}
	cc.respondError(err)
}

// endResponseH2C completes the response: the last chunk (with the
// trailers) when sluice chunks, then the exchange ends.
func (cc *clientConn) endResponseH2C(trailers []hpack.HeaderField) {
	x := &cc.x
	cc.c.ClearTimer(engine.TimerProto)
	if x.upOpen {
		x.upOpen = false
		cc.endAttempt(x.u, resOK)
		cc.h.succeeded(x.u)
		x.up.release(x.upID)
	}
	if x.out == outChunked {
		cc.buf = append(cc.buf[:0], "0\r\n"...)
		for _, f := range trailers {
			if !forbiddenTrailer(f.Name) && h1.ValidFieldValue(f.Value) {
				cc.buf = h1.AppendHeader(cc.buf, f.Name, f.Value)
			}
		}
		cc.buf = append(cc.buf, "\r\n"...)
		cc.c.Write(cc.buf)
	}
	x.respDone = true
	cc.finish()
}

// creditH2C credits upstream what the client has now taken.
func (cc *clientConn) creditH2C() {
	x := &cc.x
	if x.upUncredit > 0 && x.up != nil {
		x.up.consumed(x.upID, x.upUncredit)
		x.upUncredit = 0
	}
}

// cancelH2C abandons the upstream stream in flight, if any.
func (cc *clientConn) cancelH2C(result int) {
	x := &cc.x
	if x.upOpen {
		x.upOpen = false
		cc.endAttempt(x.u, result)
		x.up.cancel(x.upID)
	}
	cc.creditH2C()
}

// releaseH2C runs when the exchange ends: nothing may stay open upstream.
func (cc *clientConn) releaseH2C() {
	x := &cc.x
	if x.up == nil {
		return
	}
	cc.cancelH2C(resAborted)
	x.up = nil
}

// appendH2CRequestFields translates an HTTP/1.1 request head into the
// fields of an h2c request. Names and values share one allocation.
func (h *HTTP) appendH2CRequestFields(dst []hpack.HeaderField, req *h1.Request, host, target []byte,
	u *Upstream, clientIP, scheme string, trusted bool, reqID []byte, hostHdr string) []hpack.HeaderField {
	hdr := &req.Headers
	slow := nominatesOthers(hdr)
	xf := !h.cfg.NoXForwarded
	var b []byte
	type span struct{ name, end int }
	var spans [64]span
	sp := spans[:0]
	add := func(name, value []byte, lower bool) {
		start := len(b)
		for _, c := range name {
			if lower && 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b = append(b, c)
		}
		nameEnd := len(b)
		b = append(b, value...)
		sp = append(sp, span{name: nameEnd - start, end: len(b)})
	}
	authority := host
	if hostHdr != "" {
		authority = []byte(hostHdr)
	} else if h.cfg.RewriteHost || len(host) == 0 {
		authority = []byte(u.host)
	}
	add([]byte(":method"), req.Method, false)
	add([]byte(":scheme"), []byte(u.scheme()), false)
	add([]byte(":authority"), authority, false)
	add([]byte(":path"), target, false)
	fw := reqFilter{hdr: hdr, slow: slow, xf: xf, trusted: trusted}
	for _, f := range hdr.Fields() {
		if sp, ok := fw.keep(f.Name); ok && (sp != spContentLength || req.Body == h1.BodyLength) {
			add(f.Name, f.Value, true)
		}
	}
	nVia := fw.nVia
	if xf {
		start := len(b)
		b = append(b, "x-forwarded-for"...)
		nameEnd := len(b)
		b = fw.appendXFF(b, clientIP, func(d []byte) []byte { return appendJoined(d, hdr, spXFF, slow) })
		sp = append(sp, span{name: nameEnd - start, end: len(b)})
		if fw.nXFProto == 0 {
			add([]byte("x-forwarded-proto"), []byte(scheme), false)
		}
		if len(host) > 0 && fw.nXFHost == 0 {
			add([]byte("x-forwarded-host"), host, false)
		}
	}
	if len(reqID) > 0 {
		add([]byte("x-request-id"), reqID, false)
	}
	start := len(b)
	b = append(b, "via"...)
	nameEnd := len(b)
	if nVia > 0 {
		b = appendJoined(b, hdr, spVia, slow)
		b = append(b, ", "...)
	}
	b = append(b, h.viaValue[min(req.Minor, 1)]...)
	sp = append(sp, span{name: nameEnd - start, end: len(b)})
	all := string(b)
	at := 0
	for _, s := range sp {
		dst = append(dst, hpack.HeaderField{Name: all[at : at+s.name], Value: all[at+s.name : s.end]})
		at = s.end
	}
	return dst
}

// appendH2Trailers translates HTTP/1.1 chunked trailers into HTTP/2 fields
// (names lower-cased, fields forbidden in trailers dropped). The fields'
// strings share one allocation built in scratch, which is returned for
// reuse.
func appendH2Trailers(dst []hpack.HeaderField, t *h1.Headers, scratch []byte) ([]hpack.HeaderField, []byte) {
	b := scratch[:0]
	type span struct{ name, end int }
	var spans [32]span
	sp := spans[:0]
	for _, f := range t.Fields() {
		start := len(b)
		for _, c := range f.Name {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b = append(b, c)
		}
		if forbiddenTrailer(string(b[start:])) {
			b = b[:start]
			continue
		}
		nameEnd := len(b)
		b = append(b, f.Value...)
		sp = append(sp, span{name: nameEnd - start, end: len(b)})
	}
	all := string(b)
	at := 0
	for _, s := range sp {
		dst = append(dst, hpack.HeaderField{Name: all[at : at+s.name], Value: all[at+s.name : s.end]})
		at = s.end
	}
	return dst, b[:0]
}

// appendH2ResponseHead appends the HTTP/1.1 head for an h2c response.
// addCL0 adds "Content-Length: 0" for an empty body the upstream gave no
// length for.
func (h *HTTP) appendH2ResponseHead(dst []byte, hd *h2.Headers, o respHeadOpts, addCL0 bool) []byte {
	dst = h1.AppendStatusLine(dst, 1, hd.Status, h1.StatusText(hd.Status))
	nVia := 0
	seenCL := false
	for _, f := range hd.Fields {
		if len(f.Name) > 0 && f.Name[0] == ':' {
			continue
		}
		switch f.Name {
		case "te", "trailer":
			continue // hop-by-hop in HTTP/1.1 (headers.go)
		case "via":
			nVia++
			continue
		case "content-length":
			if seenCL || o.chunked {
				continue
			}
			seenCL = true
		}
		dst = h1.AppendHeader(dst, f.Name, f.Value)
	}
	if addCL0 {
		dst = h1.AppendContentLength(dst, 0)
	}
	switch {
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
		dst = appendJoinedH2(dst, hd.Fields, "via", ", ")
		dst = append(dst, ", "...)
	}
	dst = append(dst, h.via2...)
	dst = append(dst, "\r\n\r\n"...)
	return dst
}

// declaresTrailers reports a trailer field in a response head.
func declaresTrailers(hd *h2.Headers) bool {
	for _, f := range hd.Fields {
		if f.Name == "trailer" {
			return true
		}
	}
	return false
}
