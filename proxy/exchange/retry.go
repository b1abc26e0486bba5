package exchange

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

// Action is what to do after a failed attempt.
type Action uint8

const (
	NoRetry   Action = iota
	Elsewhere        // a failed connect: prefer another upstream
	Fresh            // a stale pooled connection: same upstream, new connection
	Same             // a refused stream: same upstream, new stream
)

var actionNames = [...]string{NoRetry: "no_retry", Elsewhere: "elsewhere", Fresh: "fresh", Same: "same"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "unknown"
}

// Facts is everything the policy looks at.
type Facts struct {
	Idempotent  bool  // the method is idempotent (RFC 9110 §9.2.2)
	Connecting  bool  // the attempt failed before its connection could carry it (dial, TLS, ALPN)
	Stale       bool  // a reused pooled HTTP/1.1 connection failed before any response byte
	Refused     bool  // the upstream refused the stream (RFC 9113 §8.7)
	BodyTaken   int64 // request body bytes taken from the client and sent to an attempt
	BodyHeld    bool  // ... and every one of them is in the replay buffer
	RetriesLeft int   // more attempts the route allows
	Interim     bool  // a 100 Continue went to the client
	RespStarted bool  // the response head went to the client
}

// Decide says whether and how a failed attempt goes again.
func Decide(f Facts) Action {
	if f.RetriesLeft <= 0 || f.RespStarted || f.BodyTaken > 0 && !f.BodyHeld {
		return NoRetry
	}
	switch {
	case f.Connecting && !f.Interim:
		return Elsewhere
	case f.Refused:
		return Same
	case f.Stale && f.Idempotent && !f.Interim:
		return Fresh
	}
	return NoRetry
}

// Blames reports whether a failed attempt counts against its upstream's
// health (passive checks): only the upstream's own failures
// (upstreamSide), not a stale pooled connection (the upstream closed an
// idle one), not a refusal (the upstream said it did nothing: load, or its
// own graceful shutdown) unless the connection never opened.
func Blames(upstreamSide, connecting, stale, refused bool) bool {
	return upstreamSide && !stale && (!refused || connecting)
}
