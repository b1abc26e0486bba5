package proxy

import (
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
)

// The two exchanges as upSinks. Each still has one set of methods per
// upstream protocol (http_conn.go and h1h2c.go for clientConn,
// h2stream.go and h2stream_up.go for h2Stream): cell names them, and the
// adapters below, written once, route the one sink's events to them by
// the kind of attempt, until the exchange itself is written once.
//
// Exactly one event ends a response: upHead with end set, upBody with end
// set, or upEnd.

// cell is an exchange's per-protocol half of a sink.
type cell interface {
	// An HTTP/1.1 upstream.
	attach(uc *upConn)
	interim(uc *upConn, resp *h1.Response)
	startFinal(uc *upConn, h *upRespHead) bool
	responseBody(uc *upConn, data []byte, last bool) bool
	endResponse(uc *upConn, trailers *h1.Headers)
	attemptFailed(uc *upConn, err *proxyError)
	upstreamWritable(uc *upConn)
	// held: the client takes no more response bytes now (the HTTP/1.1
	// upstream is paused until the exchange resumes it).
	held() bool

	// An HTTP/2 upstream.
	upReady()
	upHeaders(hd *h2.Headers)
	upData(data []byte, end bool)
	upTrailers(fields []hpack.HeaderField)
	upReset(err *proxyError, refused bool)
	upWindowOpen()
}

func sinkStart[C cell](c C, a upAttempt) {
	if a.up != nil {
		c.upReady()
		return
	}
	c.attach(a.uc)
}

func sinkHead[C cell](c C, a upAttempt, h *upRespHead) bool {
	switch {
	case a.up != nil:
		c.upHeaders(h.h2)
		return !h.end
	case h.status < 200:
		c.interim(a.uc, h.h1)
		return true
	case !c.startFinal(a.uc, h):
		return false
	case h.end:
		c.endResponse(a.uc, nil)
		return false
	}
	if c.held() {
		a.pause()
	}
	return true
}

func sinkBody[C cell](c C, a upAttempt, data []byte, end bool) bool {
	switch {
	case a.up != nil:
		c.upData(data, end)
		return !end
	case !c.responseBody(a.uc, data, end):
		return false
	case end:
		c.endResponse(a.uc, nil)
		return false
	}
	if c.held() {
		a.pause()
	}
	return true
}

func sinkEnd[C cell](c C, a upAttempt, t upRespTrailers) {
	if a.up != nil {
		c.upTrailers(t.h2)
		return
	}
	c.endResponse(a.uc, t.h1)
}

func sinkFail[C cell](c C, a upAttempt, err *proxyError, refused bool) {
	if a.up != nil {
		c.upReset(err, refused)
		return
	}
	c.attemptFailed(a.uc, err)
}

func sinkWritable[C cell](c C, a upAttempt) {
	if a.up != nil {
		c.upWindowOpen()
		return
	}
	c.upstreamWritable(a.uc)
}

func (cc *clientConn) upStart(a upAttempt)                    { sinkStart(cc, a) }
func (cc *clientConn) upHead(a upAttempt, h *upRespHead) bool { return sinkHead(cc, a, h) }
func (cc *clientConn) upBody(a upAttempt, data []byte, end bool) bool {
	return sinkBody(cc, a, data, end)
}
func (cc *clientConn) upEnd(a upAttempt, t upRespTrailers) { sinkEnd(cc, a, t) }
func (cc *clientConn) upFail(a upAttempt, err *proxyError, refused bool) {
	sinkFail(cc, a, err, refused)
}
func (cc *clientConn) upWritable(a upAttempt) { sinkWritable(cc, a) }

// startFinal sends the final head of an HTTP/1.1 upstream's response.
func (cc *clientConn) startFinal(uc *upConn, h *upRespHead) bool { return cc.startResponse(uc, h.h1) }

// held: never; responseBody pauses the upstream itself (output over its
// high-water mark).
func (cc *clientConn) held() bool { return false }

func (st *h2Stream) upStart(a upAttempt)                    { sinkStart(st, a) }
func (st *h2Stream) upHead(a upAttempt, h *upRespHead) bool { return sinkHead(st, a, h) }
func (st *h2Stream) upBody(a upAttempt, data []byte, end bool) bool {
	return sinkBody(st, a, data, end)
}
func (st *h2Stream) upEnd(a upAttempt, t upRespTrailers) { sinkEnd(st, a, t) }
func (st *h2Stream) upFail(a upAttempt, err *proxyError, refused bool) {
	sinkFail(st, a, err, refused)
}
func (st *h2Stream) upWritable(a upAttempt) { sinkWritable(st, a) }

// startFinal sends the final head of an HTTP/1.1 upstream's response
// (the head as received lets it reuse the last translation).
func (st *h2Stream) startFinal(uc *upConn, h *upRespHead) bool {
	return st.startResponse(uc, h.h1, h.raw, h.end)
}

// held: the stream's response waits for the client's window or output.
func (st *h2Stream) held() bool { return st.blocked() }
