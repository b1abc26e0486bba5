package proxy

import (
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h1"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
	"github.com/sluice-proxy/sluice/internal/h2run"
	"github.com/sluice-proxy/sluice/proxy/header"
)

// HTTP/2 client connections (issue #5). See doc.go for the whole picture;
// this file is the connection, h2stream.go one stream's exchange.
//
// Threading. An h2Conn and everything it serves (its streams, their
// HTTP/1.1 or h2c upstream connections) live on one engine loop. The
// codec (h2.Conn) is sans-I/O: bytes go in with Feed, events come out as
// calls to the h2Conn (the codec's Handler), frames to send are taken with
// AppendOutput.
//
// Output is batched: whatever queues frames calls kick, which queues the
// connection's flush on its loop (engine Loop.AfterBatch); once the loop has handled
// its current batch of events, the codec's frames go to the engine in one
// Write, so the responses of many upstream reads become one TLS record
// and one writev. Streams stop producing above the engine's high-water
// mark (park, OnWritable).
//
// Timers. TimerHeader: the client preface must arrive within the header
// timeout; afterwards it is the housekeeping tick that checks streams'
// deadlines (window stall, request body stall, deadline and rate, h2c
// upstream response timeouts, the wait for an upstream slot) while
// streams exist. TimerIdle: no stream for the idle
// timeout starts the graceful GOAWAY. TimerProto: the codec's deadline
// (SETTINGS ACK, the second GOAWAY).
//
// The end. Drain (OnDrain) and the idle timeout call Shutdown: GOAWAY
// with the last stream id 2^31-1 and a PING, then, on the PING's ACK or
// after a second, GOAWAY with the last stream id processed. Streams up to
// it finish; when the codec reports Drained, the connection takes the
// engine's graceful close (flush, TLS close_notify, FIN, linger). A
// protocol error ends it at once: the codec's GOAWAY is flushed, every
// stream is abandoned and the connection closes with protocol_error.

// h2Conn is the handler of one HTTP/2 client connection. Loop-owned.
type h2Conn struct {
	h  *HTTP
	ls *loopState
	c  *engine.Conn
	sc *h2.Conn

	ip           string // client address for X-Forwarded-For and the log
	trusted      bool   // ip is in TrustedProxies
	tlsVer, alpn string // for the access log
	scheme       string // http or https, for X-Forwarded-Proto

	streams map[uint32]*h2Stream // streams with work left
	fresh   []*h2Stream          // opened during the Feed in progress; started after it
	parked  []*h2Stream          // waiting for the client's output to drain (OnWritable)

	// The buffering cap: response bytes held in the streams' pend, and
	// the streams whose HTTP/1.1 upstreams were paused because it was
	// exceeded (capped).
	pendBytes int
	capped    bool
	capWait   []*h2Stream

	// The upstream budget (budget.go): streams holding an upstream slot,
	// and those waiting for one, oldest first.
	upHeld [2]int         // by slotKind
	upWait [2][]*h2Stream // by slotKind

	fed int          // bytes consumed by the codec, up to the end of the preface+SETTINGS
	run h2run.Runner // drives sc on c: output batching, TimerProto

	opened    bool // the client preface arrived: TimerHeader is the tick now
	tickArmed bool
	idleArmed bool
	goingAway bool // Shutdown was called
	lastDone  bool // the last stream ended: the next flush settles
	peerGone  bool // the client sent GOAWAY
	eof       bool // the client half-closed (FIN or close_notify)
	closing   bool // Close or Abort was called
	dead      bool // OnClosed ran
	cause     diag.Outcome

	stats h2.Stats    // last seen, for metric deltas
	free  []*h2Stream // finished streams kept for reuse
	tmp   []byte      // scratch for bodies and error responses
	hs    header.Scratch
	// The last final response head translated (finalFields).
	lastOK   bool
	lastBody h1.BodyKind
	lastRaw  []byte
	lastHF   []hpack.HeaderField
	hf       []hpack.HeaderField
}

func newH2Conn(h *HTTP, ls *loopState, c *engine.Conn) *h2Conn {
	hc := &h2Conn{h: h, ls: ls, c: c, scheme: h.cfg.Scheme, streams: make(map[uint32]*h2Stream), cause: diag.Clean}
	if c.IsTLS() {
		hc.scheme = "https"
	}
	hc.ip = remoteIP(c)
	hc.trusted = trustedAddr(h.cfg.TrustedProxies, hc.ip)
	if c.IsTLS() {
		hc.tlsVer, hc.alpn = tlsLogInfo(c)
	}
	return hc
}

