package proxy

import (
	"fmt"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
)

// What one client connection may cost (issue #9).
//
// Upstream budget. An HTTP/2 client connection's streams hold at most
// ClientMaxUpstreams upstreams at once: an HTTP/1.1 upstream connection
// (dialing or busy) or a stream of an h2c/h2 upstream connection. A slot
// is taken when a routed request is about to pick an upstream and given
// back as soon as the upstream exchange is over (the response read to its
// end, failed, or abandoned), not when the client has taken the last
// bytes. Streams over the budget wait in a FIFO (no upstream work, their
// request bytes bounded by the windows) and are started after the loop's
// current batch of events once slots free (h2Conn.flush); one that waits
// ClientUpstreamWait is refused with RST_STREAM(REFUSED_STREAM).
//
// Stalled streams. A stream whose response the client's window keeps
// stalled for StallTimeout is reset (CANCEL). The HTTP/1.1 upstream
// connection it held is handed to a discarder when what is left of a
// Content-Length response is at most DiscardBytes: the rest is read and
// dropped and the connection pooled again; otherwise it is reset.
//
// Body deadlines (bodyClock): the client's own time sending a body, with
// the time sluice held it back taken out, is bounded in total and, after
// a grace period, by a minimum average rate.

// discardBytes bounds what sluice reads and drops to keep an upstream
// connection whose stream was reset: less than a pooled connection's
// handshake would cost, more than a typical stalled remainder.
const discardBytes = 256 << 10

// budgetMetrics are the series of this file, created at start-up.
type budgetMetrics struct {
	slotsHeld    atomic.Int64
	slotWaits    *metrics.Counter
	slotRefusals *metrics.Counter
	stallResets  *metrics.Counter
	discards     [2]*metrics.Counter    // [discardPooled], [discardClosed]
	bodyTimeouts [2][3]*metrics.Counter // [http/1.1, h2][idle, deadline, min_rate]
}

const (
	discardPooled = iota
	discardClosed
)

// Body timeout reasons, the second index of bodyTimeouts.
const (
	bodyIdle = iota
	bodyDeadline
	bodyRate
)

func newBudgetMetrics(set *metrics.Set) *budgetMetrics {
	bm := &budgetMetrics{
		slotWaits:    set.GetOrCreateCounter(`sluice_http2_upstream_slot_waits_total`),
		slotRefusals: set.GetOrCreateCounter(`sluice_http2_upstream_slot_refusals_total`),
		stallResets:  set.GetOrCreateCounter(`sluice_http2_stall_resets_total`),
	}
	set.GetOrCreateGauge(`sluice_http2_upstream_slots_held`, func() float64 { return float64(bm.slotsHeld.Load()) })
	for i, r := range [2]string{"pooled", "closed"} {
		bm.discards[i] = set.GetOrCreateCounter(fmt.Sprintf(`sluice_upstream_discards_total{result=%q}`, r))
	}
	for p, proto := range [2]string{"http/1.1", "h2"} {
		for i, r := range [3]string{"idle", "deadline", "min_rate"} {
			bm.bodyTimeouts[p][i] = set.GetOrCreateCounter(fmt.Sprintf(`sluice_http_body_timeouts_total{proto=%q,reason=%q}`, proto, r))
		}
	}
	return bm
}

// bodyTimeout counts a request body that ended on a deadline, by the
// kind that ended it.
func (bm *budgetMetrics) bodyTimeout(h2 bool, k errKind) {
	p := 0
	if h2 {
		p = 1
	}
	r := bodyIdle
	switch k {
	case errBodyDeadline:
		r = bodyDeadline
	case errBodyRate:
		r = bodyRate
	}
	bm.bodyTimeouts[p][r].Inc()
}

// ---- body deadlines ----

// bodyLimits are HTTPConfig's body deadlines in engine-clock nanoseconds
// (0: off) and the rate in bytes per second.
type bodyLimits struct {
	total, grace int64
	rate         int64
}

func newBodyLimits(cfg *HTTPConfig) bodyLimits {
	var b bodyLimits
	if cfg.BodyTimeout > 0 {
		b.total = int64(cfg.BodyTimeout)
	}
	if cfg.BodyMinRate > 0 && cfg.BodyGrace > 0 {
		b.grace, b.rate = int64(cfg.BodyGrace), int64(cfg.BodyMinRate)
	}
	return b
}

