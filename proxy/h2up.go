package proxy

import (
	"log/slog"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
	"github.com/sluice-proxy/sluice/internal/h2run"
)

// h2c upstreams (route URLs h2c://host:port): HTTP/2 over cleartext with
// prior knowledge, a client-role h2.Conn on an engine upstream connection.
// h2:// upstreams are the same over TLS (engine.Loop.DialTLS, ALPN h2
// required); everything below holds for both.
//
// Multiplexing. Each loop keeps, per h2c upstream, a list of connections
// (loopState.h2pools). A stream goes on the first connection that can
// open one (h2.Conn.CanOpenStream: not going away, under the peer's
// SETTINGS_MAX_CONCURRENT_STREAMS; until a connection's SETTINGS arrive,
// the limit last seen on this loop, or 100); when every connection is
// full, another is dialed.
// Streams may be opened on a connection still dialing: the preface, the
// SETTINGS and the HEADERS go out once it connects, and only then does
// the request body flow (upReady), so a failed dial took none of it.
//
// Retries. A stream the upstream refused (RST_STREAM REFUSED_STREAM, or
// above the last stream id of its GOAWAY) was not processed: it is
// retried, any method (POST included), if the request body sent so far
// is still held (up to RetryBodyBytes) and the retry budget allows. A failed dial is
// retried like an HTTP/1.1 one, any method. Anything else (a reset after the request
// went out, the connection dying) is 502 before the response head, a
// reset stream after.
//
// Flow control. Response DATA is credited to the upstream (Consumed) only
// as it is passed to the client, so a slow client costs at most the
// upstream stream window per stream (H2Upstream.InitialStreamWindow,
// 64 KiB by default) and ConnWindow per connection; request bytes are
// credited to the client only as the upstream's windows take them.
//
// Streaming. Nothing is buffered whole: each DATA frame is passed on as it
// arrives, both ways, so a bidirectional gRPC stream works message by
// message; trailers are forwarded as trailers.
//
// Timeouts. ResponseHeaderTimeout runs from the end of the request to the
// response head, ReadTimeout between response DATA frames; both are
// checked by the client connection's tick. A connection with no stream for
// UpstreamIdleTimeout closes. On drain every h2c connection sends GOAWAY
// and closes once its streams are done.

// h2pool is one h2c upstream's connections on one loop. Loop-owned.
type h2pool struct {
	conns []*h2UpConn
	// peerMax is the upstream's SETTINGS_MAX_CONCURRENT_STREAMS as last
	// seen on this loop (0: not yet): a connection whose own SETTINGS
	// have not arrived takes no more streams than that.
	peerMax int
}

// h2UpConn is the handler of one h2c upstream connection. Loop-owned.
type h2UpConn struct {
	ls    *loopState
	u     *Upstream
	c     *engine.Conn // nil while dialing
	sc    *h2.Conn
	users map[uint32]upSink

	run       h2run.Runner // drives sc on c once it is open
	idleArmed bool
	closing   bool // no new streams; closes when the last one ends
	dead      bool // closed (or the dial failed)
	settled   bool // the upstream's SETTINGS arrived
	slot      bool // holds one of the upstream's in-use slots until it closes
	stats     h2.Stats
	ids       []uint32
	head      upRespHead // what upHead is given
}

// h2Acquire returns a connection to u with room for one more stream,
// dialing one when none has; nil when that would pass u's in-use cap
// (UpstreamMaxConns: connections, open or dialing).
func (ls *loopState) h2Acquire(u *Upstream) *h2UpConn {
	p := ls.h2pool(u)
	for _, up := range p.conns {
		if !up.closing && !up.dead && up.sc.CanOpenStream() && (up.settled || p.peerMax == 0 || len(up.users) < p.peerMax) {
			return up
		}
	}
	if u.MaxConns > 0 && !u.TakeSlot() {
		return nil
	}
	h := ls.h
	up := &h2UpConn{ls: ls, u: u, users: make(map[uint32]upSink), slot: u.MaxConns > 0}
	up.sc = h2.NewConn(h2.Client, h.h2ucfg, (*h2UpEvents)(up), h2Now())
	flush := up.flush // bound once: no allocation per batch
	up.run.Init(up.sc, func() { ls.l.AfterBatch(flush) })
	p.conns = append(p.conns, up)
	u.Dial(ls.l, h.cfg.DialTimeout, up, up.dialFailed)
	return up
}