// h2Now is the engine clock as the codec's time.
func h2Now() time.Time { return h2run.Now() }

// ---- engine.Handler ----

// OnOpen sends the server preface (SETTINGS) and arms the deadline for
// the client's.
func (hc *h2Conn) OnOpen(c *engine.Conn) {
	c.Advance(diag.DataTransfer)
	hc.sc = h2.NewConn(h2.Server, hc.h.h2cfg, (*h2ConnEvents)(hc), h2Now())
	flush := hc.flush // bound once: no allocation per batch
	hc.run.Init(hc.sc, func() { hc.ls.l.AfterBatch(flush) })
	hc.run.Attach(c)
	c.SetTimer(engine.TimerHeader, hc.h.headerTimeout)
	hc.armIdle()
	hc.kick()
	hc.settle()
}

// OnData feeds the codec. It consumes whole frames; the engine keeps the
// tail of a frame cut by a read and delivers it again with the next bytes.
func (hc *h2Conn) OnData(c *engine.Conn, b []byte) int {
	if hc.closing {
		return 0
	}
	n, err := hc.run.Feed(c, b)
	if !hc.opened && n > 0 {
		// The preface and the first SETTINGS frame make the client's
		// "head"; once they are in, TimerHeader becomes the tick.
		hc.fed += n
		if hc.fed > len(h2.ClientPreface) {
			hc.opened = true
			c.ClearTimer(engine.TimerHeader)
			if len(hc.streams) > 0 {
				hc.armTick()
			}
		}
	}
	hc.startFresh()
	if err != nil {
		hc.fail(diag.ProtocolError)
		return 0
	}
	hc.kick()
	hc.settle()
	if hc.closing {
		return 0
	}
	return n
}

// OnReadEOF is the client's FIN (or TLS close_notify): streams whose
// request is complete still get their responses as far as the windows
// the client granted allow (it can send no WINDOW_UPDATE any more); the
// others, and any stream stalled by flow control, are abandoned. The
// connection closes when none is left.
func (hc *h2Conn) OnReadEOF(c *engine.Conn) {
	hc.eof = true
	for _, st := range hc.streams {
		if !st.done && (!st.reqEnd || len(st.pend) > 0 && !st.parked) {
			st.clientGone(h2.ErrCodeCancel, false)
		}
	}
	hc.cause = diag.PeerClosed
	hc.settle()
}

// OnWritable lets parked streams go on once the output is under the
// high-water mark.
func (hc *h2Conn) OnWritable(c *engine.Conn) {
	if len(hc.parked) > 0 && !c.OverHighWater() && !hc.closing {
		ps := hc.parked
		hc.parked = nil
		for i, st := range ps {
			ps[i] = nil
			st.parked = false
			if !st.done {
				st.flushPend()
			}
		}
		if hc.parked == nil {
			hc.parked = ps[:0]
		}
	}
	hc.settle()
}

// OnTimer handles the preface deadline, the tick, the idle timeout and
// the codec's deadline.
func (hc *h2Conn) OnTimer(c *engine.Conn, k engine.TimerKind) {
	if hc.closing {
		return
	}
	switch k {
	case engine.TimerHeader:
		if !hc.opened {
			hc.closeConn(diag.HeaderTimeout) // no preface: nothing to say
			return
		}
		hc.tickArmed = false
		hc.tick()
		if len(hc.streams) > 0 {
			hc.armTick()
		}
	case engine.TimerIdle:
		hc.idleArmed = false
		if len(hc.streams) == 0 {
			hc.shutdown(diag.IdleTimeout)
		}
	case engine.TimerProto:
		if err := hc.run.OnTimer(); err != nil {
			hc.fail(diag.ProtocolError)
			return
		}
		hc.kick()
	}
	hc.settle()
}

// OnDrain starts the graceful GOAWAY; streams in flight finish.
func (hc *h2Conn) OnDrain(c *engine.Conn) {
	hc.shutdown(diag.Clean)
}

// OnClosed abandons what is left: upstream exchanges are reset.
func (hc *h2Conn) OnClosed(c *engine.Conn, t *diag.Trace) {
	if hc.dead {
		return
	}
	hc.dead = true
	hc.closing = true
	hc.run.Detach()
	hc.abandonAll()
	if hc.sc != nil {
		hc.syncStats()
	}
}

