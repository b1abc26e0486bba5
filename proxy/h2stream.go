package proxy

import (
	"strings"

	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h1"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
	"github.com/sluice-proxy/sluice/proxy/header"
)

// One HTTP/2 stream is one exchange: the request goes to an HTTP/1.1
// upstream over the per-loop pools (one upstream request per stream,
// this file), or to an h2c upstream as a stream of a multiplexed
// connection (h2up.go). The routing, balancing, retry rules, health
// accounting, error statuses, header policy, metrics and access log are
// the HTTP/1.1 path's.
//
// Flow control, request direction. Body bytes from the client are handed
// to the upstream as they come, and reported to the codec (Consumed, which
// is what reopens the client's window) only then: while the upstream is
// still connecting or over its engine high-water mark, they wait in
// reqPend, which the stream window (256 KiB by default) bounds. An HTTP/1.1
// upstream gets Content-Length when the client sent one or when the whole
// body was already in when the request went out, else chunked.
//
// Response direction. WriteData sends what the client's windows allow;
// the rest waits in pend and the upstream stops: an HTTP/1.1 upstream's
// reads are paused (so pend holds at most one read), an h2c upstream
// simply gets no WINDOW_UPDATE for bytes not yet passed on. OnWindowOpen
// resumes. A stream whose response stays stalled for WriteTimeout is reset
// (CANCEL). Above the client connection's engine high-water mark every
// stream parks until OnWritable.
//
// Errors. Before the response head went out, a failure is 502 or 504 (as
// statusFor says) on that stream only; after, the stream is reset
// (INTERNAL_ERROR, or CANCEL for a timeout), never ended with END_STREAM.
// A client that resets a stream cancels its upstream exchange: an HTTP/1.1
// upstream connection with a request or response half done is reset, never
// pooled. A complete response sent before the request body ended is
// followed by RST_STREAM(NO_ERROR), as RFC 9113 §8.1 allows.

// h2Stream is one HTTP/2 request and its upstream exchange. Loop-owned.
type h2Stream struct {
	hc *h2Conn
	id uint32
	x  exchange

	// The request, as received; strings from the codec may be kept.
	method, path, authority string
	protocol                string              // :protocol of an extended CONNECT (RFC 8441)
	fields                  []hpack.HeaderField // regular fields, in order
	reqCL                   int64               // content-length, -1 if none

	started  bool
	reqEnd   bool   // the client's side ended (END_STREAM, trailers)
	reqPend  []byte // body bytes not handed upstream yet (not Consumed)
	reqTrail []hpack.HeaderField
	lastIn   int64 // engine clock of the last request body byte

	pend      []byte // response body bytes not taken by WriteData yet
	pendEnd   bool   // END_STREAM (or trailers) follows pend
	pendTrail []hpack.HeaderField
	outEnd    bool  // the response's end is sent or queued behind pend
	fin       bool  // our side of the stream is over (END_STREAM or RST sent)
	parked    bool  // in hc.parked, waiting for OnWritable
	capWaits  bool  // in hc.capWait
	inFresh   bool  // in hc.fresh
	upDone    bool  // the upstream exchange is over
	done      bool  // accounted and forgotten
	slot      bool  // holds one of hc's upstream slots (budget.go)
	queued    bool  // in hc.upWait
	slotKind  uint8 // slotConn or slotStream, by the route
	queuedAt  int64

	// h2c upstream (h2stream_up.go): x.up, x.upID and x.upOpen name the
	// upstream stream (x.up set from the first h2c attempt on: pend
	// credits it).
	upDeadline int64 // engine clock: response head or next DATA due, 0 if none

	// WebSocket over HTTP/2 (h2ws.go).
	wsKey   string // the Sec-WebSocket-Key sent upstream
	tunnel  bool   // the upstream's 101 came: relaying
	upEOF   bool   // the upstream's FIN came
	upWShut bool   // the client's END_STREAM went upstream as a FIN
}

