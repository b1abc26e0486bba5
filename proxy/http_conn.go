package proxy

import (
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h1"
	exch "github.com/sluice-proxy/sluice/proxy/exchange"
	"github.com/sluice-proxy/sluice/proxy/header"
)

// A client connection is a loop of exchanges, one at a time:
//
//	csIdle ──first byte──▶ csHead ──head──▶ csBody ──body read──▶ csWait ──response sent──▶ csIdle
//	                                          │                    │
//	                                          └──── 101 ───────────┴──▶ csTunnel
//
// Any state can go to csClosing (the engine's graceful close or an abort).
// While a request is in flight the connection reads only that request's
// body; bytes of the next (pipelined) request stay in the engine, unread
// past one read buffer, until the response is complete: requests are
// answered in order and never two at once.
type cstate uint8

const (
	csIdle    cstate = iota // between requests (keep-alive), or before the first
	csHead                  // some bytes of a head have arrived
	csBody                  // forwarding the request body
	csWait                  // request read; the response is on its way
	csTunnel                // upgraded: raw relay both ways
	csClosing               // closing: nothing more is read or started
)

// Reasons the client's reads are paused; reads resume when none is left.
const (
	pauseDial     uint8 = 1 << iota // no upstream connection yet: the body waits in the engine
	pauseUpstream                   // the upstream is over its high-water mark
	pauseHold                       // pipelined bytes wait for the current response to end
)

var slash = []byte("/")

var continue100 = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// How the response body is framed to the client.
type outFraming uint8

const (
	outNone    outFraming = iota // no body
	outLength                    // Content-Length, as the upstream sent it
	outChunked                   // sluice chunks (upstream chunked or until-close, HTTP/1.1 client)
	outClose                     // until close (HTTP/1.0 client, no length)
)

// clientConn is the handler of one client connection. Loop-owned.
type clientConn struct {
	h  *HTTP
	ls *loopState
	c  *engine.Conn

	ip           string // client address for X-Forwarded-For and the log
	trusted      bool   // ip is in TrustedProxies
	tlsVer, alpn string // for the access log; "" on cleartext
	scheme       string // http or https, for X-Forwarded-Proto

	parser h1.Parser
	req    h1.Request     // valid only during the OnData that parsed it
	body   h1.BodyDecoder // request body

	state    cstate
	paused   uint8
	draining bool // OnDrain: the next response closes the connection
	eof      bool // the client half-closed
	dead     bool // OnClosed ran
	tunneled bool // an upgrade's tunnel started: OnClosed accounts for it
	served   int  // exchanges completed

	x   exchange
	in  carry  // a partial head or chunk line (see carry)
	buf []byte // scratch for heads and chunk framing; Write copies
	tmp []byte // scratch for a rewritten target
}

// respState is how far the response to the client has gone, for both
// client kinds. A 100 Continue passed on is cont100, not a state: the
// final response is still to come.
type respState uint8

const (
	respNone    respState = iota // no final head sent yet
	respStarted                  // the final head went to the client
	respDone                     // the response is complete (or was sluice's own)
	respCut                      // the upstream broke after the head: the client must see a cut
)

// exchange is the state of the request in flight. It is reset, not
// reallocated, for each request.
type exchange struct {
	rt   *route
	u    *Upstream // upstream of the current attempt
	uc   *upConn   // connection of the current attempt (dialing or busy)
	head []byte    // request head as sent upstream, kept for a retry

	replay    exch.Replay // body bytes sent, kept for a retry (retry.go)
	bodyTaken int64       // body bytes (as framed upstream) taken from the client and sent; replays not counted

	mc         h1.MethodClass
	minor      int
	idempotent bool
	reqClose   bool // the client asked to close after this exchange
	expect100  bool
	upgrade    bool
	reqChunked bool
	reqDone    bool // the request body was read from the client to its end
	sentAll    bool // ... and written to the upstream

	cont100    bool // a 100 Continue was passed to the client
	resp       respState
	closeAfter bool // close the client connection after this exchange
	closeCause diag.Outcome
	out        outFraming

	attempts int
	status   int
	end      errKind
	bytesIn  int64 // request body bytes from the client
	bytesOut int64 // response body bytes to the client

	start, sentAt, headAt int64 // engine clock: head read, request sent, response head
	body                  bodyClock

	logb           []byte // method, target, host and user agent, copied for the access log
	mEnd, tEnd     int
	hEnd           int    // end of the host in logb; the user agent follows
	reqID          []byte // X-Request-Id: the client's, or generated
	upAddr         string
	forceFreshDial bool

	// An h2c upstream (h1h2c.go): a stream of a multiplexed connection
	// instead of uc.
	up         *h2UpConn
	upID       uint32
	upOpen     bool                // the upstream stream is in flight
	upFields   []hpack.HeaderField // the request as HTTP/2 fields, kept for retries
	upTrail    []hpack.HeaderField // the request's trailers as HTTP/2 fields
	upPend     []byte              // request body bytes the upstream's window has not taken yet
	upUncredit int                 // response bytes written to the client but not credited upstream yet
}

