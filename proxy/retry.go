package proxy

import (
	"github.com/sluice-proxy/sluice/engine"
	exch "github.com/sluice-proxy/sluice/proxy/exchange"
)

// The retry policy and the replay buffer are package exchange's
// (proxy/exchange): one for every protocol pair. This file feeds them the
// facts of package proxy's exchange.

// retryAction applies the policy to the exchange's attempt that failed.
func (x *exchange) retryAction(k errKind, stale, refused bool) exch.Action {
	held := x.replay.OK()
	if x.replay.Len() > 0 && k.connecting() && x.rt.mixedProtocols() {
		// The replay holds bytes in the framing of one upstream protocol;
		// a retry elsewhere might pick the other.
		held = false
	}
	return exch.Decide(exch.Facts{
		Idempotent:  x.idempotent,
		Connecting:  k.connecting(),
		Stale:       stale,
		Refused:     refused,
		BodyTaken:   x.bodyTaken,
		BodyHeld:    held,
		RetriesLeft: x.retries() + 1 - x.attempts,
		Interim:     x.cont100,
		RespStarted: x.resp != respNone,
	})
}

// retrier is how a client kind starts another attempt.
type retrier interface {
	reconnect(avoid *Upstream) // pick an upstream (another than avoid if there is one) and start
	reopenH2C(u *Upstream)     // a new stream on u, an HTTP/2 upstream
}

// retry applies the policy to a failed attempt on u and, when it allows,
// starts the next one through r; it reports whether it did.
func (x *exchange) retry(h *HTTP, r retrier, u *Upstream, k errKind, stale, refused bool) bool {
	a := x.retryAction(k, stale, refused)
	if a == exch.NoRetry {
		return false
	}
	h.countRetry(u)
	switch a {
	case exch.Fresh:
		x.forceFreshDial = true // same upstream, new connection
		r.reconnect(nil)
	case exch.Same:
		r.reopenH2C(u)
	default:
		r.reconnect(u)
	}
	return true
}

// armReplay starts the exchange's replay buffer: it keeps body bytes when
// some retry could use them (an idempotent method, or a route with an
// HTTP/2 upstream, which may refuse a stream of any method).
func (x *exchange) armReplay() {
	x.replay.Arm(x.retries() > 0 && (x.idempotent || x.rt.hasH2C))
}

// mixedProtocols reports a route with both HTTP/1.1 and HTTP/2 upstreams.
func (r *route) mixedProtocols() bool {
	if r == nil || !r.hasH2C {
		return false
	}
	for _, u := range r.ups {
		if !u.H2() {
			return true
		}
	}
	return false
}

// keepSent keeps p, request body bytes just taken from the client and
// sent on the current attempt.
func (x *exchange) keepSent(h *HTTP, p []byte) {
	x.replay.Keep(p, h.cfg.RetryBodyBytes, x.attempts <= x.retries())
	x.bodyTaken += int64(len(p))
}

// countRetry counts a retry of an attempt on u.
func (h *HTTP) countRetry(u *Upstream) {
	u.M.Results[resRetried].Inc()
	h.m.retries.Inc()
}

// beginAttempt accounts for a new attempt of x on u; endAttemptOn ends
// it, exactly once, with its result.
func (x *exchange) beginAttempt(u *Upstream) {
	x.u = u
	x.upAddr = u.Addr()
	x.attempts++
	u.CountRequest(1)
}

// endAttemptOn accounts for the end of an attempt on u.
func endAttemptOn(u *Upstream, result int) {
	u.CountRequest(-1)
	u.M.Results[result].Inc()
}

// blames reports whether a failed attempt counts against its upstream's
// health (exchange.Blames).
func blames(k errKind, stale, refused bool) bool {
	return exch.Blames(k.upstreamSide(), k.connecting(), stale, refused)
}

// failAttempt ends the attempt of x on uc, an HTTP/1.1 upstream
// connection, after err: the connection is discarded, the attempt
// accounted, the upstream blamed when it failed. It reports whether the
// connection was a stale pooled one.
func (h *HTTP) failAttempt(x *exchange, uc *upConn, err *proxyError) bool {
	stale := uc.reused && !uc.gotByte && err.kind == errUpReset
	x.uc = nil
	u := uc.u
	uc.discard(true)
	endAttemptOn(u, resultFor(err.kind))
	if blames(err.kind, stale, false) {
		h.failed(u, engine.Now())
	}
	return stale
}