func newH2Stream(hc *h2Conn, id uint32, hd *h2.Headers) *h2Stream {
	now := hc.ls.l.Now()
	var st *h2Stream
	if n := len(hc.free); n > 0 {
		// A finished stream, reset here (not when it finished: code
		// still unwinding from that finish reads its done flag).
		st = hc.free[n-1]
		hc.free[n-1] = nil
		hc.free = hc.free[:n-1]
		old := *st
		*st = h2Stream{fields: old.fields[:0], reqPend: old.reqPend[:0], pend: old.pend[:0]}
		clear(old.fields)
		clear(old.x.upFields)
		st.x.reset()
		st.x.head, st.x.replay, st.x.logb = old.x.head[:0], old.x.replay, old.x.logb[:0]
		st.x.replay.Reset()
		st.x.upFields, st.x.upTrail, st.x.upPend, st.x.reqID = old.x.upFields[:0], old.x.upTrail[:0], old.x.upPend[:0], old.x.reqID[:0]
	} else {
		st = new(h2Stream)
	}
	st.hc, st.id, st.method, st.path, st.authority, st.protocol = hc, id, hd.Method, hd.Path, hd.Authority, hd.Protocol
	st.reqCL, st.reqEnd, st.lastIn = hd.ContentLength, hd.EndStream, now
	x := &st.x
	x.start = now
	for _, f := range hd.Fields {
		if len(f.Name) > 0 && f.Name[0] == ':' {
			continue
		}
		st.fields = append(st.fields, f)
		switch f.Name {
		case "host":
			if st.authority == "" {
				st.authority = f.Value
			}
		case "expect":
			x.expect100 = strings.EqualFold(f.Value, "100-continue") // ASCII target: no Unicode fold can match
		}
	}
	switch st.method {
	case "HEAD":
		x.mc = h1.MethodHEAD
	case "CONNECT":
		x.mc = h1.MethodCONNECT
	}
	x.idempotent = idempotent(st.method)
	noteRequest(x, hc.ls, st.method, st.path, st.authority, func(yield func(name, value string) bool) {
		for _, f := range st.fields {
			if !yield(f.Name, f.Value) {
				return
			}
		}
	})
	return st
}

// start routes the request and starts the first attempt.
func (st *h2Stream) start() {
	st.started = true
	x := &st.x
	h := st.hc.h
	if st.method == "CONNECT" {
		if st.protocol != "websocket" {
			// Plain CONNECT (sluice is not a forward proxy), or a
			// :protocol it does not relay.
			st.respondError(errMethodErr)
			return
		}
		if !wsFieldsOK(st.fields) {
			st.respondError(&proxyError{kind: errBadRequest})
			return
		}
		x.upgrade = true
		x.mc = h1.MethodOther // the upstream answers a GET
		x.idempotent = true   // and nothing but the GET goes before its 101
	}
	if !validH2Target(st.path) || !validH2Authority(st.authority) || !validH2Values(st.fields) {
		// What HTTP/2 allows but an HTTP/1.1 request line or field
		// cannot carry (spaces or controls in :path, ...).
		st.respondError(&proxyError{kind: errBadRequest})
		return
	}
	routePath := st.path
	if routePath == "*" {
		routePath = "/"
	}
	x.rt = routeMatch(h.rt.Load(), st.authority, routePath)
	if x.rt == nil {
		st.respondError(errNoRouteErr)
		return
	}
	x.armReplay()
	if !st.reqEnd && !x.upgrade {
		x.body.begin(x.start)
	}
	if !st.hc.takeSlot(st) {
		return // startQueued connects it
	}
	st.connect(nil)
}

// connect starts an attempt: pick an upstream, then reuse a pooled
// connection, dial one, or open a stream on an h2c connection.
func (st *h2Stream) connect(avoid *Upstream) {
	x := &st.x
	hc := st.hc
	ls := hc.ls
	h := hc.h
	u := x.u
	if !x.forceFreshDial || u == nil {
		u = ls.pick(x.rt, avoid, ls.l.Now())
	}
	if u.H2() {
		if x.upgrade {
			st.respondError(errNotImplErr)
			return
		}
		st.connectH2C(u)
		return
	}
	st.x.up = nil
	switch {
	case len(x.head) == 0:
		x.head = h.appendH2RequestHead(x.head[:0], st, u)
	case h.cfg.RewriteHost && x.rt.HostHeader == "" && u != x.u:
		x.head = replaceHost(x.head, u.Host())
	}
	if uc := ls.attemptOn(x, u, st); uc != nil {
		ls.dial(uc)
	}
}