// drainH2C sends GOAWAY on every h2c connection of this loop.
func (ls *loopState) drainH2C() {
	for i := range ls.h2pools {
		for _, up := range ls.h2pools[i].conns {
			up.drain()
		}
	}
}

// unpool removes up from its pool.
func (up *h2UpConn) unpool() {
	p := up.ls.h2pool(up.u)
	for i, x := range p.conns {
		if x == up {
			copy(p.conns[i:], p.conns[i+1:])
			p.conns[len(p.conns)-1] = nil
			p.conns = p.conns[:len(p.conns)-1]
			return
		}
	}
}

// ---- what users call ----

// open starts a stream for user.
func (up *h2UpConn) open(user upSink, fields []hpack.HeaderField, end bool) (uint32, error) {
	id, err := up.sc.OpenStream(fields, end)
	if err != nil {
		return 0, err
	}
	up.users[id] = user
	if up.idleArmed {
		up.idleArmed = false
		up.c.ClearTimer(engine.TimerIdle)
	}
	up.kick()
	return id, nil
}

// ready says the connection is open: request DATA may be written.
func (up *h2UpConn) ready() bool { return up.c != nil && !up.dead }

// writeData sends request DATA as far as the upstream's windows allow.
func (up *h2UpConn) writeData(id uint32, p []byte, end bool) int {
	if !up.ready() {
		return 0
	}
	n, err := up.sc.WriteData(id, p, end)
	if err != nil {
		return 0
	}
	up.kick()
	return n
}

// writeTrailers sends request trailers, ending the request.
func (up *h2UpConn) writeTrailers(id uint32, fields []hpack.HeaderField) {
	if up.dead {
		return
	}
	if up.sc.WriteTrailers(id, fields) != nil {
		up.sc.WriteData(id, nil, true)
	}
	up.kick()
}

// consumed credits n response bytes of stream id, passed on (or dropped).
func (up *h2UpConn) consumed(id uint32, n int) {
	if up.dead || n <= 0 {
		return
	}
	up.sc.Consumed(id, n)
	up.kick()
}

// cancel abandons a stream: RST_STREAM(CANCEL) if it is still open.
func (up *h2UpConn) cancel(id uint32) {
	delete(up.users, id)
	if !up.dead {
		up.sc.ResetStream(id, h2.ErrCodeCancel)
		up.kick()
		up.settle()
	}
}

// release forgets a stream whose response is complete; if the request
// side is still open (the upstream answered early) it is reset.
func (up *h2UpConn) release(id uint32) {
	up.cancel(id)
}

// kick schedules moving the codec's frames to the engine (see h2Conn.kick).
func (up *h2UpConn) kick() { up.run.Kick() }

func (up *h2UpConn) flush() {
	up.run.WriteOut()
	s := up.sc.Stats()
	up.ls.h.m.h2Stats(&s, &up.stats)
}

// settle closes the connection when the codec failed or is drained, and
// keeps the idle and codec timers.
func (up *h2UpConn) settle() {
	if up.dead || up.c == nil {
		return
	}
	if up.sc.Err() != nil {
		up.fail(errUpResetErr, false)
		up.flush()
		up.shut(diag.ProtocolError)
		return
	}
	if len(up.users) == 0 && (up.sc.Drained() || up.closing && !up.ls.l.Draining() || up.sc.GoingAway()) {
		up.flush()
		up.shut(diag.Clean)
		return
	}
	if len(up.users) == 0 && !up.idleArmed {
		up.idleArmed = true
		up.c.SetTimer(engine.TimerIdle, up.ls.h.upIdleTimeout)
	}
	up.run.ArmTimer()
}