func (x *exchange) reset() {
	*x = exchange{head: x.head[:0], replay: x.replay, logb: x.logb[:0], reqID: x.reqID[:0],
		upFields: x.upFields[:0], upTrail: x.upTrail[:0], upPend: x.upPend[:0]}
	x.replay.Reset()
}

func newClientConn(h *HTTP, ls *loopState, c *engine.Conn) *clientConn {
	cc := &clientConn{h: h, ls: ls, c: c, scheme: h.cfg.Scheme}
	cc.parser.Config = h.reqCfg
	cc.body.Config = h.reqCfg
	cc.ip = remoteIP(c)
	cc.trusted = trustedAddr(h.cfg.TrustedProxies, cc.ip)
	return cc
}

// pause and unpause track why reads are paused; the socket is paused
// while any reason holds. While a request body is being read, the body
// timeout runs only when reads are not paused by sluice itself.
func (cc *clientConn) pause(r uint8) {
	if cc.paused == 0 {
		cc.c.PauseRead()
	}
	cc.paused |= r
	if cc.state == csBody {
		cc.c.ClearTimer(engine.TimerIdle)
		cc.x.body.hold(cc.ls.l.Now()) // sluice, not the client, stops the body
		cc.c.ClearTimer(engine.TimerHeader)
	}
}

func (cc *clientConn) unpause(r uint8) {
	if cc.paused&r == 0 {
		return
	}
	cc.paused &^= r
	if cc.paused != 0 || cc.dead || cc.state == csClosing {
		return
	}
	cc.c.ResumeRead() // kept bytes are redelivered after this callback
	switch cc.state {
	case csBody:
		cc.c.SetTimer(engine.TimerIdle, cc.h.idleTimeout)
		if !cc.x.expect100 || cc.x.cont100 {
			cc.x.body.unhold(cc.ls.l.Now())
		}
		cc.armBody()
	case csTunnel:
		cc.c.SetTimer(engine.TimerIdle, cc.h.tunnelIdle)
	}
}

// ---- engine.Handler ----

// OnOpen arms the deadline for the first request head.
func (cc *clientConn) OnOpen(c *engine.Conn) {
	// On a TLS listener OnOpen runs after the handshake; Accept ran before
	// the engine attached the TLS state.
	if c.IsTLS() {
		cc.scheme = "https"
		cc.tlsVer, cc.alpn = tlsLogInfo(c)
	}
	c.Advance(diag.DataTransfer)
	c.SetTimer(engine.TimerHeader, cc.h.headerTimeout)
}

// OnData reads heads, request bodies and tunnel bytes. It returns less
// than len(b) only when it needs more bytes or has paused reads: the
// engine keeps the rest and delivers it again.
//
// Once the connection is closing it returns 0: Close drops the engine's
// input buffer, and a count > 0 returned from a redelivery of kept bytes
// would make the engine slice the dropped buffer (engine/conn.go
// deliverBuffered does not re-check after the callback).
func (cc *clientConn) OnData(c *engine.Conn, b []byte) int {
	buf, lc := cc.in.join(b)
	n := 0
loop:
	for n < len(buf) {
		var k int
		switch cc.state {
		case csIdle, csHead:
			k = cc.readHead(buf[n:])
		case csBody:
			k = cc.readBody(buf[n:])
		case csTunnel:
			cc.tunnelFromClient(buf[n:])
			k = len(buf) - n
		case csWait:
			cc.pause(pauseHold) // the next request waits for this response
			break loop
		default:
			n = len(buf)
			break loop
		}
		n += k
		if cc.state == csClosing || k == 0 || cc.paused != 0 {
			break
		}
	}
	if cc.state == csClosing {
		cc.in.reset()
		return 0
	}
	return cc.in.settle(buf, lc, n, cc.paused != 0)
}

