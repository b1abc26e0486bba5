package proxy

// The two exchanges as upSinks. Each still has one set of methods per
// upstream protocol (http_conn.go and h1h2c.go for clientConn,
// h2stream.go and h2stream_up.go for h2Stream); these adapters route the
// one sink's events to them by the kind of attempt, until the exchange
// is written once.
//
// Exactly one event ends a response: upHead with end set, upBody with end
// set, or upEnd.

func (cc *clientConn) upStart(a upAttempt) {
	if a.up != nil {
		cc.upReady()
		return
	}
	cc.attach(a.uc)
}

func (cc *clientConn) upHead(a upAttempt, h *upRespHead) bool {
	switch {
	case a.up != nil:
		cc.upHeaders(h.h2)
		return !h.end
	case h.status < 200:
		cc.interim(a.uc, h.h1)
		return true
	case !cc.startResponse(a.uc, h.h1):
		return false
	case h.end:
		cc.endResponse(a.uc, nil)
		return false
	}
	return true
}

func (cc *clientConn) upBody(a upAttempt, data []byte, end bool) bool {
	switch {
	case a.up != nil:
		cc.upData(data, end)
		return !end
	case !cc.responseBody(a.uc, data, end):
		return false
	case end:
		cc.endResponse(a.uc, nil)
		return false
	}
	return true
}

func (cc *clientConn) upEnd(a upAttempt, t upRespTrailers) {
	if a.up != nil {
		cc.upTrailers(t.h2)
		return
	}
	cc.endResponse(a.uc, t.h1)
}

func (cc *clientConn) upFail(a upAttempt, err *proxyError, refused bool) {
	if a.up != nil {
		cc.upReset(err, refused)
		return
	}
	cc.attemptFailed(a.uc, err)
}

func (cc *clientConn) upWritable(a upAttempt) {
	if a.up != nil {
		cc.upWindowOpen()
		return
	}
	cc.upstreamWritable(a.uc)
}

func (st *h2Stream) upStart(a upAttempt) {
	if a.up != nil {
		st.upReady()
		return
	}
	st.attach(a.uc)
}

// upHead and upBody pause an HTTP/1.1 upstream while the stream's
// response waits for the client (st.blocked).
func (st *h2Stream) upHead(a upAttempt, h *upRespHead) bool {
	switch {
	case a.up != nil:
		st.upHeaders(h.h2)
		return !h.end
	case h.status < 200:
		st.interim(a.uc, h.h1)
		return true
	case !st.startResponse(a.uc, h.h1, h.raw, h.end):
		return false
	case h.end:
		st.endResponse(a.uc, nil)
		return false
	}
	if st.blocked() {
		a.pause()
	}
	return true
}

func (st *h2Stream) upBody(a upAttempt, data []byte, end bool) bool {
	switch {
	case a.up != nil:
		st.upData(data, end)
		return !end
	case !st.responseBody(a.uc, data, end):
		return false
	case end:
		st.endResponse(a.uc, nil)
		return false
	}
	if st.blocked() {
		a.pause()
	}
	return true
}

func (st *h2Stream) upEnd(a upAttempt, t upRespTrailers) {
	if a.up != nil {
		st.upTrailers(t.h2)
		return
	}
	st.endResponse(a.uc, t.h1)
}

func (st *h2Stream) upFail(a upAttempt, err *proxyError, refused bool) {
	if a.up != nil {
		st.upReset(err, refused)
		return
	}
	st.attemptFailed(a.uc, err)
}

func (st *h2Stream) upWritable(a upAttempt) {
	if a.up != nil {
		st.upWindowOpen()
		return
	}
	st.upstreamWritable(a.uc)
}