// shortest is the shortest body deadline, 0 if none is on.
func (b bodyLimits) shortest() int64 {
	switch {
	case b.total == 0:
		return b.grace
	case b.grace == 0:
		return b.total
	}
	return min(b.total, b.grace)
}

// bodyClock measures the client's own time sending a request body:
// engine-clock time since start, less the time sluice held it back.
// Loop-owned, part of an exchange.
type bodyClock struct {
	start  int64 // 0: not running (no body, or not started yet)
	held   int64 // time already held back
	heldAt int64 // start of the hold in progress, 0 if none
}

func (bc *bodyClock) begin(now int64) { *bc = bodyClock{start: now} }

func (bc *bodyClock) stop() { *bc = bodyClock{} }

func (bc *bodyClock) running() bool { return bc.start != 0 }

// hold and unhold mark sluice (not the client) as what stops the body.
func (bc *bodyClock) hold(now int64) {
	if bc.start != 0 && bc.heldAt == 0 {
		bc.heldAt = now
	}
}

func (bc *bodyClock) unhold(now int64) {
	if bc.heldAt != 0 {
		bc.held += now - bc.heldAt
		bc.heldAt = 0
	}
}

func (bc *bodyClock) holding() bool { return bc.heldAt != 0 }

// check says whether a body that has brought n bytes so far broke a
// limit at now (errBodyDeadline, errBodyRate), else errNone and how long
// until the next check is due (0: none while held back, or nothing on).
// The rate deadline is Apache's: grace plus a second per rate bytes.
func (bc *bodyClock) check(b *bodyLimits, now, n int64) (errKind, int64) {
	if bc.start == 0 || bc.heldAt != 0 {
		return errNone, 0
	}
	t := now - bc.start - bc.held
	var due int64 = -1
	if b.total > 0 {
		if t >= b.total {
			return errBodyDeadline, 0
		}
		due = b.total - t
	}
	if b.rate > 0 {
		d := b.grace + n*1e9/b.rate
		if t >= d {
			return errBodyRate, 0
		}
		if due < 0 || d-t < due {
			due = d - t
		}
	}
	return errNone, max(due, 0)
}

// ---- the upstream budget of an HTTP/2 client connection ----

// Slot kinds: an HTTP/1.1 upstream connection, or a stream of an h2c/h2
// upstream connection.
const (
	slotConn = iota
	slotStream
)

func (hc *h2Conn) budget(k uint8) int {
	if k == slotStream {
		return hc.h.cfg.ClientMaxUpstreamStreams
	}
	return hc.h.cfg.ClientMaxUpstreams
}

// takeSlot gives st one of hc's upstream slots of the kind its route
// needs, or queues it (false). Queued streams keep their order: a new
// stream never passes them.
func (hc *h2Conn) takeSlot(st *h2Stream) bool {
	if st.slot {
		return true
	}
	k := uint8(slotConn)
	if st.x.rt.allH2 {
		k = slotStream
	}
	st.slotKind = k
	if hc.upHeld[k] < hc.budget(k) && len(hc.upWait[k]) == 0 {
		st.slot = true
		hc.upHeld[k]++
		hc.h.bm.slotsHeld.Add(1)
		return true
	}
	st.queued = true
	st.queuedAt = hc.ls.l.Now()
	hc.upWait[k] = append(hc.upWait[k], st)
	hc.h.bm.slotWaits.Inc()
	hc.bodyHold(st)
	return false
}

// freeSlot gives st's slot back; a queued stream starts after the loop's
// current batch (flush).
func (hc *h2Conn) freeSlot(st *h2Stream) {
	if st.queued {
		hc.unqueue(st)
	}
	if !st.slot {
		return
	}
	k := st.slotKind
	st.slot = false
	hc.upHeld[k]--
	hc.h.bm.slotsHeld.Add(-1)
	if len(hc.upWait[k]) > 0 {
		hc.kick()
	}
}

func (hc *h2Conn) unqueue(st *h2Stream) {
	st.queued = false
	q := hc.upWait[st.slotKind]
	for i, w := range q {
		if w == st {
			copy(q[i:], q[i+1:])
			q[len(q)-1] = nil
			hc.upWait[st.slotKind] = q[:len(q)-1]
			return
		}
	}
}