// OnReadEOF is the client's FIN.
func (cc *clientConn) OnReadEOF(c *engine.Conn) {
	cc.eof = true
	switch cc.state {
	case csIdle, csHead:
		cc.state = csClosing
		c.Close(diag.PeerClosed)
	case csBody:
		cc.clientFailed(errClientAbortErr)
	case csTunnel:
		if uc := cc.x.uc; uc != nil {
			uc.c.CloseWrite()
		} else {
			cc.state = csClosing
			c.Close(diag.PeerClosed)
		}
	case csWait:
		// A half-close after a whole request: the response still goes
		// out, then the connection closes (startResponse / finish).
		cc.x.closeAfter = true
	}
}

// OnWritable resumes the upstream once the client drained.
func (cc *clientConn) OnWritable(c *engine.Conn) {
	if cc.x.up != nil {
		cc.creditH2C()
		return
	}
	if uc := cc.x.uc; uc != nil && uc.serves(cc) {
		rt := cc.x.readT(cc.h)
		if uc.state == ucTunnel {
			rt = cc.h.tunnelIdle
		}
		uc.attempt().resume(rt)
	}
}

// OnTimer handles the header, idle and body deadlines.
func (cc *clientConn) OnTimer(c *engine.Conn, k engine.TimerKind) {
	switch {
	case k == engine.TimerHeader && cc.state == csIdle && cc.draining && cc.served == 0 && c.Successor():
		cc.state = csClosing // a fresh connection at a restart sent nothing
		c.Close(diag.Clean)
	case k == engine.TimerHeader && cc.state == csIdle:
		cc.state = csClosing // nothing was sent: close without a word
		c.Close(diag.HeaderTimeout)
	case k == engine.TimerHeader && cc.state == csHead:
		cc.x.reset()
		cc.x.start = engine.Now()
		cc.x.minor = 1
		cc.x.closeAfter = true
		cc.x.closeCause = diag.HeaderTimeout
		cc.respondError(errHeaderTimeoutErr)
	case k == engine.TimerIdle && cc.state == csIdle:
		cc.state = csClosing
		c.Close(diag.IdleTimeout)
	case k == engine.TimerIdle && cc.state == csBody:
		cc.h.bm.bodyTimeout(false, errBodyTimeout)
		cc.clientFailed(errBodyTimeoutErr)
	case k == engine.TimerHeader && cc.state == csBody:
		cc.armBody()
	case k == engine.TimerIdle && cc.state == csTunnel:
		cc.tunnelIdle()
	case k == engine.TimerProto && cc.x.upOpen:
		cc.h2cFailed(errUpTimeoutErr)
	}
}

// freshGrace bounds how long a restart's drain waits for the first request
// of a connection accepted just before it.
const freshGrace = int64(1e9) // 1 s

// OnDrain: an idle connection closes now; otherwise the response in
// flight (or to the request being read) carries Connection: close and
// the connection closes after it. A tunnel runs to its end, bounded by
// the drain deadline.
func (cc *clientConn) OnDrain(c *engine.Conn) {
	cc.draining = true
	if cc.state == csIdle && cc.served == 0 && c.Successor() {
		// A restart, and a connection whose client is about to send its
		// first request (accepted moments ago): serve it, with
		// Connection: close, or close if nothing comes within freshGrace.
		if cc.h.headerTimeout > freshGrace {
			c.SetTimer(engine.TimerHeader, freshGrace)
		}
		return
	}
	if cc.state == csIdle {
		cc.state = csClosing
		c.Close(diag.Clean)
	}
}

// OnClosed abandons the exchange in flight: its upstream connection is
// reset (the upstream must not take a cut request for a whole one).
func (cc *clientConn) OnClosed(c *engine.Conn, t *diag.Trace) {
	if cc.dead {
		return
	}
	cc.dead = true
	prev := cc.state
	cc.state = csClosing
	x := &cc.x
	if cc.tunneled {
		// However the tunnel ended (the client, the idle timeout, the
		// upstream), it is accounted here, once.
		cc.h.m.tunnelEnd(tunH1)
		if uc := x.uc; uc != nil {
			x.uc = nil
			if cleanOutcome(t.Outcome) {
				uc.end(diag.Clean, false)
			} else {
				uc.end(diag.Aborted, true)
			}
		}
		cc.account()
		return
	}
	switch prev {
	case csHead, csBody, csWait:
		if prev == csHead {
			return // nothing was started
		}
		if x.end == errNone {
			x.end = errClientAbort
		}
		if x.resp == respNone {
			x.status = 499 // nginx's "client closed request"
		}
		if uc := x.uc; uc != nil {
			x.uc = nil
			endAttemptOn(uc.u, resAborted)
			uc.discard(x.resp != respDone)
		}
		cc.cancelH2C(resAborted)
		cc.account()
	}
}

