package proxy

import (
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h1"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
	"github.com/sluice-proxy/sluice/proxy/header"
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
	x.beginAttempt(u)
	up := cc.ls.h2Acquire(u)
	if up == nil { // at the upstream's in-use cap, every connection full
		endAttemptOn(u, resQueueFull)
		cc.respondError(errQueueFullErr)
		return
	}
	x.replay.NewAttempt()
	end := x.reqDone && x.replay.Len() == 0 && len(x.upPend) == 0 && len(x.upTrail) == 0
	id, err := up.open(cc, x.upFields, end)
	if err != nil {
		endAttemptOn(u, resBadResponse)
		cc.respondError(&proxyError{kind: errUpBadResponse, err: err})
		return
	}
	x.up, x.upID, x.upOpen = up, id, true
	x.sentAll = end
	if up.ready() {
		cc.upReady()
	}
}

// upReady: the stream's connection is open; until now the body waited,
// unread, in the engine (readBody), so a failed dial could go elsewhere.
// A retry resends what the replay buffer holds first.
func (cc *clientConn) upReady() {
	x := &cc.x
	if !x.upOpen {
		return
	}
	x.sentAt = engine.Now()
	if x.sentAll || x.expect100 {
		cc.c.SetTimer(engine.TimerProto, cc.x.respHT(cc.h))
	}
	cc.pumpH2C() // pauses the client's reads while a replay waits for the window
	cc.unpause(pauseDial)
}

// sendBodyH2C sends request body data upstream as DATA.
func (cc *clientConn) sendBodyH2C(data []byte) bodyStep {
	x := &cc.x
	w := x.up.writeData(x.upID, data, false)
	x.keepSent(cc.h, data[:w])
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
	cc.bodyRead()
	if t := cc.body.Trailers(); x.reqChunked && t.Len() > 0 {
		x.upTrail = header.AppendH2Trailers(x.upTrail[:0], &cc.ls.hs, header.H1(t)) // kept: a retry sends them again
	}
	cc.pumpH2C()
}

func (cc *clientConn) endRequestH2C() {
	x := &cc.x
	if len(x.upTrail) > 0 {
		x.up.writeTrailers(x.upID, x.upTrail)
	} else {
		x.up.writeData(x.upID, nil, true)
	}
	x.sentAll = true
	if x.resp == respNone {
		cc.c.SetTimer(engine.TimerProto, cc.x.respHT(cc.h))
	}
}

// pumpH2C sends, as far as the upstream's windows allow, what a retry
// resends, then what the window refused before, then the request's end
// once the client's body is all read. It reports whether nothing waits.
func (cc *clientConn) pumpH2C() bool {
	x := &cc.x
	if !x.upOpen || !x.up.ready() || x.sentAll {
		return x.sentAll
	}
	if rest := x.replay.Rest(); len(rest) > 0 {
		w := x.up.writeData(x.upID, rest, false)
		x.replay.Sent(w)
		if w < len(rest) || !x.upOpen {
			cc.pause(pauseUpstream)
			return false
		}
	}
	if len(x.upPend) > 0 {
		w := x.up.writeData(x.upID, x.upPend, false)
		x.keepSent(cc.h, x.upPend[:w])
		x.upPend = x.upPend[:copy(x.upPend, x.upPend[w:])]
		if len(x.upPend) > 0 || !x.upOpen {
			cc.pause(pauseUpstream)
			return false
		}
	}
	if x.reqDone {
		cc.endRequestH2C()
	}
	return true
}

// ---- h2c upstream events (upSink, through sinks.go) ----

// upWindowOpen sends what the window refused before, then reads on.
func (cc *clientConn) upWindowOpen() {
	if cc.pumpH2C() && !cc.x.reqDone {
		cc.unpause(pauseUpstream)
	}
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
	x.resp = respStarted
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

// upReset: the upstream stream failed; refused: it was not processed.
func (cc *clientConn) upReset(err *proxyError, refused bool) {
	x := &cc.x
	if !x.upOpen {
		return
	}
	x.upOpen = false
	cc.h2cEnded(err, refused)
}

// h2cFailed ends the attempt with an error (a timeout): 502/504 before
// the response head, a cut response after.
func (cc *clientConn) h2cFailed(err *proxyError) {
	x := &cc.x
	x.upOpen = false
	x.up.cancel(x.upID)
	cc.h2cEnded(err, false)
}

// h2cEnded accounts for the failed attempt, then retries or fails.
func (cc *clientConn) h2cEnded(err *proxyError, refused bool) {
	x := &cc.x
	u := x.u
	endAttemptOn(u, resultFor(err.kind))
	if blames(err.kind, false, refused) {
		cc.h.failed(u, engine.Now())
	}
	cc.c.ClearTimer(engine.TimerProto)
	if cc.dead || cc.state == csClosing {
		return
	}
	cc.afterFailure(u, err, false, refused)
}

// endResponseH2C completes the response: the last chunk (with the
// trailers) when sluice chunks, then the exchange ends.
func (cc *clientConn) endResponseH2C(trailers []hpack.HeaderField) {
	x := &cc.x
	cc.c.ClearTimer(engine.TimerProto)
	if x.upOpen {
		x.upOpen = false
		endAttemptOn(x.u, resOK)
		cc.h.succeeded(x.u)
		x.up.release(x.upID)
	}
	if x.out == outChunked {
		cc.buf = header.AppendLastChunk(cc.buf[:0], header.H2(trailers))
		cc.c.Write(cc.buf)
	}
	x.resp = respDone
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
		endAttemptOn(x.u, result)
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

// appendH2ResponseHead appends the HTTP/1.1 head for an h2c response.
// addCL0 adds "Content-Length: 0" for an empty body the upstream gave no
// length for.
func (h *HTTP) appendH2ResponseHead(dst []byte, hd *h2.Headers, o respHeadOpts, addCL0 bool) []byte {
	r := header.Response{Status: hd.Status, From: header.HTTP2, Fields: header.H2(hd.Fields)}
	fr := o.framing()
	fr.SetLength = addCL0
	return h.hdr.AppendH1Response(dst, &r, &fr)
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