// shut takes up out of the pool and closes it gracefully.
func (up *h2UpConn) shut(o diag.Outcome) {
	if up.dead {
		return
	}
	up.closing = true
	up.dead = true
	up.run.Detach()
	up.unpool()
	up.c.Close(o)
}

// drain: GOAWAY, no new streams; close once the last one ends.
func (up *h2UpConn) drain() {
	if up.closing || up.dead {
		return
	}
	up.closing = true
	up.sc.Shutdown(h2Now())
	up.kick()
	up.settle()
}

// fail ends every stream: refused streams may be retried.
func (up *h2UpConn) fail(err *proxyError, refused bool) {
	ids := up.ids[:0]
	for id := range up.users {
		ids = append(ids, id)
	}
	for _, id := range ids {
		if user := up.users[id]; user != nil {
			delete(up.users, id)
			user.upFail(upAttempt{up: up, id: id}, err, refused)
		}
	}
	up.ids = ids[:0]
}

// ---- engine.Handler ----

func (up *h2UpConn) dialFailed(err error) { up.notConnected(dialError(err)) }

// notConnected ends a connection that never carried a frame (dial, TLS
// handshake or ALPN failed): its streams may go elsewhere.
func (up *h2UpConn) notConnected(err *proxyError) {
	up.dead = true
	up.run.Detach()
	up.closing = true
	up.unpool()
	up.dropSlot() // before the streams go elsewhere: a retry may need it
	up.fail(err, true)
}

// dropSlot gives up up's in-use slot (idempotent).
func (up *h2UpConn) dropSlot() {
	if up.slot {
		up.slot = false
		up.ls.slotFreed(up.u)
	}
}

// OnOpen sends what was queued while dialing (preface, SETTINGS, the
// streams' HEADERS) and lets their request bodies flow.
func (up *h2UpConn) OnOpen(c *engine.Conn) {
	up.c = c
	up.run.Attach(c)
	c.Advance(diag.DataTransfer)
	if !h2run.CarriesH2(c) {
		// An h2:// upstream that did not select h2 speaks something
		// else: nothing was sent, as with a failed dial.
		up.ls.h.warn("upstream did not select ALPN h2", slog.String("upstream", up.u.Addr()))
		up.notConnected(errUpNoH2)
		c.Close(diag.Clean)
		return
	}
	ids := make([]uint32, 0, len(up.users))
	for id := range up.users {
		ids = append(ids, id)
	}
	for _, id := range ids {
		if user := up.users[id]; user != nil && !up.dead {
			user.upStart(upAttempt{up: up, id: id})
		}
	}
	up.flush()
	up.settle()
}

// OnData feeds the codec.
func (up *h2UpConn) OnData(c *engine.Conn, b []byte) int {
	if up.dead {
		return 0
	}
	n, err := up.run.Feed(c, b)
	if err != nil {
		up.fail(errUpResetErr, false)
		up.flush()
		up.shut(diag.ProtocolError)
		return 0
	}
	up.kick()
	up.settle()
	if up.dead {
		return 0
	}
	return n
}

// OnReadEOF: the upstream closed; what is in flight fails.
func (up *h2UpConn) OnReadEOF(c *engine.Conn) {
	up.closing = true
	up.fail(errUpResetErr, false)
	up.shut(diag.PeerClosed)
}

// OnWritable is not used: frames are flushed after each batch of events.
func (up *h2UpConn) OnWritable(c *engine.Conn) {}

// OnTimer: TimerProto is the codec's deadline, TimerIdle closes an unused
// connection.
func (up *h2UpConn) OnTimer(c *engine.Conn, k engine.TimerKind) {
	if up.dead {
		return
	}
	switch k {
	case engine.TimerProto:
		if up.run.OnTimer() != nil {
			up.settle()
			return
		}
		up.kick()
	case engine.TimerIdle:
		up.idleArmed = false
		if len(up.users) == 0 {
			up.shut(diag.IdleTimeout)
			return
		}
	}
	up.settle()
}