// ---- request head ----

func (cc *clientConn) readHead(b []byte) int {
	c := cc.c
	n, err := cc.parser.ParseRequest(&cc.req, b)
	if err == h1.ErrNeedMore {
		if cc.state == csIdle {
			cc.state = csHead
			if cc.served > 0 {
				c.ClearTimer(engine.TimerIdle)
				c.SetTimer(engine.TimerHeader, cc.h.headerTimeout)
			}
		}
		return 0
	}
	c.ClearTimer(engine.TimerHeader)
	c.ClearTimer(engine.TimerIdle)
	cc.x.reset()
	cc.x.start = cc.ls.l.Now()
	if err != nil {
		cc.state = csHead
		cc.x.minor = 1
		cc.x.closeAfter = true
		cc.x.closeCause = diag.ProtocolError
		cc.respondError(err)
		return len(b)
	}
	cc.startExchange()
	return n // OnData goes on with the body, if the upstream is ready
}

// startExchange routes the request just parsed, builds the head to send
// and starts the first attempt. Everything the exchange needs from the
// request is copied here: cc.req points into the engine's read buffer.
func (cc *clientConn) startExchange() {
	x := &cc.x
	req := &cc.req
	h := cc.h
	x.mc = req.MethodClass()
	x.minor = req.Minor
	x.idempotent = idempotent(req.Method)
	x.reqClose = req.Close
	x.expect100 = req.Expect100
	x.upgrade = req.Upgrade
	x.reqChunked = req.Body == h1.BodyChunked
	host := req.Host
	if req.Authority != nil {
		host = req.Authority
	}
	target := originForm(req.Target, req.Form, cc.tmp)
	noteRequest(x, cc.ls, req.Method, target, host, func(yield func(name, value []byte) bool) {
		for _, f := range req.Headers.Fields() {
			if !yield(f.Name, f.Value) {
				return
			}
		}
	})
	cc.body.ForRequest(req)
	x.reqDone = cc.body.Done()
	cc.state = csBody
	if x.reqDone {
		cc.state = csWait
	} else if !x.upgrade {
		x.body.begin(x.start)
		if x.expect100 {
			x.body.hold(x.start) // the client waits for our 100 Continue
		}
	}
	if x.mc == h1.MethodCONNECT {
		cc.respondError(errMethodErr)
		return
	}
	routePath := target
	if req.Form == h1.AsteriskForm {
		routePath = slash
	}
	x.rt = h.rt.Load().match(host, routePath)
	if x.rt == nil {
		cc.respondError(errNoRouteErr)
		return
	}
	// The head's Host and X-Forwarded fields do not depend on which
	// upstream is picked, except with RewriteHost: build it per attempt
	// then (connect does).
	x.armReplay()
	cc.connect(nil, host, target)
	if cc.state == csBody && cc.paused == 0 {
		cc.armBody() // attached at once: the body clock runs
	}
}

// idempotent reports whether a method may be retried (RFC 9110 §9.2.2,
// less the ones sluice does not forward).
func idempotent[T ~string | ~[]byte](m T) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// connect starts an attempt: pick an upstream, then reuse a pooled
// connection or dial. On the first attempt target is set and the head is
// built from cc.req (valid only now); retries resend that head, with the
// Host line replaced when RewriteHost names another upstream.
func (cc *clientConn) connect(avoid *Upstream, host, target []byte) {
	x := &cc.x
	ls := cc.ls
	u := x.u
	if !x.forceFreshDial || u == nil {
		u = ls.pick(x.rt, avoid, ls.l.Now())
	}
	switch {
	case target != nil:
		in := reqHeadInfo{
			target: target, host: host, upstream: u, clientIP: cc.ip, scheme: cc.scheme, trusted: cc.trusted, reqID: x.reqID,
			hostHdr: x.rt.HostHeader, scratch: &cc.ls.hs,
		}
		x.head = cc.h.appendRequestHead(x.head[:0], &cc.req, &in)
		if x.rt.hasH2C {
			x.upFields = cc.h.appendH2CRequestFields(x.upFields[:0], &cc.req, &in)
		}
	case cc.h.cfg.RewriteHost && x.rt.HostHeader == "" && u != x.u:
		x.head = replaceHost(x.head, u.Host())
	}
	if u.H2() {
		cc.connectH2C(u)
		return
	}
	if uc := ls.attemptOn(x, u, cc); uc != nil {
		cc.pause(pauseDial)
		ls.dial(uc)
	}
}