// ---- HTTP/1.1 upstream events (upSink, through sinks.go) ----

// attach starts the attempt on a connected upstream connection: the head,
// any body bytes a retry holds, then what the client has sent so far.
func (st *h2Stream) attach(uc *upConn) {
	x := &st.x
	x.uc = uc
	uc.cc = st
	uc.readT = x.readT(st.hc.h)
	uc.prepare(x.mc)
	uc.c.Write(x.head)
	if x.replay.Len() > 0 {
		uc.c.Write(x.replay.Bytes())
		x.replay.Resent()
	}
	x.sentAt = st.hc.ls.l.Now()
	if x.uc != uc {
		return // the write failed and the attempt is over
	}
	if x.upgrade {
		x.sentAll = true // the rest is the tunnel's, after the 101
	}
	if st.hc.capped {
		uc.pauseRead() // its response waits for the connection's cap
		st.hc.capWait = append(st.hc.capWait, st)
		st.capWaits = true
	}
	if x.expect100 || x.sentAll {
		// Waiting for a 100 Continue, or a retry that resent the whole
		// request (the replay holds every byte, the last chunk included).
		uc.c.SetTimer(engine.TimerProto, st.x.respHT(st.hc.h))
	}
	st.pumpRequest()
}

// pumpRequest hands the waiting request body to the upstream, while it is
// under its high-water mark, and ends the request once the client did.
func (st *h2Stream) pumpRequest() {
	x := &st.x
	uc := x.uc
	if uc == nil || !uc.serves(st) {
		return
	}
	if st.tunnel {
		if uc.state == ucTunnel {
			st.pumpTunnel(uc)
		}
		return
	}
	if uc.state != ucBusy || x.upgrade {
		return // a WebSocket's DATA waits for the 101
	}
	hc := st.hc
	if len(st.reqPend) > 0 {
		if uc.c.OverHighWater() {
			uc.c.NotifyWritable()
			return
		}
		data := st.reqPend
		st.reqPend = nil // a retry started by a failing write must not send it twice
		hc.sc.Consumed(st.id, len(data))
		hc.kick()
		if x.reqChunked {
			hc.tmp = h1.AppendChunk(hc.tmp[:0], data)
			st.writeUp(uc, hc.tmp)
		} else {
			st.writeUp(uc, data)
		}
		if st.reqPend == nil {
			st.reqPend = data[:0]
		}
		if x.uc != uc {
			return
		}
	}
	if st.reqEnd && !x.sentAll && len(st.reqPend) == 0 {
		if x.reqChunked {
			hc.tmp = header.AppendLastChunk(hc.tmp[:0], header.H2(st.reqTrail))
			st.writeUp(uc, hc.tmp)
			if x.uc != uc {
				return
			}
		}
		x.sentAll = true
		if !uc.headDone {
			uc.c.SetTimer(engine.TimerProto, st.x.respHT(hc.h))
		}
	}
}

// writeUp sends request bytes upstream, keeping a copy while a retry is
// still possible (retry.go). The copy is taken first: a write that fails
// and starts a retry at once sends these bytes too.
func (st *h2Stream) writeUp(uc *upConn, p []byte) {
	st.x.keepSent(st.hc.h, p)
	uc.c.Write(p)
}

// upstreamWritable: the upstream drained; more body can go.
func (st *h2Stream) upstreamWritable(*upConn) { st.pumpRequest() }

// responseBody sends upstream body bytes as DATA (END_STREAM with the
// last of a Content-Length body).
func (st *h2Stream) responseBody(uc *upConn, data []byte, last bool) bool {
	st.sendBody(data, last)
	return !st.done && st.x.uc == uc
}

// interim passes a 1xx on: 100 Continue to a client that asked for it and
// is still to send its body, 102/103 always.
func (st *h2Stream) interim(uc *upConn, resp *h1.Response) {
	x := &st.x
	hc := st.hc
	uc.c.SetTimer(engine.TimerProto, st.x.respHT(hc.h))
	if resp.Status == 100 && (!x.expect100 || x.cont100 || st.reqEnd) {
		return
	}
	if resp.Status == 100 {
		x.cont100 = true
	}
	if hc.sc.WriteHeaders(st.id, hc.h1ToH2Fields(resp), false) == nil {
		hc.kick()
	}
}

