package proxy

import (
	"sync/atomic"

	"github.com/sluice-proxy/sluice/engine"
)

// The in-use cap per upstream (HTTPConfig.UpstreamMaxConns) and its queue.
//
// Slots. Upstream.InUse counts the slots held over all loops; a slot is
// taken (Upstream.TakeSlot, a CAS under MaxConns) before an HTTP/1.1 connection is
// dialed or taken from the pool, and held by that upConn (upConn.slot)
// until it goes back to the pool or ends (dropSlot). An HTTP/2 upstream
// connection (h2UpConn.slot) holds one from its dial to its close.
//
// Queue. A request that finds no slot waits on its own loop, in that
// loop's FIFO for the upstream (loopState.queues), as a placeholder upConn
// in state ucQueued: to its user it looks like a connection still
// dialing. A slot freed on a loop goes to that loop's oldest waiter
// first, with the connection itself when it went back to the pool (the
// waiter takes it from there), so the handover costs no atomic. A slot
// freed where nobody waits is returned, and every other loop with
// waiters is posted a task to take it (at most one task in flight per
// loop and upstream). Upstream.Queued counts the waiters of all loops
// against UpstreamQueue: past it, a 503 at once (queue_full); a waiter
// still there after UpstreamQueueTimeout gets a 503 (queue_timeout). A
// waiter whose client goes away leaves the queue at once.
//
// Lost wake-ups are ruled out by ordering: a loop that queues counts the
// waiter (queued++) before it tries for a slot once more, and a loop that
// returns a slot does so (inUse--) before it looks at queued; with
// sequentially consistent atomics one of the two sees the other.

// upQueue is one upstream's waiting requests on one loop. w and timer are
// loop-owned; n and wake are read by other loops.
type upQueue struct {
	w     []*upConn // oldest first; each in state ucQueued
	timer *engine.Timer
	n     atomic.Int32 // len(w)
	wake  atomic.Bool  // a serve task is posted to this loop
}

// queue is u's queue on this loop (the loop's own goroutine), created
// for an upstream a reload added. Other loops read the slice (peekQueue),
// so it is replaced whole, never appended to in place.
func (ls *loopState) queue(u *Upstream) *upQueue {
	qs := *ls.queues.Load()
	if u.Index() < len(qs) {
		return qs[u.Index()]
	}
	ns := make([]*upQueue, u.Index()+1)
	copy(ns, qs)
	for i := len(qs); i < len(ns); i++ {
		ns[i] = &upQueue{}
	}
	ls.queues.Store(&ns)
	return ns[u.Index()]
}

// peekQueue is u's queue on loop ls, read from another loop; nil when ls
// has none yet.
func (ls *loopState) peekQueue(u *Upstream) *upQueue {
	if qs := *ls.queues.Load(); u.Index() < len(qs) {
		return qs[u.Index()]
	}
	return nil
}

// enqueue puts uc (state ucQueued, its user set) at the back of its
// upstream's queue on this loop; false when the queue is full.
func (ls *loopState) enqueue(uc *upConn) bool {
	u := uc.u
	if u.Queued.Add(1) > int64(ls.h.cfg.UpstreamQueue) {
		u.Queued.Add(-1)
		return false
	}
	q := ls.queue(u)
	uc.queuedAt = ls.l.Now()
	q.w = append(q.w, uc)
	q.n.Add(1)
	if len(q.w) == 1 {
		ls.armQueue(u, ls.h.queueTimeout)
	}
	ls.serveQueue(u) // a slot may have been returned since TakeSlot failed
	return true
}

// armQueue sets u's queue timer on this loop to fire in d.
func (ls *loopState) armQueue(u *Upstream, d int64) {
	q := ls.queue(u)
	if q.timer == nil {
		q.timer = ls.l.AfterFunc(d, func() { ls.expireQueue(u) })
		return
	}
	q.timer.Reset(d)
}

// pop takes the oldest waiter out of u's queue on this loop.
func (ls *loopState) pop(u *Upstream) *upConn {
	q := ls.queue(u)
	w := q.w[0]
	copy(q.w, q.w[1:])
	q.w[len(q.w)-1] = nil
	q.w = q.w[:len(q.w)-1]
	q.n.Add(-1)
	u.Queued.Add(-1)
	return w
}

// unqueue removes uc, whose client went away, from its queue.
func (ls *loopState) unqueue(uc *upConn) {
	u := uc.u
	q := ls.queue(u)
	for i, w := range q.w {
		if w == uc {
			copy(q.w[i:], q.w[i+1:])
			q.w[len(q.w)-1] = nil
			q.w = q.w[:len(q.w)-1]
			q.n.Add(-1)
			u.Queued.Add(-1)
			return
		}
	}
}

// serveQueue starts this loop's waiters for u while slots are free.
func (ls *loopState) serveQueue(u *Upstream) {
	for len(ls.queue(u).w) > 0 && u.TakeSlot() {
		ls.startQueued(ls.pop(u))
	}
}

// startQueued runs waiter w, which now holds a slot: on a pooled
// connection if there is one, else on a connection dialed for it.
func (ls *loopState) startQueued(w *upConn) {
	user := w.cc
	if !w.fresh {
		if pc := ls.get(w.u); pc != nil {
			w.state = ucDone
			w.cc = nil
			pc.slot = true
			user.upStart(pc.attempt())
			return
		}
	}
	w.slot = true
	w.state = ucDialing
	ls.dial(w)
}

// slotFreed hands a slot of u given up on this loop to the oldest waiter
// here, or returns it and wakes the loops where requests wait.
func (ls *loopState) slotFreed(u *Upstream) {
	if len(ls.queue(u).w) > 0 {
		ls.startQueued(ls.pop(u))
		return
	}
	u.InUse.Add(-1)
	if u.Queued.Load() == 0 {
		return
	}
	for _, o := range *ls.h.loops.Load() {
		if o == nil || o == ls {
			continue
		}
		q := o.peekQueue(u)
		if q != nil && q.n.Load() > 0 && q.wake.CompareAndSwap(false, true) {
			if o.l.Post(func() { q.wake.Store(false); o.serveQueue(u) }) != nil {
				q.wake.Store(false)
			}
		}
	}
}

// expireQueue answers the waiters of u that waited UpstreamQueueTimeout
// with a 503, and re-arms the timer for the next one.
func (ls *loopState) expireQueue(u *Upstream) {
	q := ls.queue(u)
	now := ls.l.Now()
	for len(q.w) > 0 {
		w := q.w[0]
		if left := w.queuedAt + ls.h.queueTimeout - now; left > 0 {
			ls.armQueue(u, left)
			return
		}
		ls.pop(u)
		w.state = ucDone
		if user := w.cc; user != nil {
			user.upFail(w.attempt(), errQueueTimeoutErr, false)
		}
	}
}

// dropSlot gives up uc's slot, if it holds one (idempotent).
func (uc *upConn) dropSlot() {
	if uc.slot {
		uc.slot = false
		uc.ls.slotFreed(uc.u)
	}
}