// replaceHost rewrites the Host line of a head built by appendRequestHead,
// where it is the first field.
func replaceHost(head []byte, host string) []byte {
	i := bytesIndexCRLF(head, 0) + 2 // past the request line
	j := bytesIndexCRLF(head, i) + 2 // past the Host line
	if i < 2 || j < i+2 {
		return head
	}
	rest := append([]byte(nil), head[j:]...)
	head = append(head[:i], "Host: "...)
	head = append(head, host...)
	head = append(head, "\r\n"...)
	return append(head, rest...)
}

func bytesIndexCRLF(b []byte, from int) int {
	for i := from; i+1 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' {
			return i
		}
	}
	return -1
}

// attach starts the attempt on a connected upstream connection: the head
// (and any body bytes a retry holds) goes out, and the client's body flows.
func (cc *clientConn) attach(uc *upConn) {
	x := &cc.x
	x.uc = uc
	uc.cc = cc
	uc.readT = x.readT(cc.h)
	uc.prepare(x.mc)
	uc.c.Write(x.head)
	if x.replay.Len() > 0 {
		uc.c.Write(x.replay.Bytes())
		x.replay.Resent()
	}
	x.sentAt = cc.ls.l.Now()
	if x.reqDone {
		x.sentAll = true
	}
	if x.reqDone || x.expect100 {
		uc.c.SetTimer(engine.TimerProto, cc.x.respHT(cc.h))
	}
	cc.unpause(pauseDial)
}

// ---- request body ----

// bodyStep is what forwarding one piece of request body led to.
type bodyStep int

const (
	stepOn    bodyStep = iota // read on
	stepEnded                 // the exchange ended: drop the input
	stepRetry                 // the write failed and a retry is connecting: stop reading
	stepFull                  // the upstream takes no more now
)

// readBody decodes the request body and forwards it to the attempt in
// flight: an HTTP/1.1 upstream connection or an h2c stream.
func (cc *clientConn) readBody(b []byte) int {
	x := &cc.x
	h2c := x.up != nil
	switch {
	case h2c && (!x.upOpen || !x.up.ready()), !h2c && (x.uc == nil || x.uc.state != ucBusy):
		cc.pause(pauseDial) // between attempts: the body waits in the engine
		return 0
	case h2c && (len(x.upPend) > 0 || len(x.replay.Rest()) > 0):
		cc.pause(pauseUpstream)
		return 0
	}
	n := 0
decode:
	for n < len(b) && !cc.body.Done() {
		data, k, err := cc.body.Decode(b[n:])
		if err == h1.ErrNeedMore {
			break
		}
		if err != nil {
			cc.clientFailed(&proxyError{kind: errBadRequest, err: err})
			return len(b)
		}
		n += k
		if len(data) == 0 {
			continue
		}
		x.bytesIn += int64(len(data))
		var r bodyStep
		if h2c {
			r = cc.sendBodyH2C(data)
		} else {
			r = cc.sendBody(data)
		}
		switch r {
		case stepEnded:
			return len(b)
		case stepRetry:
			return n
		case stepFull:
			break decode
		}
	}
	if cc.body.Done() {
		if h2c {
			cc.bodyDoneH2C()
		} else {
			cc.requestDone()
		}
		return n
	}
	if cc.paused == 0 {
		cc.c.SetTimer(engine.TimerIdle, cc.h.idleTimeout)
	}
	return n
}

// sendBody forwards request body data, chunking it again when it came
// chunked (chunk extensions are not forwarded). One Write per piece, so
// a write failure that starts a retry never splits a chunk's framing.
func (cc *clientConn) sendBody(data []byte) bodyStep {
	x := &cc.x
	uc := x.uc
	if x.reqChunked {
		cc.buf = h1.AppendChunk(cc.buf[:0], data)
		cc.write(uc, cc.buf)
	} else {
		cc.write(uc, data)
	}
	if cc.state != csBody {
		return stepEnded
	}
	if x.uc == nil || x.uc.state != ucBusy {
		return stepRetry // the write failed; a retry is connecting
	}
	if x.uc != uc {
		// The write failed and the retry went out at once on a pooled
		// connection. Not reached today (a write can only fail on a
		// stale reused connection, and its retry always dials), kept so
		// that a change to the retry rules cannot strand received body
		// bytes.
		return stepOn
	}
	if uc.c.OverHighWater() {
		cc.pause(pauseUpstream)
		uc.c.NotifyWritable()
	}
	if !x.sentAll && !uc.headDone && x.expect100 {
		uc.c.SetTimer(engine.TimerProto, cc.x.respHT(cc.h))
	}
	return stepOn
}