// startResponse sends the response head. It reports false when the
// exchange ended instead (the head could not be sent).
func (st *h2Stream) startResponse(uc *upConn, resp *h1.Response, raw []byte, es bool) bool {
	x := &st.x
	hc := st.hc
	now := hc.ls.l.Now()
	x.headAt = now
	hc.h.m.upHeadDur.Update(engine.Dur(now - x.sentAt).Seconds())
	x.status = resp.Status
	if err := hc.sc.WriteHeaders(st.id, hc.finalFields(resp, raw), es); err != nil {
		// Nothing went out: the head cannot be said in HTTP/2 (too
		// large for the client's limit, ...).
		st.attemptFailed(uc, &proxyError{kind: errUpBadResponse, err: err})
		return false
	}
	x.resp = respStarted
	hc.kick()
	if es {
		st.outEnd = true
		st.sentEnd()
	}
	return true
}

// endResponse: the upstream response is complete. The upstream
// connection goes back to the pool now, even if the client has yet to
// take the last bytes.
func (st *h2Stream) endResponse(uc *upConn, trailers *h1.Headers) {
	x := &st.x
	hc := st.hc
	x.resp = respDone
	if x.uc == uc {
		x.uc = nil
		endAttemptOn(uc.u, resOK)
		hc.h.succeeded(uc.u)
		uc.release(x.sentAll && !uc.resp.Close)
	}
	st.upDone = true
	hc.freeSlot(st)
	if !st.outEnd {
		var tf []hpack.HeaderField
		if trailers != nil && trailers.Len() > 0 {
			tf = hc.h1TrailersToH2(trailers)
		}
		st.finishOut(tf)
	}
	st.maybeDone()
}

// attemptFailed handles the failure of the attempt on uc.
func (st *h2Stream) attemptFailed(uc *upConn, err *proxyError) {
	x := &st.x
	if !uc.serves(st) || x.uc != uc {
		return
	}
	u := uc.u
	stale := st.hc.h.failAttempt(x, uc, err)
	st.afterFailure(u, err, stale, false)
}

func (st *h2Stream) reconnect(avoid *Upstream) { st.connect(avoid) }

func (st *h2Stream) reopenH2C(u *Upstream) {
	st.x.up = nil
	st.connectH2C(u)
}

// afterFailure retries (retry.go), answers with an error, or resets the
// stream.
func (st *h2Stream) afterFailure(u *Upstream, err *proxyError, stale, refused bool) {
	x := &st.x
	h := st.hc.h
	if st.done {
		return
	}
	if x.retry(h, st, u, err.kind, stale, refused) {
		return
	}
	x.end = err.kind
	if x.resp != respNone {
		x.resp = respCut
		code := h2.ErrCodeInternal
		if err.kind == errUpTimeout {
			code = h2.ErrCodeCancel
		}
		st.upDone = true
		st.resetStream(code)
		return
	}
	st.respondError(err)
}

// ---- request body from the client ----

// onReqData takes request body bytes; they wait in reqPend until the
// upstream can take them.
func (st *h2Stream) onReqData(data []byte, end bool) {
	st.x.bytesIn += int64(len(data))
	st.lastIn = st.hc.ls.l.Now()
	if end {
		st.reqEnd = true
	}
	if st.upDone {
		// The exchange is over (e.g. the upstream answered early): the
		// bytes have nowhere to go.
		st.hc.sc.Consumed(st.id, len(data))
		return
	}
	st.reqPend = append(st.reqPend, data...)
	st.pumpAny()
}

// onReqTrailers takes the request's trailers, which end it.
func (st *h2Stream) onReqTrailers(fields []hpack.HeaderField) {
	st.reqEnd = true
	st.reqTrail = header.AppendH2Trailers(st.reqTrail[:0], nil, header.H2(fields)) // those that may travel
	st.pumpAny()
}

func (st *h2Stream) pumpAny() {
	if !st.started || st.upDone {
		return
	}
	if st.x.up != nil {
		st.pumpRequestH2C()
		return
	}
	st.pumpRequest()
}

// ---- response to the client ----

// blocked reports whether response bytes wait for the client.
func (st *h2Stream) blocked() bool { return len(st.pend) > 0 || st.parked }