// ---- h2.Handler (runs inside Feed and OnTimer) ----

// h2ConnEvents is h2Conn seen as the codec's Handler: both interfaces
// have an OnData, so the codec gets this view of the same struct.
type h2ConnEvents h2Conn

// OnHeaders opens a stream for a request. It is started (routed, sent
// upstream) after the Feed that carried it, so that DATA in the same read
// is already there and a whole small body can go upstream with a
// Content-Length.
func (e *h2ConnEvents) OnHeaders(id uint32, hd *h2.Headers) {
	hc := (*h2Conn)(e)
	if hc.closing {
		hc.sc.ResetStream(id, h2.ErrCodeRefusedStream)
		return
	}
	st := newH2Stream(hc, id, hd)
	hc.streams[id] = st
	hc.fresh = append(hc.fresh, st)
	st.inFresh = true
	hc.h.m.h2Active.Add(1)
	if hc.idleArmed {
		hc.idleArmed = false
		hc.c.ClearTimer(engine.TimerIdle)
	}
	if hc.opened {
		hc.armTick()
	}
}

// OnData delivers request body bytes. A stream that is gone credits them
// back at once.
func (e *h2ConnEvents) OnData(id uint32, data []byte, end bool) {
	hc := (*h2Conn)(e)
	st := hc.streams[id]
	if st == nil || st.done {
		hc.sc.Consumed(id, len(data))
		return
	}
	st.onReqData(data, end)
}

// OnTrailers delivers request trailers, which end the request.
func (e *h2ConnEvents) OnTrailers(id uint32, fields []hpack.HeaderField) {
	hc := (*h2Conn)(e)
	if st := hc.streams[id]; st != nil && !st.done {
		st.onReqTrailers(fields)
	}
}

// OnReset: the client reset a stream, or the codec did because of what
// the client sent. Either way the exchange is abandoned.
func (e *h2ConnEvents) OnReset(id uint32, err *h2.StreamError) {
	hc := (*h2Conn)(e)
	if st := hc.streams[id]; st != nil && !st.done {
		st.clientGone(err.Code, true)
	}
}

// OnWindowOpen lets a stream stalled by flow control go on.
func (e *h2ConnEvents) OnWindowOpen(id uint32) {
	hc := (*h2Conn)(e)
	if st := hc.streams[id]; st != nil && !st.done && !st.parked {
		st.flushPend()
	}
}

// OnGoAway: the client opens no more streams; the connection closes once
// the ones it has are done.
func (e *h2ConnEvents) OnGoAway(uint32, h2.ErrCode, []byte) {
	hc := (*h2Conn)(e)
	hc.peerGone = true
	hc.cause = diag.PeerClosed
}

// OnPingAck is not used (Shutdown's PING is handled by the codec).
func (e *h2ConnEvents) OnPingAck([8]byte, time.Duration) {}

// OnSettings needs nothing: the codec applies the client's settings.
func (e *h2ConnEvents) OnSettings(h2.Settings) {}

// ---- internals ----

// startFresh starts the streams opened by the last Feed.
func (hc *h2Conn) startFresh() {
	for i := 0; i < len(hc.fresh); i++ {
		st := hc.fresh[i]
		hc.fresh[i] = nil
		st.inFresh = false
		if !st.done && !hc.closing {
			st.start()
		}
	}
	hc.fresh = hc.fresh[:0]
}

// kick schedules moving the codec's queued frames to the engine, after
// the loop's current batch of events (engine Loop.AfterBatch).
func (hc *h2Conn) kick() {
	if !hc.closing {
		hc.run.Kick()
	}
}

// flush moves the codec's queued frames to the engine now.
func (hc *h2Conn) flush() {
	if !hc.run.Kicked() && hc.closing {
		return // flushed when it closed
	}
	if len(hc.upWait[0])+len(hc.upWait[1]) > 0 && !hc.closing {
		hc.startQueued()
	}
	hc.run.WriteOut()
	hc.syncStats()
	if hc.lastDone {
		// The last stream ended from the upstream side, outside the
		// connection's own callbacks: settle now, after its frames, so a
		// half-closed or drained connection closes at once.
		hc.lastDone = false
		hc.settle()
	}
}

func (hc *h2Conn) syncStats() {
	s := hc.sc.Stats()
	hc.h.m.h2Stats(&s, &hc.stats)
}