// write sends request body bytes upstream, keeping a copy while a retry
// is still possible. The copy is taken first: if the write fails and
// starts a retry at once, the retry sends these bytes too.
func (cc *clientConn) write(uc *upConn, p []byte) {
	cc.x.keepSent(cc.h, p)
	uc.c.Write(p)
}

// bodyRead: the request body was read from the client to its end; its
// deadlines stop.
func (cc *clientConn) bodyRead() {
	x := &cc.x
	x.reqDone = true
	cc.c.ClearTimer(engine.TimerIdle)
	cc.c.ClearTimer(engine.TimerHeader)
	x.body.stop()
	if cc.state == csBody {
		cc.state = csWait
	}
}

// requestDone runs when the request body has been read to its end.
func (cc *clientConn) requestDone() {
	x := &cc.x
	cc.bodyRead()
	uc := x.uc
	if x.reqChunked {
		cc.buf = header.AppendLastChunk(cc.buf[:0], header.H1(cc.body.Trailers()))
		cc.write(uc, cc.buf)
		if x.uc != uc {
			return // a retry started: attach sends everything and arms the timer
		}
	}
	x.sentAll = true
	if !uc.headDone {
		uc.c.SetTimer(engine.TimerProto, cc.x.respHT(cc.h))
	}
}

// armBody checks the request body's deadlines (bodyClock) and arms
// TimerHeader, which has no other use while a body is read, for the next
// check; a body past one fails with 408.
func (cc *clientConn) armBody() {
	x := &cc.x
	k, due := x.body.check(&cc.h.body, cc.ls.l.Now(), x.bytesIn)
	switch {
	case k != errNone:
		cc.h.bm.bodyTimeout(false, k)
		cc.clientFailed(bodyErr(k))
	case due > 0:
		cc.c.SetTimer(engine.TimerHeader, due)
	default:
		cc.c.ClearTimer(engine.TimerHeader)
	}
}

// clientFailed ends an exchange the client broke (bad body framing, a
// stall, a FIN mid-body). The upstream connection is reset.
func (cc *clientConn) clientFailed(err *proxyError) {
	x := &cc.x
	x.end = err.kind
	x.closeAfter = true
	if uc := x.uc; uc != nil {
		x.uc = nil
		endAttemptOn(uc.u, resAborted)
		uc.discard(true)
	}
	cc.cancelH2C(resAborted)
	switch err.kind {
	case errBodyTimeout, errBodyDeadline, errBodyRate:
		x.closeCause = diag.IdleTimeout
	case errClientAbort:
		x.closeCause = diag.PeerClosed
	default:
		x.closeCause = diag.ProtocolError
	}
	if x.resp == respNone {
		cc.respondError(err)
		return
	}
	x.resp = respCut
	cc.finish()
}

// ---- response ----

// upgrade takes the upstream's 101 when the client asked for an upgrade.
func (cc *clientConn) upgrade(uc *upConn, rest []byte) bool {
	if !cc.x.upgrade {
		return false
	}
	cc.startTunnel(uc, rest)
	return true
}

// interim handles a 1xx other than 101: 100 Continue goes to a client that
// asked for it, other interim responses (103 Early Hints, ...) to HTTP/1.1
// clients; the response header timeout starts again.
func (cc *clientConn) interim(uc *upConn, resp *h1.Response) {
	x := &cc.x
	uc.c.SetTimer(engine.TimerProto, cc.x.respHT(cc.h))
	if x.minor == 0 {
		return
	}
	if resp.Status == 100 {
		if x.expect100 && !x.cont100 && !x.reqDone {
			x.cont100 = true
			cc.c.Write(continue100)
			if cc.paused == 0 && cc.state == csBody {
				x.body.unhold(cc.ls.l.Now()) // the client's turn now
				cc.armBody()
			}
		}
		return
	}
	cc.buf = cc.h.appendResponseHead(cc.buf[:0], resp, respHeadOpts{})
	cc.c.Write(cc.buf)
}

// startResponse sends the final response head to the client.
func (cc *clientConn) startResponse(uc *upConn, resp *h1.Response) bool {
	x := &cc.x
	now := cc.ls.l.Now()
	x.headAt = now
	cc.h.m.upHeadDur.Update(engine.Dur(now - x.sentAt).Seconds())
	x.status = resp.Status
	switch {
	case resp.Body == h1.BodyNone:
		x.out = outNone
	case resp.Body == h1.BodyLength:
		x.out = outLength
	case x.minor >= 1:
		x.out = outChunked
	default:
		x.out = outClose
	}
	cc.buf = cc.h.appendResponseHead(cc.buf[:0], resp, cc.headOpts())
	x.resp = respStarted
	cc.c.Write(cc.buf)
	return uc.serves(cc)
}

