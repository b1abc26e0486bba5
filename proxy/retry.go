package proxy

import "github.com/sluice-proxy/sluice/engine"

// The retry policy, once for every protocol pair (HTTP/1.1 or HTTP/2
// client × HTTP/1.1 or h2c/h2 upstream). A failed attempt goes again only
// when nothing of the request can have been processed and every request
// byte it took can be sent again:
//
//   - a failed connect (dial, its TLS handshake, ALPN): nothing of this
//     attempt reached the upstream, so any method goes again, to another
//     upstream if there is one;
//   - a refused stream (RST_STREAM REFUSED_STREAM, or above the last
//     stream id of a GOAWAY): RFC 9113 §8.7 says it was not processed, so
//     any method goes again, on a new stream to the same upstream;
//   - a stale pooled HTTP/1.1 connection (reused, broken before any
//     response byte): the upstream may have seen the request, so only an
//     idempotent method (RFC 9110 §9.2.2) goes again, on a fresh
//     connection to the same upstream.
//
// Never once the response head went to the client, never past the route's
// retries, and never when a body byte taken from the client is not in the
// replay buffer. A 100 Continue passed to the client means the upstream
// answered: only a refusal (which says it did nothing) is retried then.

// retryAction is what to do after a failed attempt.
type retryAction uint8

const (
	noRetry        retryAction = iota
	retryElsewhere             // a failed connect: prefer another upstream
	retryFresh                 // a stale pooled connection: same upstream, new connection
	retrySame                  // a refused stream: same upstream, new stream
)

// retryFacts is everything the policy looks at.
type retryFacts struct {
	idempotent  bool    // the method is idempotent (RFC 9110 §9.2.2)
	kind        errKind // how the attempt failed
	stale       bool    // a reused pooled HTTP/1.1 connection failed before any response byte
	refused     bool    // the upstream refused the stream (RFC 9113 §8.7)
	bodyTaken   int64   // request body bytes taken from the client and sent to an attempt
	bodyHeld    bool    // ... and every one of them is in the replay buffer
	retriesLeft int     // more attempts the route allows
	interim     bool    // a 100 Continue went to the client
	respStarted bool    // the response head went to the client
}

// retryPolicy decides whether and how a failed attempt goes again.
func retryPolicy(f retryFacts) retryAction {
	if f.retriesLeft <= 0 || f.respStarted || f.bodyTaken > 0 && !f.bodyHeld {
		return noRetry
	}
	switch {
	case f.kind.connecting() && !f.interim:
		return retryElsewhere
	case f.refused:
		return retrySame
	case f.stale && f.idempotent && !f.interim:
		return retryFresh
	}
	return noRetry
}

// blames reports whether a failed attempt counts against its upstream's
// health (passive checks): not the client's failures, not a stale pooled
// connection (the upstream closed an idle one), not a refusal (the
// upstream said it did nothing: load, or its own graceful shutdown).
func blames(k errKind, stale, refused bool) bool {
	return k.upstreamSide() && !stale && (!refused || k.connecting())
}

// retryAction applies the policy to the exchange's attempt that failed.
func (x *exchange) retryAction(k errKind, stale, refused bool) retryAction {
	held := x.replay.ok
	if len(x.replay.buf) > 0 && k.connecting() && x.rt.mixedProtocols() {
		// The replay holds bytes in the framing of one upstream protocol;
		// a retry elsewhere might pick the other.
		held = false
	}
	return retryPolicy(retryFacts{
		idempotent:  x.idempotent,
		kind:        k,
		stale:       stale,
		refused:     refused,
		bodyTaken:   x.bodyTaken,
		bodyHeld:    held,
		retriesLeft: x.retries() + 1 - x.attempts,
		interim:     x.cont100,
		respStarted: x.resp != respNone,
	})
}

// armReplay starts the exchange's replay buffer: it keeps body bytes when
// some retry could use them (an idempotent method, or a route with an
// HTTP/2 upstream, which may refuse a stream of any method).
func (x *exchange) armReplay() {
	x.replay.buf = x.replay.buf[:0]
	x.replay.sent = 0
	x.replay.ok = x.retries() > 0 && (x.idempotent || x.rt.hasH2C)
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

// replay keeps the request body bytes sent upstream while a retry may
// still need them, in the form the attempt wrote them (HTTP/1.1 framing
// for an HTTP/1.1 upstream, DATA payload for an HTTP/2 one), bounded by
// RetryBodyBytes: past it, or once no retry is left, the copy is dropped
// for good and ok turns false.
type replay struct {
	buf  []byte
	ok   bool // every body byte taken so far is in buf
	sent int  // bytes of buf sent on the current attempt (an HTTP/2 window may take part)
}

// keep copies p, sent on the current attempt.
func (r *replay) keep(p []byte, limit int, retriesLeft bool) {
	if !r.ok {
		return
	}
	if len(r.buf)+len(p) > limit || !retriesLeft {
		r.ok = false
		r.buf = r.buf[:0]
		r.sent = 0
		return
	}
	r.buf = append(r.buf, p...)
	r.sent = len(r.buf)
}

// rest is what the current attempt has still to resend.
func (r *replay) rest() []byte { return r.buf[r.sent:] }

// keepSent keeps p, request body bytes just taken from the client and
// sent on the current attempt.
func (x *exchange) keepSent(h *HTTP, p []byte) {
	x.replay.keep(p, h.cfg.RetryBodyBytes, x.attempts <= x.retries())
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