// addPend keeps response bytes the client cannot take yet, counting them
// against the connection's cap.
func (st *h2Stream) addPend(p []byte) {
	st.pend = append(st.pend, p...)
	hc := st.hc
	hc.pendBytes += len(p)
	if !hc.capped && hc.pendBytes > hc.h.cfg.H2MaxBuffered {
		hc.capPause()
	}
}

// takePend drops the first k bytes of pend (sent or abandoned).
func (st *h2Stream) takePend(k int) {
	if k <= 0 {
		return
	}
	st.pend = st.pend[:copy(st.pend, st.pend[k:])]
	hc := st.hc
	hc.pendBytes -= k
	if hc.capped && hc.pendBytes <= hc.h.cfg.H2MaxBuffered/2 {
		hc.capResume()
	}
}

// sendBody sends response data (with END_STREAM after it when end), as far
// as the client's windows and output allow, and keeps the rest in pend.
// It returns how many bytes went to the codec.
func (st *h2Stream) sendBody(data []byte, end bool) int {
	hc := st.hc
	if end {
		st.outEnd = true
	}
	if st.blocked() || hc.c.OverHighWater() {
		st.addPend(data)
		st.pendEnd = st.pendEnd || end
		if !st.parked && hc.c.OverHighWater() {
			hc.park(st)
		}
		return 0
	}
	k, err := hc.sc.WriteData(st.id, data, end)
	if err != nil {
		return len(data) // the stream or connection is gone; its own path cleans up
	}
	st.x.bytesOut += int64(k)
	hc.kick()
	if k < len(data) {
		if hc.eof {
			// A half-closed client cannot open its window again.
			st.clientGone(h2.ErrCodeCancel, false)
			return len(data)
		}
		st.addPend(data[k:])
		st.pendEnd = st.pendEnd || end
		return k
	}
	if end {
		st.sentEnd()
	}
	return k
}

// finishOut ends the response: trailers if there are any, else an empty
// DATA with END_STREAM, behind whatever pend holds.
func (st *h2Stream) finishOut(trailers []hpack.HeaderField) {
	st.outEnd = true
	if st.blocked() {
		st.pendEnd = true
		if len(trailers) > 0 {
			st.pendTrail = append(st.pendTrail[:0], trailers...)
		}
		return
	}
	st.writeEnd(trailers)
}

func (st *h2Stream) writeEnd(trailers []hpack.HeaderField) {
	hc := st.hc
	var err error
	if len(trailers) > 0 {
		err = hc.sc.WriteTrailers(st.id, trailers)
	}
	if len(trailers) == 0 || err != nil && err != h2.ErrStreamNotWritable {
		// Trailers the client cannot take are dropped; the body is whole.
		_, err = hc.sc.WriteData(st.id, nil, true)
	}
	hc.kick()
	if err == nil {
		st.sentEnd()
	}
}

// flushPend retries pend when the window opened or the output drained,
// then lets the upstream go on.
func (st *h2Stream) flushPend() {
	if st.done || st.fin {
		return
	}
	hc := st.hc
	if len(st.pend) > 0 {
		if hc.c.OverHighWater() {
			hc.park(st)
			return
		}
		end := st.pendEnd && len(st.pendTrail) == 0
		k, err := hc.sc.WriteData(st.id, st.pend, end)
		if err != nil {
			return
		}
		st.x.bytesOut += int64(k)
		st.takePend(k)
		if st.x.up != nil && k > 0 {
			st.x.up.consumed(st.x.upID, k)
		}
		hc.kick()
		if len(st.pend) > 0 {
			if hc.eof {
				st.clientGone(h2.ErrCodeCancel, false)
			}
			return // still stalled: OnWindowOpen comes again
		}
		if end {
			st.sentEnd()
			return
		}
	}
	if st.pendEnd {
		st.pendEnd = false
		t := st.pendTrail
		st.pendTrail = nil
		st.writeEnd(t)
		return
	}
	st.resumeUp()
}