// headOpts frames the final response head once x.out is decided. The
// connection closes after this response when the client's request body
// is not all read (it would be taken for the next request), when draining
// or asked to, or when the body runs until close.
func (cc *clientConn) headOpts() respHeadOpts {
	x := &cc.x
	if !x.reqDone || cc.draining || x.reqClose || cc.eof || x.out == outClose {
		x.closeAfter = true
	}
	return respHeadOpts{
		chunked:   x.out == outChunked,
		close:     x.closeAfter,
		keepAlive: x.minor == 0 && !x.closeAfter,
	}
}

// writeOut writes response body bytes to the client, as a chunk when
// sluice chunks.
func (cc *clientConn) writeOut(data []byte) {
	cc.x.bytesOut += int64(len(data))
	if cc.x.out == outChunked {
		cc.buf = h1.AppendChunk(cc.buf[:0], data)
		cc.c.Write(cc.buf)
	} else {
		cc.c.Write(data)
	}
}

// responseBody forwards response body data, pausing the upstream while
// the client is over its high-water mark.
func (cc *clientConn) responseBody(uc *upConn, data []byte, _ bool) bool {
	cc.writeOut(data)
	if !uc.serves(cc) {
		return false // the write failed and ended the exchange
	}
	if cc.c.OverHighWater() {
		uc.attempt().pause()
		cc.c.NotifyWritable()
	}
	return true
}

// endResponse completes the response: the last chunk when sluice chunks,
// then the exchange ends.
func (cc *clientConn) endResponse(uc *upConn, trailers *h1.Headers) {
	x := &cc.x
	if x.out == outChunked {
		cc.buf = header.AppendLastChunk(cc.buf[:0], header.H1(trailers))
		cc.c.Write(cc.buf)
	}
	x.resp = respDone
	cc.finish()
}

// attemptFailed handles the failure of the current attempt on uc: retry
// when allowed, else an error response, or — when the response head is
// out already — a cut the client can see.
func (cc *clientConn) attemptFailed(uc *upConn, err *proxyError) {
	x := &cc.x
	if !uc.serves(cc) || x.uc != uc {
		return
	}
	u := uc.u
	stale := cc.h.failAttempt(x, uc, err)
	if cc.dead {
		return
	}
	cc.afterFailure(u, err, stale, false)
}

func (cc *clientConn) reconnect(avoid *Upstream) { cc.connect(avoid, nil, nil) }
func (cc *clientConn) reopenH2C(u *Upstream)     { cc.connectH2C(u) }

// afterFailure retries (retry.go), answers with an error, or — when the
// response head is out already — cuts the response so the client can see.
func (cc *clientConn) afterFailure(u *Upstream, err *proxyError, stale, refused bool) {
	x := &cc.x
	if x.retry(cc.h, cc, u, err.kind, stale, refused) {
		return
	}
	x.end = err.kind
	if x.resp != respNone {
		x.resp = respCut
		cc.finish()
		return
	}
	cc.respondError(err)
}

// respondError answers the request with sluice's own error response.
func (cc *clientConn) respondError(err error) {
	x := &cc.x
	code := statusFor(err)
	x.status = code
	x.end = kindOf(err)
	if !x.reqDone || cc.draining || x.reqClose || cc.eof {
		x.closeAfter = true
	}
	cc.buf = appendErrorResponse(cc.buf[:0], code, x.closeAfter, x.mc == h1.MethodHEAD)
	x.resp = respDone
	x.out = outLength
	cc.c.Write(cc.buf)
	cc.finish()
}

