package engine

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/tlsio"
)

// Admission: what a client that has proven nothing yet may hold.
//
// A connection on a listener where the client speaks first (TLS, a PROXY
// protocol header, Listener.ClientFirst) is "waiting" from accept until its
// first byte (with a PROXY header: until the header is complete). A waiting
// connection holds no handshake slot, is the first to go when MaxConns is
// reached (the oldest waiting connection on any loop is evicted, outcome
// evicted, and the new client is accepted), and, for TLS and PROXY
// headers, is reset at FirstByteTimeout (outcome first_byte_timeout). So
// silent sockets cost one fd each for at most FirstByteTimeout and can
// never lock the port.
//
// A TLS handshake takes a MaxHandshakes slot at the client's first byte and
// keeps it until the handshake ends. At the cap, the handshake that has gone
// longest without progress (no byte from the client and no flight from us)
// is evicted, on whichever loop it is, rather than the new client refused.
// Progress, not age, is the key: to push out an honest handshake, which
// moves every round trip, an attacker would have to make every one of the
// other slots move more recently than it, i.e. send MaxHandshakes packets
// per round trip of the honest client; partial ClientHellos left hanging,
// or trickled slower than that, are always the first to go.
//
// A handshake evicted before its ClientHello is complete is not closed but
// parked: it loses its slot, waits among the waiting connections (evictable
// at MaxConns; its handshake deadline still runs) and asks for a slot again
// when more bytes come. It holds only the bytes it sent (one record at
// most) and no goroutine, and a reset would bring the same client straight
// back for another eviction. A handshake already under way is reset.
//
// Each loop keeps its waiting and handshaking connections in two intrusive
// lists ordered by key (accept time; last progress), so every operation is
// O(1) and loop-owned. The key of each list's head is published in an
// atomic, so an admission on one loop can find the oldest entry on all of
// them; evicting on another loop is a posted task, and until it runs the
// cap may be exceeded by at most maxPendingEvictions.

// admKind names a loop's admission lists.
type admKind uint8

const (
	admWaiting   admKind = iota // accepted, first byte (or whole PROXY header) not yet read
	admHandshake                // TLS handshake holding a MaxHandshakes slot
	numAdmKinds
)

// admList is a doubly linked list of connections in key order (keys are
// loop clock readings, appended at the tail, so the head is the oldest).
type admList struct {
	head, tail *Conn // loop-owned
	oldest     atomic.Int64
}

func (a *admList) push(c *Conn, key int64) {
	c.admKey = key
	c.admPrev, c.admNext = a.tail, nil
	if a.tail != nil {
		a.tail.admNext = c
	} else {
		a.head = c
		a.oldest.Store(key)
	}
	a.tail = c
}

func (a *admList) remove(c *Conn) {
	if c.admPrev != nil {
		c.admPrev.admNext = c.admNext
	} else {
		a.head = c.admNext
		if a.head != nil {
			a.oldest.Store(a.head.admKey)
		} else {
			a.oldest.Store(0)
		}
	}
	if c.admNext != nil {
		c.admNext.admPrev = c.admPrev
	} else {
		a.tail = c.admPrev
	}
	c.admPrev, c.admNext = nil, nil
}

// maxPendingEvictions bounds the evictions posted to other loops and not
// run yet, i.e. how far a cap may be exceeded for a moment.
const maxPendingEvictions = 64

// join puts c in the loop's list k, keyed now.
func (c *Conn) admJoin(k admKind) {
	c.admLeave()
	c.adm = k + 1
	c.l.adm[k].push(c, c.clock())
}

// admLeave takes c out of whichever list it is in.
func (c *Conn) admLeave() {
	if c.adm == 0 {
		return
	}
	c.l.adm[c.adm-1].remove(c)
	c.adm = 0
}

// admIn reports whether c is in list k.
func (c *Conn) admIn(k admKind) bool { return c.adm == k+1 }

// admTouch records progress of a handshake: it moves to the tail.
func (c *Conn) admTouch() {
	if c.admIn(admHandshake) {
		a := &c.l.adm[admHandshake]
		if a.tail == c {
			c.admKey = c.l.now()
			if a.head == c {
				a.oldest.Store(c.admKey)
			}
			return
		}
		a.remove(c)
		a.push(c, c.l.now())
	}
}