// resumeUp lets a paused HTTP/1.1 upstream go on (upAttempt.resume).
// While the connection is over its buffering cap it waits for the cap
// instead.
func (st *h2Stream) resumeUp() {
	uc := st.x.uc
	if uc == nil || !uc.serves(st) {
		return
	}
	a := uc.attempt()
	if !a.paused() {
		return
	}
	if st.hc.capped {
		st.hc.capWait = append(st.hc.capWait, st)
		st.capWaits = true
		return
	}
	idle := st.x.readT(st.hc.h)
	if st.tunnel {
		idle = st.hc.h.tunnelIdle
	}
	a.resume(idle)
}

// sentEnd: END_STREAM (or trailers) went to the codec.
func (st *h2Stream) sentEnd() {
	st.fin = true
	st.maybeDone()
}

// maybeDone finishes the stream once both the response is out and the
// upstream exchange is over. A client still sending is told to stop
// (RST_STREAM NO_ERROR), unless its whole declared body is in and only
// END_STREAM is on its way: a reset then only races it, and hyper's h2
// (0.3) turns it into an error on a response it already holds whole. The
// codec keeps such a stream half-closed until END_STREAM, within the
// client's own stream limit.
func (st *h2Stream) maybeDone() {
	if st.done || !st.fin || !st.upDone {
		return
	}
	if !st.reqEnd && !(st.reqCL >= 0 && st.x.bytesIn >= st.reqCL) {
		st.hc.sc.ResetStream(st.id, h2.ErrCodeNo)
		st.hc.kick()
	}
	st.finish()
}

// respondError answers with sluice's own error response (status from
// statusFor), as HEADERS and a short DATA on this stream.
func (st *h2Stream) respondError(err error) {
	x := &st.x
	hc := st.hc
	code := statusFor(err)
	x.status = code
	x.end = kindOf(err)
	x.resp = respDone
	st.upDone = true
	st.dropUpstream()
	hc.freeSlot(st)
	st.x.up = nil // pend holds sluice's own bytes now: nothing to credit upstream
	text := h1.StatusText(code)
	var clen [20]byte
	body := hc.tmp[:0]
	body = append(body, header.StatusString(code)...)
	body = append(body, ' ')
	body = append(body, text...)
	body = append(body, '\n')
	head := x.mc == h1.MethodHEAD
	hc.hf = append(hc.hf[:0],
		hpack.HeaderField{Name: ":status", Value: header.StatusString(code)},
		hpack.HeaderField{Name: "content-type", Value: "text/plain; charset=utf-8"},
		hpack.HeaderField{Name: "content-length", Value: string(appendInt(clen[:0], int64(len(body))))},
	)
	if e := hc.sc.WriteHeaders(st.id, hc.hf, head); e != nil {
		st.fin = true
		st.finish()
		return
	}
	hc.kick()
	st.outEnd = true
	if head {
		st.sentEnd()
		return
	}
	hc.tmp = body
	st.sendBody(body, true)
}

// resetStream ends the stream with RST_STREAM: a response that cannot be
// completed is never made to look whole.
func (st *h2Stream) resetStream(code h2.ErrCode) {
	hc := st.hc
	hc.sc.ResetStream(st.id, code)
	hc.kick()
	st.fin = true
	st.finish()
}

// clientGone: the client reset the stream (byPeer: the codec already
// closed it) or can no longer complete it. The exchange is abandoned.
func (st *h2Stream) clientGone(code h2.ErrCode, byPeer bool) {
	x := &st.x
	if x.end == errNone {
		x.end = errClientAbort
	}
	if x.resp == respNone {
		x.status = 499
	}
	st.abortUpstream(errClientAbort)
	if !byPeer {
		st.hc.sc.ResetStream(st.id, code)
		st.hc.kick()
	}
	st.fin = true
	st.finish()
}

// connGone: the client connection is closing or closed.
func (st *h2Stream) connGone() {
	x := &st.x
	if x.end == errNone && !(st.fin && st.upDone) {
		x.end = errClientAbort
	}
	if x.resp == respNone {
		x.status = 499
	}
	st.abortUpstream(errClientAbort)
	st.fin = true
	st.finish()
}

// abortUpstream cancels the upstream exchange in flight, if any: an
// HTTP/1.1 connection with a request or response half done is reset (it
// can never be reused), an h2c stream gets RST_STREAM(CANCEL).
func (st *h2Stream) abortUpstream(kind errKind) {
	x := &st.x
	if uc := x.uc; uc != nil {
		x.uc = nil
		endAttemptOn(uc.u, resultFor(kind))
		uc.discard(x.resp != respDone)
	}
	st.abortH2C(kind)
	st.upDone = true
	st.hc.freeSlot(st)
}