// park makes st wait for the client's output to drain below the
// high-water mark.
func (hc *h2Conn) park(st *h2Stream) {
	if st.parked {
		return
	}
	st.parked = true
	hc.parked = append(hc.parked, st)
	hc.c.NotifyWritable()
}

// settle runs after every event: it ends the connection when the codec
// failed or is drained (or the client left and nothing is in flight), and
// keeps the idle and codec timers armed.
func (hc *h2Conn) settle() {
	if hc.closing {
		return
	}
	if hc.sc.Err() != nil {
		hc.fail(diag.ProtocolError)
		return
	}
	if hc.sc.Drained() || (hc.eof || hc.peerGone) && len(hc.streams) == 0 {
		hc.closeConn(hc.cause)
		return
	}
	if len(hc.streams) == 0 {
		hc.armIdle()
	}
	hc.run.ArmTimer()
}

func (hc *h2Conn) armIdle() {
	if !hc.idleArmed && !hc.goingAway {
		hc.idleArmed = true
		hc.c.SetTimer(engine.TimerIdle, hc.h.idleTimeout)
	}
}

func (hc *h2Conn) armTick() {
	if !hc.tickArmed {
		hc.tickArmed = true
		hc.c.SetTimer(engine.TimerHeader, hc.h.h2Tick)
	}
}

// tick checks every stream's deadlines (stall, body, upstream, slot wait).
func (hc *h2Conn) tick() {
	now := engine.Now()
	for _, st := range hc.streams {
		if !st.done {
			st.checkDeadlines(now)
		}
		if hc.closing {
			return
		}
	}
}

// shutdown starts the two-phase GOAWAY; cause is the outcome recorded
// when the connection closes drained.
func (hc *h2Conn) shutdown(cause diag.Outcome) {
	if hc.goingAway || hc.closing {
		return
	}
	hc.goingAway = true
	hc.cause = cause
	if hc.idleArmed {
		hc.idleArmed = false
		hc.c.ClearTimer(engine.TimerIdle)
	}
	hc.sc.Shutdown(h2Now())
	hc.kick()
	hc.settle()
}

// fail ends the connection after a protocol error: the codec's GOAWAY
// goes out first.
func (hc *h2Conn) fail(o diag.Outcome) {
	hc.closeConn(o)
}

// closeConn flushes what the codec has queued, abandons every stream and
// starts the engine's graceful close.
func (hc *h2Conn) closeConn(o diag.Outcome) {
	if hc.closing {
		return
	}
	hc.dropQueue() // abandoned below: none may start in the flush
	hc.flush()
	hc.closing = true
	hc.abandonAll()
	hc.c.Close(o)
}

// abandonAll ends every stream still in flight.
func (hc *h2Conn) abandonAll() {
	for _, st := range hc.streams {
		if !st.done {
			st.connGone()
		}
	}
	for i := range hc.parked {
		hc.parked[i] = nil
	}
	hc.parked = hc.parked[:0]
}

// streamDone forgets a finished stream.
func (hc *h2Conn) streamDone(st *h2Stream) {
	delete(hc.streams, st.id)
	hc.h.m.h2Active.Add(-1)
	if len(hc.streams) == 0 && !hc.closing {
		hc.lastDone = true
		hc.kick()
	}
}

// capPause: the streams of this connection hold more response bytes than
// H2MaxBuffered. Every HTTP/1.1 upstream still reading is paused, so the
// total grows by at most the reads already under way; they resume once
// the held bytes fall to half the cap. (h2c upstreams need no pause: each
// stream's upstream window bounds what they send.)
func (hc *h2Conn) capPause() {
	hc.capped = true
	for _, st := range hc.streams {
		if uc := st.x.uc; uc != nil && !st.done && uc.serves(st) && uc.state == ucBusy && !uc.attempt().paused() {
			uc.attempt().pause()
			hc.capWait = append(hc.capWait, st)
			st.capWaits = true
		}
	}
}

// capResume lets the streams paused by the cap go on.
func (hc *h2Conn) capResume() {
	hc.capped = false
	ws := hc.capWait
	hc.capWait = nil
	for i, st := range ws {
		ws[i] = nil
		st.capWaits = false
		if !st.done && !st.blocked() {
			st.resumeUp()
		}
	}
	if hc.capWait == nil {
		hc.capWait = ws[:0]
	}
}