// startWaiting: c was accepted (or its PROXY header read) and the client
// must speak first. A TLS client or a balancer has FirstByteTimeout to do
// so; a cleartext (ClientFirst) one is left to its handler's deadlines: a
// browser's preconnected TCP socket may rightly stay silent for seconds.
func (c *Conn) startWaiting() {
	c.admJoin(admWaiting)
	if c.tls != nil || c.pp != nil {
		c.setDeadline(timerFirstByte, c.clock()+int64(c.l.e.cfg.FirstByteTimeout))
	}
}

// stopWaiting: the first byte (or the whole PROXY header) came.
func (c *Conn) stopWaiting() {
	c.admLeave()
	c.deadlines[timerFirstByte] = 0
}

// makeRoom runs when a connection needs a unit of the capacity behind list
// k, of which used units are taken (not counting the asker) out of limit.
// The asker must have counted itself first (an atomic add whose result
// gives used), or two loops could both see room for one.
// Under the cap it does nothing; at the cap it evicts the oldest entry of
// list k on any loop (at once if it is on l, posted otherwise). It returns
// false when nothing could be evicted: the asker must be refused.
func (e *Engine) makeRoom(l *Loop, k admKind, used, limit int64) bool {
	pending := e.evictPending[k].Load()
	if used-pending < limit {
		return true
	}
	var target *Loop
	var oldest int64
	for _, o := range e.Loops() {
		if at := o.adm[k].oldest.Load(); at != 0 && (target == nil || at < oldest) {
			target, oldest = o, at
		}
	}
	if target != nil && target != l && pending >= maxPendingEvictions {
		target = nil // too many in flight: only a local eviction now
		if l.adm[k].head != nil {
			target = l
		}
	}
	switch {
	case target == nil:
		return false
	case target == l:
		return l.evictHead(k)
	}
	e.evictPending[k].Add(1)
	if err := target.Post(func() {
		// Uncounted before the eviction: an admission in between sees
		// the slot still taken and evicts for itself. After it, that
		// admission could take the freed slot and the pending one both.
		e.evictPending[k].Add(-1)
		target.evictHead(k)
	}); err != nil {
		e.evictPending[k].Add(-1)
		return false
	}
	return true
}

// evictHead evicts the oldest connection of list k on l that may go, and
// reports whether there was one. A handshake whose client has answered our
// flight is spared while its answer waits unread in the kernel (see
// answerWaiting): it counts as progress and goes to the tail. Each
// connection is looked at once per callback (the spared ones are keyed
// now), so a list of honest handshakes costs one FIONREAD each.
func (l *Loop) evictHead(k admKind) bool {
	now := l.now()
	for c := l.adm[k].head; c != nil; c = l.adm[k].head {
		if k == admHandshake && c.answerWaiting() {
			if c.admKey >= now {
				return false // spared already: every one left has moved
			}
			l.e.met.spared.Inc()
			c.admTouch()
			continue
		}
		c.evict(k)
		return true
	}
	return false
}

// answerWaiting: our handshake flight is out and the client's next bytes
// (its Finished, and with TLS 1.3 the requests right behind it) have come
// but the handshake has not moved on them because we are behind, as in a
// connection storm: they wait unread in the kernel, or read but not yet
// taken by the handshake's goroutine, or taken and the handshake done but
// the loop not told yet. Evicting it would reset a client that believes its connection is
// established and lose those requests; the handshake is not stalled, the
// loop is. A paused connection (too much input during the handshake) is
// not spared: its input waits by our choice.
func (c *Conn) answerWaiting() bool {
	if !c.hsStarted || c.trace.BytesOut == 0 || c.paused {
		return false
	}
	// Read already, but the crypto/tls goroutine has not run since, or
	// has finished and its wake waits behind other loop tasks (gnet runs
	// 256 a round; a storm queues thousands).
	if c.tls.InputPending() || c.tls.Events().Has(tlsio.HandshakeDone) {
		return true
	}
	n, err := unix.IoctlGetInt(c.fd, unix.SIOCINQ)
	return err == nil && n > 0
}

// admissionOutcome: the resets admission makes, logged by their close line
// at info (outcome, remote, age, bytes) and in detail at debug only, since
// a flood makes thousands a second.
func admissionOutcome(o diag.Outcome) bool {
	return o == diag.Evicted || o == diag.FirstByteTimeout || o == diag.Rejected
}