// dropUpstream forgets an upstream exchange that already failed.
func (st *h2Stream) dropUpstream() {
	if st.x.uc != nil {
		st.abortUpstream(errUpReset)
	}
	st.abortH2C(errUpReset)
}

// finish accounts for the stream and forgets it. Request bytes the client
// sent that never went upstream are credited back here, exactly once.
func (st *h2Stream) finish() {
	if st.done {
		return
	}
	st.done = true
	hc := st.hc
	if len(st.reqPend) > 0 && !hc.dead {
		hc.sc.Consumed(st.id, len(st.reqPend))
		hc.kick()
	}
	st.reqPend = st.reqPend[:0]
	if st.x.up != nil && len(st.pend) > 0 {
		st.x.up.consumed(st.x.upID, len(st.pend))
	}
	st.takePend(len(st.pend))
	st.releaseH2C()
	hc.freeSlot(st)
	if st.tunnel {
		hc.h.m.tunnelEnd(tunH2)
	}
	hc.h.account(&st.x, hc.ls.l.Now(), hc.c, hc.ip, hc.tlsVer, hc.alpn, protoH2, st.id)
	hc.streamDone(st)
	if !st.inFresh && !st.parked && !st.capWaits && len(hc.free) < maxFreeStreams {
		// Nothing refers to it any more: keep it, and its buffers unless
		// a burst made them big, for the next stream.
		if cap(st.reqPend) > 16<<10 {
			st.reqPend = nil
		}
		if cap(st.pend) > 16<<10 {
			st.pend = nil
		}
		st.x.replay.Trim(16 << 10)
		hc.free = append(hc.free, st)
	}
}

// maxFreeStreams bounds the finished streams a connection keeps for reuse.
const maxFreeStreams = 32

// checkDeadlines runs on the connection's tick.
func (st *h2Stream) checkDeadlines(now int64) {
	x := &st.x
	hc := st.hc
	h := hc.h
	if st.queued {
		if now-st.queuedAt >= h.upWait {
			st.refuse()
		}
		return
	}
	if len(st.pend) > 0 && !st.parked {
		if since, ok := hc.sc.BlockedSince(st.id); ok && now-since.UnixNano() >= h.stallTimeout {
			// The client's window kept the response stalled too long.
			st.stallReset()
			return
		}
	}
	if st.started && !st.reqEnd && !st.upDone && !x.upgrade {
		hc.bodyHold(st)
		if k, _ := x.body.check(&h.body, now, x.bytesIn); k != errNone {
			st.bodyFailed(k)
			return
		}
		if x.resp == respNone && len(st.reqPend) == 0 && !(x.expect100 && !x.cont100) && now-st.lastIn >= h.idleTimeout {
			// The client stopped sending its request body (a WebSocket's
			// sends nothing until its 200: the upstream's timeout runs).
			st.bodyFailed(errBodyTimeout)
			return
		}
	}
	if st.x.up != nil && !st.upDone && st.upDeadline != 0 && now >= st.upDeadline {
		st.h2cTimeout()
	}
}

// bodyFailed ends a stream whose request body broke a deadline (k): 408
// on the stream while no response head went out, else RST_STREAM(CANCEL);
// the upstream attempt is cancelled either way.
func (st *h2Stream) bodyFailed(k errKind) {
	x := &st.x
	st.hc.h.bm.bodyTimeout(true, k)
	x.body.stop()
	st.abortUpstream(k)
	if x.resp != respNone {
		x.end = k
		st.resetStream(h2.ErrCodeCancel)
		return
	}
	st.respondError(bodyErr(k))
}

// refuse ends a stream that waited for an upstream slot too long:
// REFUSED_STREAM says nothing of it was processed.
func (st *h2Stream) refuse() {
	hc := st.hc
	hc.unqueue(st)
	hc.h.bm.slotRefusals.Inc()
	st.x.end = errRefused
	st.upDone = true
	st.resetStream(h2.ErrCodeRefusedStream)
}
