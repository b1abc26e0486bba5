package proxy

import (
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
	"github.com/sluice-proxy/sluice/proxy/header"
)

// An HTTP/2 client stream on an h2c upstream: a stream of a multiplexed
// upstream connection (h2up.go). The attempt's state is the exchange's, as
// for an HTTP/1.1 client (h1h2c.go): x.up/x.upID name the upstream
// stream, x.upOpen says it is still in flight.

// connectH2C starts an attempt on a stream of an h2c connection to u.
func (st *h2Stream) connectH2C(u *Upstream) {
	x := &st.x
	hc := st.hc
	x.beginAttempt(u)
	up := hc.ls.h2Acquire(u)
	if up == nil { // at the upstream's in-use cap, every connection full
		endAttemptOn(u, resQueueFull)
		st.afterFailure(u, errQueueFullErr, false, false)
		return
	}
	x.sentAll = false
	x.replay.NewAttempt()
	end := st.reqEnd && len(st.reqPend) == 0 && x.replay.Len() == 0 && len(st.reqTrail) == 0
	id, err := up.open(st, st.h2cRequestFields(u), end)
	if err != nil {
		// The request cannot be said to this upstream (a header list over
		// its limit, ...): nothing was sent.
		endAttemptOn(u, resBadResponse)
		st.afterFailure(u, &proxyError{kind: errUpBadResponse, err: err}, false, false)
		return
	}
	st.x.up, st.x.upID, st.x.upOpen = up, id, true
	st.upDeadline = 0
	if end {
		x.sentAll = true
	}
	if up.ready() {
		st.upReady()
	}
}

// upReady: the stream's connection is open. The head is on its way; the
// body follows, and the response header timeout runs from the request's
// end.
func (st *h2Stream) upReady() {
	x := &st.x
	if !st.x.upOpen {
		return
	}
	now := engine.Now()
	x.sentAt = now
	if x.sentAll {
		st.upDeadline = now + st.x.respHT(st.hc.h)
	}
	st.pumpRequestH2C()
}

// h2cRequestFields builds the upstream request's field list.
func (st *h2Stream) h2cRequestFields(u *Upstream) []hpack.HeaderField {
	r := st.headerRequest(u)
	st.x.upFields = st.hc.h.hdr.AppendH2Request(st.x.upFields[:0], &st.hc.hs, &r, true)
	return st.x.upFields
}

// pumpRequestH2C sends the request body (what a retry holds first, then
// what the client sent) as far as the upstream's windows allow, crediting
// the client as bytes go, then the end of the request.
func (st *h2Stream) pumpRequestH2C() {
	x := &st.x
	up := st.x.up
	if up == nil || !st.x.upOpen || x.sentAll || !up.ready() {
		return
	}
	hc := st.hc
	last := st.reqEnd && len(st.reqTrail) == 0
	if rest := x.replay.Rest(); len(rest) > 0 {
		k := up.writeData(st.x.upID, rest, last && len(st.reqPend) == 0)
		x.replay.Sent(k)
		if k < len(rest) || !st.x.upOpen {
			return // OnWindowOpen brings us back
		}
		if last && len(st.reqPend) == 0 {
			st.requestSent()
			return
		}
	}
	if len(st.reqPend) > 0 {
		k := up.writeData(st.x.upID, st.reqPend, last)
		if k > 0 {
			x.keepSent(hc.h, st.reqPend[:k])
			hc.sc.Consumed(st.id, k)
			hc.kick()
			st.reqPend = st.reqPend[:copy(st.reqPend, st.reqPend[k:])]
		}
		if len(st.reqPend) > 0 || !st.x.upOpen {
			return
		}
		if last {
			st.requestSent()
			return
		}
	}
	if st.reqEnd {
		if len(st.reqTrail) > 0 {
			up.writeTrailers(st.x.upID, st.reqTrail)
		} else {
			up.writeData(st.x.upID, nil, true)
		}
		st.requestSent()
	}
}

// requestSent: the whole request is upstream; the response head is due.
func (st *h2Stream) requestSent() {
	st.x.sentAll = true
	if st.x.resp == respNone {
		st.upDeadline = engine.Now() + st.x.respHT(st.hc.h)
	}
}

