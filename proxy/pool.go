package proxy

import (
	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// Upstream connection pools.
//
// Each loop keeps, per upstream, a stack of idle keep-alive connections
// (loopState.pools): the last one released is the first one reused, so
// the warmest connections stay busy and the coldest time out. The stack
// follows demand: it holds up to PoolSize (1024 by default, far more
// than a loop's burst usually needs), and what the load no longer needs
// is purged by age (UpstreamIdleTimeout). A cap near the concurrency
// (the old default, 32) made every request over it dial and close. A
// connection goes back to the pool only when its previous response was
// read to the end, the whole request was sent, neither side asked to
// close, and no byte arrived after the response. An idle connection that
// the upstream closes (FIN or RST), or that sends anything, is dropped at
// once; one left unused for UpstreamIdleTimeout is closed. A connection
// that is still found to be dead when reused (the FIN raced the request)
// is the stale case the retry rules cover.

// pool is one upstream's idle connections on one loop. Loop-owned.
type pool struct {
	idle []*upConn
}

// pool is u's pool on this loop, grown when a reload added upstreams.
func (ls *loopState) pool(u *Upstream) *pool {
	if u.Index() >= len(ls.pools) {
		ls.pools = append(ls.pools, make([]pool, u.Index()+1-len(ls.pools))...)
	}
	return &ls.pools[u.Index()]
}

// h2pool is u's HTTP/2 connections on this loop, grown like pool.
func (ls *loopState) h2pool(u *Upstream) *h2pool {
	if u.Index() >= len(ls.h2pools) {
		ls.h2pools = append(ls.h2pools, make([]h2pool, u.Index()+1-len(ls.h2pools))...)
	}
	return &ls.h2pools[u.Index()]
}

// get pops a usable idle connection to u, or returns nil.
func (ls *loopState) get(u *Upstream) *upConn {
	p := ls.pool(u)
	for n := len(p.idle); n > 0; n = len(p.idle) {
		uc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		u.IdleConns.Add(-1)
		if uc.c.Closed() || uc.c.ReadEOF() {
			uc.state = ucDone
			uc.c.Close(diag.PeerClosed)
			continue
		}
		return uc
	}
	return nil
}

// attemptOn starts an attempt of x on the HTTP/1.1 upstream u for user:
// a pooled connection is attached at once (nil is returned), else a new
// one is returned for the caller to dial (it attaches once open).
func (ls *loopState) attemptOn(x *exchange, u *Upstream, user tunnelSink) *upConn {
	x.beginAttempt(u)
	fresh := x.forceFreshDial
	x.forceFreshDial = false
	capped := u.MaxConns > 0
	if capped && !u.TakeSlot() {
		// At the in-use cap: wait for a slot (queue.go), looking to the
		// user like a connection still dialing.
		uc := newUpConn(ls, u)
		uc.cc = user
		uc.state = ucQueued
		uc.fresh = fresh
		x.uc = uc
		if !ls.enqueue(uc) {
			uc.state = ucDone
			user.upFail(uc.attempt(), errQueueFullErr, false)
		}
		return nil
	}
	if !fresh {
		if uc := ls.get(u); uc != nil {
			uc.slot = capped
			user.upStart(uc.attempt())
			return nil
		}
	}
	uc := newUpConn(ls, u)
	uc.slot = capped
	uc.cc = user
	x.uc = uc
	return uc
}

// dial connects uc; OnOpen or dialFailed follows on the loop.
func (ls *loopState) dial(uc *upConn) {
	uc.u.Dial(ls.l, ls.h.cfg.DialTimeout, uc, uc.dialFailed)
}

// unpool removes uc from its pool (it is closing).
func (ls *loopState) unpool(uc *upConn) {
	p := ls.pool(uc.u)
	for i, x := range p.idle {
		if x == uc {
			copy(p.idle[i:], p.idle[i+1:])
			p.idle[len(p.idle)-1] = nil
			p.idle = p.idle[:len(p.idle)-1]
			uc.u.IdleConns.Add(-1)
			return
		}
	}
}

// drain is the loop's OnDrain hook (process drain), run once per loop by
// the engine before any connection's OnDrain; pooling stops with it
// (Loop.Draining). It closes what is idle: HTTP/1.1 connections at once,
// h2c connections once their streams are done.
func (ls *loopState) drain() {
	ls.closeIdle()
	ls.drainH2C()
}

// closeIdle closes every pooled connection of this loop (drain).
func (ls *loopState) closeIdle() {
	for i := range ls.pools {
		p := &ls.pools[i]
		for len(p.idle) > 0 {
			uc := p.idle[len(p.idle)-1]
			p.idle[len(p.idle)-1] = nil
			p.idle = p.idle[:len(p.idle)-1]
			uc.u.IdleConns.Add(-1)
			uc.state = ucDone
			uc.c.Close(diag.Clean)
		}
	}
}

type ucState uint8

const (
	ucDialing ucState = iota // connecting; cc (if any) waits for it
	ucIdle                   // in the pool
	ucBusy                   // serving cc's exchange
	ucTunnel                 // relaying an upgraded connection for cc
	ucQueued                 // a placeholder waiting for an in-use slot (queue.go); no connection yet
	ucDone                   // closing or closed; never used again
)

// upConn is the handler of one upstream connection. Loop-owned: it lives
// on the loop of the client connections it serves, one at a time.
type upConn struct {
	ls   *loopState
	u    *Upstream
	c    *engine.Conn // nil while dialing
	cc   tunnelSink   // the exchange it serves or is dialed for; nil when idle or orphaned
	head upRespHead   // what upHead is given; raw points into the read buffer

	state      ucState
	slot       bool  // holds one of the upstream's in-use slots (queue.go)
	fresh      bool  // queued: dial a new connection rather than reuse one
	queuedAt   int64 // queued: when it joined the queue (engine clock)
	reused     bool  // served an earlier exchange: a failure before any response byte may just be staleness
	gotByte    bool  // a response byte arrived for the current request
	headDone   bool  // the final response head was parsed
	noReuse    bool  // bytes after the response, or an until-close body: close when done
	readPaused bool  // paused because the client is over its high-water mark
	readT      int64 // the exchange's route's read timeout (attach)
	in         carry

	mc     h1.MethodClass
	parser h1.Parser
	resp   h1.Response
	body   h1.BodyDecoder
}

func newUpConn(ls *loopState, u *Upstream) *upConn {
	uc := &upConn{ls: ls, u: u}
	uc.parser.Config = ls.h.resCfg
	uc.body.Config = ls.h.resCfg
	return uc
}

// dialFailed runs on the loop when the connect failed.
func (uc *upConn) dialFailed(err error) {
	uc.state = ucDone
	uc.dropSlot()
	if cc := uc.cc; cc != nil {
		cc.upFail(uc.attempt(), dialError(err), false)
	}
}

// prepare readies uc for a new request whose method has class mc.
func (uc *upConn) prepare(mc h1.MethodClass) {
	uc.state = ucBusy
	uc.mc = mc
	uc.gotByte, uc.headDone, uc.noReuse = false, false, false
	uc.parser.Reset()
	uc.resp.Reset()
	uc.in.reset()
	uc.c.ClearTimer(engine.TimerIdle)
	uc.u.BusyConns.Add(1)
}

// release ends uc's exchange: back to the pool when it can be reused,
// else closed gracefully.
func (uc *upConn) release(reusable bool) {
	if uc.state == ucBusy || uc.state == ucTunnel {
		uc.u.BusyConns.Add(-1)
	}
	uc.cc = nil
	ls := uc.ls
	p := ls.pool(uc.u)
	if !reusable || uc.noReuse || ls.l.Draining() || uc.c.Closed() || uc.c.ReadEOF() || len(p.idle) >= ls.h.cfg.PoolSize {
		uc.state = ucDone
		uc.c.Close(diag.Clean)
		uc.dropSlot()
		return
	}
	uc.state = ucIdle
	uc.reused = true
	uc.readPaused = false
	uc.c.ResumeRead() // an idle connection must read to see the upstream's FIN
	uc.c.ClearTimer(engine.TimerProto)
	uc.c.SetTimer(engine.TimerIdle, ls.h.upIdleTimeout)
	p.idle = append(p.idle, uc)
	uc.u.IdleConns.Add(1)
	uc.dropSlot() // a request waiting here takes this very connection
}

// discard ends uc after a failure or an abandoned exchange: an RST when
// abort is set (the upstream must see that the request was not completed),
// else a graceful close.
func (uc *upConn) discard(abort bool) {
	if abort {
		uc.end(diag.UpstreamError, true)
	} else {
		uc.end(diag.Clean, false)
	}
}

// end takes uc out of service and closes it with outcome o (reset when
// abort). Busy and tunnel connections leave the busy gauge exactly once.
func (uc *upConn) end(o diag.Outcome, abort bool) {
	if uc.state == ucBusy || uc.state == ucTunnel {
		uc.u.BusyConns.Add(-1)
	}
	uc.cc = nil
	prev := uc.state
	uc.state = ucDone
	if prev == ucQueued {
		uc.ls.unqueue(uc) // its client went away while it waited
		return
	}
	if uc.c == nil || prev == ucDone {
		// Still dialing: OnOpen finds no client and pools it (its slot
		// held until then), or the dial fails; or it already ended.
		return
	}
	uc.dropSlot()
	if abort {
		uc.c.Abort(o)
	} else {
		uc.c.Close(o)
	}
}

// pauseRead stops reading the upstream while the client is over its
// high-water mark; the client's OnWritable resumes it.
func (uc *upConn) pauseRead() {
	if uc.readPaused {
		return
	}
	uc.readPaused = true
	uc.c.PauseRead()
	uc.c.ClearTimer(engine.TimerIdle) // our pause is not the upstream's silence
}

func (uc *upConn) resumeRead(readTimeout int64) {
	if !uc.readPaused {
		return
	}
	uc.readPaused = false
	uc.c.ResumeRead()
	if readTimeout > 0 {
		uc.c.SetTimer(engine.TimerIdle, readTimeout)
	}
}

// resume lets a paused connection go on: first the bytes its carry kept
// when its exchange paused it, parsed again from where they stopped, then
// the socket, with readTimeout between reads.
func (uc *upConn) resume(readTimeout int64) {
	if !uc.readPaused || uc.state != ucBusy && uc.state != ucTunnel {
		return
	}
	if len(uc.in.b) > 0 {
		cc := uc.cc
		uc.readPaused = false // the socket stays paused while the carry is read
		uc.OnData(uc.c, nil)
		if uc.cc != cc || uc.state != ucBusy && uc.state != ucTunnel || uc.readPaused {
			return // the carry ended the exchange, or paused it again
		}
		uc.readPaused = true
	}
	uc.resumeRead(readTimeout)
}

// attempt is the handle of the attempt uc serves.
func (uc *upConn) attempt() upAttempt { return upAttempt{uc: uc} }

// serves reports whether uc serves s now (upAttempt.serves).
func (uc *upConn) serves(s upSink) bool { return uc.attempt().serves(s) }

// discardable reports whether what is left of the response in flight is
// a known length of at most limit bytes, which can be read and dropped so
// that the connection is pooled (upDiscard).
func (uc *upConn) discardable(limit int64) bool {
	return uc.state == ucBusy && uc.headDone && uc.resp.Body == h1.BodyLength && !uc.resp.Close &&
		uc.body.Remaining()+int64(len(uc.in.b)) <= limit
}

// ---- engine.Handler ----

// OnOpen runs when the dial succeeded.
func (uc *upConn) OnOpen(c *engine.Conn) {
	uc.c = c
	c.Advance(diag.DataTransfer)
	if uc.cc != nil && uc.state == ucDialing {
		uc.cc.upStart(uc.attempt())
		return
	}
	// The client went away while we dialed: keep the connection for the
	// next request rather than waste the handshake.
	uc.state = ucBusy
	uc.u.BusyConns.Add(1)
	uc.release(true)
}

// OnData reads a response, a tunnel's bytes, or unexpected bytes on an
// idle connection. Like clientConn.OnData it returns 0 once the
// connection is closing.
func (uc *upConn) OnData(c *engine.Conn, b []byte) int {
	buf, lc := uc.in.join(b)
	n := len(buf)
	switch uc.state {
	case ucBusy:
		if uc.cc != nil {
			n = uc.readResponse(uc.cc, buf)
		}
	case ucTunnel:
		if uc.cc != nil {
			uc.cc.tunnelFromUpstream(uc, buf)
		}
	case ucIdle:
		// An idle upstream has nothing to say; if it does, its framing
		// cannot be trusted for the next request.
		uc.ls.unpool(uc)
		uc.state = ucDone
		c.Close(diag.ProtocolError)
	}
	if uc.state == ucDone {
		uc.in.reset()
		return 0
	}
	return uc.in.settle(buf, lc, n, false)
}

// readResponse parses what the upstream sends for the current request and
// hands it to cc, the downstream, whichever protocol it speaks. It stops,
// leaving the rest to uc's carry, once cc pauses the attempt.
func (uc *upConn) readResponse(cc tunnelSink, b []byte) int {
	if len(b) > 0 {
		uc.gotByte = true
	}
	a := uc.attempt()
	n := 0
	for n < len(b) {
		if !uc.headDone {
			k, err := uc.parser.ParseResponse(&uc.resp, b[n:], uc.mc)
			if err == h1.ErrNeedMore {
				return n
			}
			if err != nil {
				cc.upFail(a, &proxyError{kind: errUpBadResponse, err: err}, false)
				return len(b)
			}
			n += k
			resp := &uc.resp
			if resp.Status == 101 {
				if !cc.upgrade(uc, b[n:]) {
					cc.upFail(a, &proxyError{kind: errUpBadResponse}, false)
				}
				return len(b)
			}
			final := resp.Status >= 200
			if final {
				uc.headDone = true
				uc.c.ClearTimer(engine.TimerProto)
				uc.body.ForResponse(resp)
			}
			end := final && uc.body.Done()
			if end {
				uc.noReuse = uc.noReuse || n < len(b)
			}
			uc.head = upRespHead{status: resp.Status, end: end, h1: resp, raw: b[n-k : n]}
			ok := cc.upHead(a, &uc.head)
			uc.head = upRespHead{}
			if end || final && !ok {
				return len(b)
			}
			continue
		}
		if uc.readPaused {
			return n
		}
		data, k, err := uc.body.Decode(b[n:])
		if err == h1.ErrNeedMore {
			break
		}
		if err != nil {
			cc.upFail(a, &proxyError{kind: errUpBadResponse, err: err}, false)
			return len(b)
		}
		n += k
		done := uc.body.Done()
		if done {
			uc.noReuse = uc.noReuse || n < len(b)
		}
		// The last bytes of a Content-Length body end the response with
		// them (an HTTP/2 client's END_STREAM goes on that DATA).
		last := done && uc.resp.Body == h1.BodyLength && len(data) > 0
		if len(data) > 0 && !cc.upBody(a, data, last) || last {
			return len(b)
		}
		if done {
			cc.upEnd(a, upRespTrailers{h1: uc.body.Trailers()})
			return len(b)
		}
	}
	if uc.headDone && !uc.readPaused {
		rt := uc.readT
		if rt <= 0 {
			rt = uc.ls.h.readTimeout
		}
		uc.c.SetTimer(engine.TimerIdle, rt)
	}
	return n
}

// OnReadEOF is the upstream's FIN.
func (uc *upConn) OnReadEOF(c *engine.Conn) {
	switch uc.state {
	case ucIdle:
		uc.ls.unpool(uc)
		uc.state = ucDone
		c.Close(diag.PeerClosed)
	case ucBusy:
		cc := uc.cc
		if cc == nil {
			break
		}
		if uc.headDone && uc.body.EOF() == nil {
			// A read-until-close body ends here.
			uc.noReuse = true
			cc.upEnd(uc.attempt(), upRespTrailers{})
		} else {
			cc.upFail(uc.attempt(), errUpResetErr, false)
		}
	case ucTunnel:
		if uc.cc != nil {
			uc.cc.tunnelEOF(uc)
			return
		}
	}
	c.Close(diag.PeerClosed)
}

// OnWritable resumes the client's body once the upstream drained.
func (uc *upConn) OnWritable(c *engine.Conn) {
	if cc := uc.cc; cc != nil && (uc.state == ucBusy || uc.state == ucTunnel) {
		cc.upWritable(uc.attempt())
	}
}

// OnTimer: TimerIdle closes an idle pooled connection, or is the read
// timeout of a response body or the idle timeout of a tunnel; TimerProto is
// the response header timeout.
func (uc *upConn) OnTimer(c *engine.Conn, k engine.TimerKind) {
	switch uc.state {
	case ucIdle:
		uc.ls.unpool(uc)
		uc.state = ucDone
		c.Close(diag.IdleTimeout)
	case ucBusy:
		if uc.cc != nil {
			uc.cc.upFail(uc.attempt(), errUpTimeoutErr, false)
			return
		}
		c.Close(k.Outcome())
	case ucTunnel:
		if uc.cc != nil {
			uc.cc.tunnelIdle()
			return
		}
		c.Close(diag.IdleTimeout)
	default:
		c.Close(k.Outcome())
	}
}

// OnDrain closes an idle connection at once; a busy one finishes its
// exchange first (pooling on this loop stopped with the loop's drain).
func (uc *upConn) OnDrain(c *engine.Conn) {
	if uc.state == ucIdle {
		uc.ls.unpool(uc)
		uc.state = ucDone
		c.Close(diag.Clean)
	}
}

// OnClosed: a busy connection that closes fails its attempt.
func (uc *upConn) OnClosed(c *engine.Conn, t *diag.Trace) {
	prev := uc.state
	cc := uc.cc
	switch prev {
	case ucDialing:
		// An https upstream's TLS handshake failed (OnOpen never ran):
		// nothing was sent, so it counts as a failed dial.
		if cc != nil {
			err := errUpTLSFailed
			if t.Outcome == diag.HandshakeTimeout {
				err = errUpTLSTimeout
			}
			cc.upFail(uc.attempt(), err, false)
		}
	case ucIdle:
		uc.ls.unpool(uc)
	case ucBusy:
		if cc != nil {
			err := errUpResetErr
			if t.Outcome == diag.WriteTimeout || t.Outcome == diag.FlushTimeout {
				err = errUpTimeoutErr // the upstream stopped reading our request
			}
			cc.upFail(uc.attempt(), err, false)
		}
	case ucTunnel:
		if cc != nil {
			cc.tunnelClosed(uc, cleanOutcome(t.Outcome))
		}
	}
	if uc.state == ucBusy || uc.state == ucTunnel {
		uc.u.BusyConns.Add(-1)
	}
	uc.state = ucDone
	uc.cc = nil
	uc.dropSlot()
}

// carry keeps input a handler could not consume yet (a head or chunk-size
// line cut by a read boundary) in the handler's own buffer rather than the
// engine's. The engine holds a peer's FIN back while it keeps unconsumed
// bytes, so bytes left with it would turn "the upstream closed mid-head"
// into a timeout. What a handler wants the engine to keep on purpose
// (pipelined requests while paused) stays with the engine. Bounded by the
// codec's limits: a head (MaxHeadBytes), a chunk line, a trailer section.
type carry struct{ b []byte }

// join returns the bytes to process: the carried ones followed by b, and
// how many of them were carried.
func (k *carry) join(b []byte) ([]byte, int) {
	if len(k.b) == 0 {
		return b, 0
	}
	lc := len(k.b)
	k.b = append(k.b, b...)
	return k.b, lc
}

// settle records that n bytes of buf (from join) were consumed and returns
// the count to report to the engine. With hold, the engine keeps what is
// left of the new bytes (the handler paused reads); else the handler
// carries the rest itself.
func (k *carry) settle(buf []byte, lc, n int, hold bool) int {
	if hold {
		if n >= lc {
			k.reset()
			return n - lc
		}
		k.b = k.b[:copy(k.b, k.b[n:lc])]
		return 0
	}
	if n < len(buf) {
		k.b = append(k.b[:0], buf[n:]...) // may overlap k.b: append moves memory safely
	} else {
		k.reset()
	}
	return len(buf) - lc
}

func (k *carry) reset() {
	if cap(k.b) > 64<<10 {
		k.b = nil // do not pin a large head's buffer on an idle connection
		return
	}
	k.b = k.b[:0]
}