// OnDrain sends GOAWAY; the connection closes after its last stream.
func (up *h2UpConn) OnDrain(c *engine.Conn) {
	up.drain()
}

// OnClosed fails whatever is left. Before OnOpen it is an h2:// upstream's
// failed TLS handshake: a failed dial.
func (up *h2UpConn) OnClosed(c *engine.Conn, t *diag.Trace) {
	if up.c == nil && !up.dead {
		err := errUpTLSFailed
		if t.Outcome == diag.HandshakeTimeout {
			err = errUpTLSTimeout
		}
		up.notConnected(err)
		return
	}
	up.closing = true
	if !up.dead {
		up.dead = true
		up.run.Detach()
		up.unpool()
	}
	up.dropSlot()
	up.fail(errUpResetErr, false)
	up.flush()
}

// ---- h2.Handler (client role) ----

// h2UpEvents is h2UpConn seen as the codec's Handler (see h2ConnEvents).
type h2UpEvents h2UpConn

// OnHeaders delivers a response head (1xx or final).
func (e *h2UpEvents) OnHeaders(id uint32, hd *h2.Headers) {
	up := (*h2UpConn)(e)
	if user := up.users[id]; user != nil {
		final := hd.Status >= 200
		if hd.EndStream && final {
			delete(up.users, id)
		}
		up.head = upRespHead{status: hd.Status, end: hd.EndStream && final, h2: hd}
		user.upHead(upAttempt{up: up, id: id}, &up.head)
		up.head = upRespHead{}
	}
}

// OnData delivers response DATA; a stream nobody wants is credited at once.
func (e *h2UpEvents) OnData(id uint32, data []byte, end bool) {
	up := (*h2UpConn)(e)
	user := up.users[id]
	if user == nil {
		up.sc.Consumed(id, len(data))
		return
	}
	if end {
		delete(up.users, id)
	}
	user.upBody(upAttempt{up: up, id: id}, data, end)
}

// OnTrailers delivers the response's trailers.
func (e *h2UpEvents) OnTrailers(id uint32, fields []hpack.HeaderField) {
	up := (*h2UpConn)(e)
	if user := up.users[id]; user != nil {
		delete(up.users, id)
		user.upEnd(upAttempt{up: up, id: id}, upRespTrailers{h2: fields})
	}
}

// OnReset: the upstream reset a stream, the codec did, or a GOAWAY left
// it unprocessed (REFUSED_STREAM, retry-safe).
func (e *h2UpEvents) OnReset(id uint32, err *h2.StreamError) {
	up := (*h2UpConn)(e)
	user := up.users[id]
	if user == nil {
		return
	}
	delete(up.users, id)
	refused := err.By == h2.ByPeer && err.Code == h2.ErrCodeRefusedStream
	user.upFail(upAttempt{up: up, id: id}, errUpResetErr, refused)
}

// OnWindowOpen lets a stream's request body go on.
func (e *h2UpEvents) OnWindowOpen(id uint32) {
	up := (*h2UpConn)(e)
	if user := up.users[id]; user != nil {
		user.upWritable(upAttempt{up: up, id: id})
	}
}

// OnGoAway: no new streams here; those above the last id come back
// through OnReset as refused.
func (e *h2UpEvents) OnGoAway(uint32, h2.ErrCode, []byte) {
	up := (*h2UpConn)(e)
	up.closing = true
	up.unpool()
}

// OnPingAck is not used.
func (e *h2UpEvents) OnPingAck([8]byte, time.Duration) {}

// OnSettings records the upstream's stream limit for the pool (CanOpenStream
// reads it for this connection).
func (e *h2UpEvents) OnSettings(s h2.Settings) {
	up := (*h2UpConn)(e)
	up.settled = true
	up.ls.h2pool(up.u).peerMax = int(min(s.MaxConcurrentStreams, 1<<20))
}