// finish ends the exchange: log, count, release the upstream connection,
// then either wait for the next request or close.
func (cc *clientConn) finish() {
	x := &cc.x
	x.body.stop()
	cc.c.ClearTimer(engine.TimerHeader) // the body deadline's, if it ran
	cc.releaseH2C()
	if uc := x.uc; uc != nil {
		x.uc = nil
		endAttemptOn(uc.u, resOK)
		cc.h.succeeded(uc.u)
		reusable := x.resp == respDone && x.sentAll && !uc.resp.Close
		uc.release(reusable)
	}
	cc.account()
	cc.served++
	if x.resp == respCut {
		// The client must be able to tell: no clean end for a length-
		// delimited or until-close body (RST), no last chunk for a
		// chunked one (then FIN).
		cc.state = csClosing
		if x.out == outChunked {
			cc.c.Close(diag.UpstreamError)
		} else {
			cc.c.Abort(diag.UpstreamError)
		}
		return
	}
	if x.closeAfter || cc.eof || cc.draining {
		cc.state = csClosing
		cause := x.closeCause
		if cause == diag.OutcomeNone {
			cause = diag.Clean
		}
		cc.c.Close(cause)
		return
	}
	cc.state = csIdle
	cc.c.SetTimer(engine.TimerIdle, cc.h.idleTimeout)
	cc.unpause(pauseHold | pauseUpstream | pauseDial)
}

// account records the exchange in metrics and the access log.
func (cc *clientConn) account() {
	cc.h.account(&cc.x, cc.ls.l.Now(), cc.c, cc.ip, cc.tlsVer, cc.alpn, cc.x.minor, 0)
}

// ---- upgrade tunnel ----

// startTunnel switches to a raw relay after the upstream's 101.
func (cc *clientConn) startTunnel(uc *upConn, rest []byte) {
	x := &cc.x
	now := engine.Now()
	x.headAt = now
	x.status = 101
	x.resp = respStarted
	// The attempt succeeded: it no longer counts as load for balancing
	// (a tunnel may live for hours); the connection stays busy.
	endAttemptOn(uc.u, resOK)
	cc.h.succeeded(uc.u)
	uc.c.ClearTimer(engine.TimerProto)
	uc.state = ucTunnel
	cc.state = csTunnel
	cc.tunneled = true
	cc.h.m.tunnelStart(tunH1)
	cc.buf = cc.h.appendResponseHead(cc.buf[:0], &uc.resp, respHeadOpts{upgrade: true})
	cc.c.Write(cc.buf)
	if len(rest) > 0 {
		x.bytesOut += int64(len(rest))
		cc.c.Write(rest)
	}
	uc.c.SetTimer(engine.TimerIdle, cc.h.tunnelIdle)
	cc.c.SetTimer(engine.TimerIdle, cc.h.tunnelIdle)
	cc.unpause(pauseHold | pauseUpstream | pauseDial)
}

func (cc *clientConn) tunnelFromClient(b []byte) {
	uc := cc.x.uc
	if uc == nil {
		return
	}
	cc.x.bytesIn += int64(len(b))
	uc.c.Write(b)
	cc.c.SetTimer(engine.TimerIdle, cc.h.tunnelIdle)
	uc.c.SetTimer(engine.TimerIdle, cc.h.tunnelIdle)
	if uc.c.OverHighWater() {
		cc.pause(pauseUpstream)
		uc.c.NotifyWritable()
	}
}

// tunnelEOF passes the upstream's FIN of a tunnel on to the client.
func (cc *clientConn) tunnelEOF(*upConn) { cc.c.CloseWrite() }

// upstreamWritable resumes the client's body (or tunnel bytes) once the
// upstream drained.
func (cc *clientConn) upstreamWritable(*upConn) { cc.unpause(pauseUpstream) }

func (cc *clientConn) tunnelFromUpstream(uc *upConn, b []byte) {
	cc.x.bytesOut += int64(len(b))
	cc.c.Write(b)
	cc.c.SetTimer(engine.TimerIdle, cc.h.tunnelIdle)
	uc.c.SetTimer(engine.TimerIdle, cc.h.tunnelIdle)
	if cc.c.OverHighWater() {
		uc.pauseRead()
		cc.c.NotifyWritable()
	}
}

// tunnelIdle closes both sides of a tunnel nothing moved through.
func (cc *clientConn) tunnelIdle() {
	if uc := cc.x.uc; uc != nil {
		cc.x.uc = nil
		uc.end(diag.IdleTimeout, false)
	}
	cc.state = csClosing
	cc.c.Close(diag.IdleTimeout)
}

// tunnelClosed runs when the upstream side of a tunnel closed: after a
// clean end its FIN has been passed on and the client side finishes on its
// own; otherwise the client is reset so it can tell.
func (cc *clientConn) tunnelClosed(uc *upConn, clean bool) {
	if cc.x.uc == uc {
		cc.x.uc = nil
	}
	uc.cc = nil
	if cc.dead {
		return
	}
	if !clean {
		cc.x.end = errUpReset
		cc.state = csClosing
		cc.c.Abort(diag.UpstreamError)
	}
}