// ---- h2c upstream events (upSink, through sinks.go) ----

// upHeaders passes a 1xx or the final response head on.
func (st *h2Stream) upHeaders(hd *h2.Headers) {
	x := &st.x
	hc := st.hc
	now := engine.Now()
	if hd.Status < 200 {
		if st.x.sentAll {
			st.upDeadline = now + st.x.respHT(hc.h)
		}
		if hd.Status == 100 && (!x.expect100 || x.cont100 || st.reqEnd) {
			return
		}
		x.cont100 = x.cont100 || hd.Status == 100
		if hc.sc.WriteHeaders(st.id, hc.h2ToH2Fields(hd), false) == nil {
			hc.kick()
		}
		return
	}
	x.headAt = now
	hc.h.m.upHeadDur.Update(engine.Dur(now - x.sentAt).Seconds())
	x.status = hd.Status
	if err := hc.sc.WriteHeaders(st.id, hc.h2ToH2Fields(hd), hd.EndStream); err != nil {
		st.abortH2C(errUpBadResponse)
		st.afterFailure(x.u, &proxyError{kind: errUpBadResponse, err: err}, false, false)
		return
	}
	x.resp = respStarted
	hc.kick()
	st.upDeadline = now + st.x.readT(hc.h)
	if hd.EndStream {
		st.h2cDone()
		st.outEnd = true
		st.sentEnd()
	}
}

// upData passes response DATA on; what the client's window cannot take
// yet waits in pend, uncredited upstream.
func (st *h2Stream) upData(data []byte, end bool) {
	st.upDeadline = engine.Now() + st.x.readT(st.hc.h)
	up, id := st.x.up, st.x.upID
	if end {
		st.h2cDone()
	}
	if k := st.sendBody(data, end); k > 0 {
		up.consumed(id, k)
	}
	st.maybeDone()
}

// upTrailers ends the response with its trailers.
func (st *h2Stream) upTrailers(fields []hpack.HeaderField) {
	st.h2cDone()
	hc := st.hc
	hc.hf = header.AppendH2Trailers(hc.hf[:0], nil, header.H2(fields)) // those that may travel
	st.finishOut(hc.hf)
	st.maybeDone()
}

// upReset: the upstream stream failed; refused: it was not processed.
func (st *h2Stream) upReset(err *proxyError, refused bool) {
	x := &st.x
	if !st.x.upOpen || st.done {
		return
	}
	st.x.upOpen = false
	u := x.u
	endAttemptOn(u, resultFor(err.kind))
	if blames(err.kind, false, refused) {
		st.hc.h.failed(u, engine.Now())
	}
	st.afterFailure(u, err, false, refused)
}

// upWindowOpen lets the request body go on.
func (st *h2Stream) upWindowOpen() { st.pumpRequestH2C() }

// h2cDone: the upstream response is complete.
func (st *h2Stream) h2cDone() {
	x := &st.x
	if !st.x.upOpen {
		return
	}
	st.x.upOpen = false
	x.resp = respDone
	st.upDone = true
	st.upDeadline = 0
	endAttemptOn(x.u, resOK)
	st.hc.h.succeeded(x.u)
	st.x.up.release(st.x.upID)
	st.hc.freeSlot(st)
}

// h2cTimeout: no response head, or no DATA, in time.
func (st *h2Stream) h2cTimeout() {
	x := &st.x
	u := x.u
	st.abortH2C(errUpTimeout)
	st.hc.h.failed(u, engine.Now())
	st.afterFailure(u, errUpTimeoutErr, false, false)
}

// abortH2C cancels the upstream stream in flight, if any.
func (st *h2Stream) abortH2C(kind errKind) {
	if !st.x.upOpen {
		return
	}
	st.x.upOpen = false
	st.upDeadline = 0
	endAttemptOn(st.x.u, resultFor(kind))
	st.x.up.cancel(st.x.upID)
}

// releaseH2C runs when the stream finishes: nothing may stay open upstream.
func (st *h2Stream) releaseH2C() {
	st.abortH2C(errClientAbort)
}