// evict resets a waiting connection or a handshake to make room.
func (c *Conn) evict(k admKind) {
	e := c.l.e
	what := "handshake"
	if k == admHandshake {
		if !c.hsStarted {
			c.park()
			return
		}
		e.met.evicted[admHandshake].Inc()
		c.handshakeFinished(hsEvicted)
	} else {
		e.met.evicted[admWaiting].Inc()
		what = "first_byte"
		switch {
		case c.pp != nil:
			what = "proxy_header"
			e.met.proxyProtoFailed("evicted")
		case c.hsParked:
			what = "handshake_slot"
			c.handshakeFinished(hsEvicted)
		case c.tls != nil:
			e.met.tlsHandshake(hsEvicted, 0)
		}
	}
	if lg := e.log; lg.Enabled(context.Background(), slog.LevelDebug) {
		now := c.l.now()
		cap := "-max-conns"
		if k == admHandshake {
			cap = "-max-handshakes"
		}
		lg.Debug("evicted to make room", "conn", diag.ConnID(c.id), "remote", addrString(c.remote),
			"cap", cap, "waiting_for", what, "age", Dur(now-c.trace.Entered[diag.Created]),
			"stalled", Dur(now-c.admKey), "bytes_in", c.trace.BytesIn)
	}
	c.abort(diag.Evicted, true)
}

// park takes the slot of a handshake whose ClientHello is not complete
// yet (no handshake goroutine, only the bytes it sent) without closing it:
// it waits among the waiting connections (evictable at MaxConns, its
// handshake deadline still running) and asks for a slot again when more
// bytes come. A reset would only bring the same client straight back: a
// flood of partial ClientHellos that reconnects at once made the engine
// reset and accept ~6,000 connections a second to no one's benefit.
func (c *Conn) park() {
	e := c.l.e
	e.met.parked.Inc()
	e.hsInFlight.Add(-1)
	c.hsCounted, c.hsParked = false, true
	c.admJoin(admWaiting)
	if lg := e.log; lg.Enabled(context.Background(), slog.LevelDebug) {
		lg.Debug("tls handshake parked: -max-handshakes reached", "conn", diag.ConnID(c.id),
			"remote", addrString(c.remote), "bytes_in", c.trace.BytesIn)
	}
}

// firstByteTimeout: nothing came, or a PROXY header did not end, in time.
func (c *Conn) firstByteTimeout() {
	e := c.l.e
	if c.pp != nil && (len(c.pp.buf) > 0 || c.trace.BytesIn > 0) {
		c.ppFailed("timeout", errors.New("PROXY protocol header not complete within the first-byte timeout"))
		return
	}
	switch {
	case c.pp != nil:
		e.met.proxyProtoFailed("first_byte_timeout")
	case c.tls != nil:
		e.met.tlsHandshake(hsFirstByteTimeout, 0)
	}
	if lg := e.log; lg.Enabled(context.Background(), slog.LevelDebug) {
		lg.Debug("no first byte in time", "conn", diag.ConnID(c.id), "remote", addrString(c.remote),
			"timeout", e.cfg.FirstByteTimeout)
	}
	c.abort(diag.FirstByteTimeout, true)
}

// admitHandshake gives a TLS client its handshake slot at its first byte.
// It returns false when the connection was refused.
func (c *Conn) admitHandshake() bool {
	e := c.l.e
	n := e.hsInFlight.Add(1)
	if !e.makeRoom(c.l, admHandshake, n-1, int64(e.cfg.MaxHandshakes)) {
		e.hsInFlight.Add(-1)
		e.met.tlsHandshake(hsRejected, 0)
		e.log.Debug("tls handshake rejected: too many in flight and none to evict", "conn", diag.ConnID(c.id),
			"max", e.cfg.MaxHandshakes)
		c.abort(diag.Rejected, true)
		return false
	}
	c.hsCounted = true
	if c.hsParked {
		c.hsParked = false // back with more bytes: its deadline stays the first byte's
	} else {
		c.setState(diag.Handshake)
		c.SetTimer(TimerHandshake, int64(e.cfg.HandshakeTimeout))
	}
	c.admJoin(admHandshake)
	return true
}