// startQueued starts waiting streams while slots are free.
func (hc *h2Conn) startQueued() {
	for k := range hc.upWait {
		for len(hc.upWait[k]) > 0 && hc.upHeld[k] < hc.budget(uint8(k)) && !hc.closing {
			q := hc.upWait[k]
			st := q[0]
			copy(q, q[1:])
			q[len(q)-1] = nil
			hc.upWait[k] = q[:len(q)-1]
			st.queued = false
			if st.done {
				continue
			}
			st.slot = true
			hc.upHeld[k]++
			hc.h.bm.slotsHeld.Add(1)
			st.connect(nil)
		}
	}
}

// dropQueue forgets the waiting streams of a connection that is closing
// (abandonAll ends them).
func (hc *h2Conn) dropQueue() {
	for k, q := range hc.upWait {
		for i, st := range q {
			st.queued = false
			q[i] = nil
		}
		hc.upWait[k] = q[:0]
	}
}

// bodyHold marks the body clock of st held back or not, as sluice's side
// of the stream stands now: no upstream yet (queued, dialing), request
// bytes the upstream has not taken, or a 100 Continue not yet passed on.
func (hc *h2Conn) bodyHold(st *h2Stream) {
	bc := &st.x.body
	if !bc.running() {
		return
	}
	x := &st.x
	now := hc.ls.l.Now()
	up := false
	switch {
	case st.x.up != nil:
		up = st.x.upOpen && st.x.up.ready()
	case x.uc != nil:
		up = x.uc.state == ucBusy && x.uc.serves(st)
	}
	if st.queued || !up || len(st.reqPend) > 0 || x.expect100 && !x.cont100 {
		bc.hold(now)
	} else {
		bc.unhold(now)
	}
}

// ---- stalled streams ----

// stallReset resets a stream the client's window kept stalled past
// StallTimeout and frees its upstream: an HTTP/1.1 connection with a
// small known remainder is drained and pooled, else reset.
func (st *h2Stream) stallReset() {
	x := &st.x
	hc := st.hc
	x.end = errWriteStall
	hc.h.bm.stallResets.Inc()
	if uc := x.uc; uc != nil && uc.serves(st) && x.sentAll && uc.discardable(discardBytes) {
		x.uc = nil
		endAttemptOn(uc.u, resAborted)
		startDiscard(uc)
		st.upDone = true
		hc.freeSlot(st)
	} else if uc != nil {
		hc.h.bm.discards[discardClosed].Inc()
	}
	st.abortUpstream(errWriteStall)
	st.resetStream(h2.ErrCodeCancel)
}

// upDiscard reads what is left of a response nobody wants and pools the
// connection at its end. It is the sink of that connection meanwhile.
type upDiscard struct{ bm *budgetMetrics }

func startDiscard(uc *upConn) {
	d := &upDiscard{bm: uc.ls.h.bm}
	uc.cc = d
	// Bounded by its size and a short read timeout: a stalled upstream
	// costs no more than a slow one.
	rt := min(uc.ls.h.readTimeout, int64(discardTimeout))
	a := uc.attempt()
	if a.paused() {
		a.resume(rt) // the carried bytes first, then the socket
	} else {
		uc.c.SetTimer(engine.TimerIdle, rt)
	}
}

const discardTimeout = 5e9 // 5s

func (d *upDiscard) upStart(upAttempt)                      {}
func (d *upDiscard) upHead(a upAttempt, h *upRespHead) bool { return d.upBody(a, nil, h.end) }
func (d *upDiscard) upBody(a upAttempt, _ []byte, end bool) bool {
	if end {
		d.upEnd(a, upRespTrailers{})
	}
	return a.serves(d)
}
func (d *upDiscard) upEnd(a upAttempt, _ upRespTrailers) {
	if !a.serves(d) {
		return
	}
	d.bm.discards[discardPooled].Inc()
	a.uc.release(!a.uc.resp.Close)
}
func (d *upDiscard) upFail(a upAttempt, _ *proxyError, _ bool) {
	if !a.serves(d) {
		return
	}
	d.bm.discards[discardClosed].Inc()
	a.uc.discard(true)
}
func (d *upDiscard) upWritable(upAttempt)               {}
func (d *upDiscard) upgrade(*upConn, []byte) bool       { return false }
func (d *upDiscard) tunnelFromUpstream(*upConn, []byte) {}
func (d *upDiscard) tunnelEOF(*upConn)                  {}
func (d *upDiscard) tunnelIdle()                        {}
func (d *upDiscard) tunnelClosed(*upConn, bool)         {}
