package proxy

import (
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
)

// One sink and one attempt handle: how an exchange meets an upstream,
// whichever protocol the upstream speaks.
//
// An attempt is one try of a request on one upstream: a request on an
// HTTP/1.1 upstream connection (upConn, pool.go) or a stream of an HTTP/2
// one (h2UpConn, h2up.go). The upstream side reports the response to the
// exchange's upSink, naming the attempt with its upAttempt handle; the
// exchange steers the attempt through that handle (pause, resume, credit,
// ownership). Both live on the loop: every call is a function call.

// upSink is what an attempt reports to: the exchange it serves (an
// HTTP/1.1 client connection or an HTTP/2 stream), or the discard of a
// response nobody wants. A sink ignores events of an attempt it no
// longer holds.
type upSink interface {
	// upStart: the attempt's connection is open and the request head is on
	// its way; the body may flow. Until then it stays with the client
	// side, so a failed dial leaves the request free to go elsewhere.
	upStart(a upAttempt)
	// upHead: an interim (1xx other than 101) or the final response head.
	// false: the exchange ended instead.
	upHead(a upAttempt, h *upRespHead) bool
	// upBody: response body bytes; end: they end the response (the last
	// bytes of a Content-Length body, or DATA with END_STREAM). The sink
	// credits what it has passed on (a.consumed) and pauses the attempt
	// (a.pause) while its client takes no more. false: the exchange ended.
	upBody(a upAttempt, data []byte, end bool) bool
	// upEnd: the response ended, with its trailers (often none).
	upEnd(a upAttempt, t upRespTrailers)
	// upFail: the attempt failed. refused: the upstream did not process
	// it (REFUSED_STREAM, a stream above GOAWAY's last id, a connection
	// that never opened), so it may go again whatever its method.
	upFail(a upAttempt, err *proxyError, refused bool)
	// upWritable: the upstream takes request bytes again (drained below
	// its low-water mark, or its window opened).
	upWritable(a upAttempt)
}

// tunnelSink is an upSink that can take an HTTP/1.1 upgrade: after a 101
// the attempt's connection becomes a raw relay. Only HTTP/1.1 upstream
// connections upgrade, so only they need it.
type tunnelSink interface {
	upSink
	// upgrade gets the 101 and the bytes that followed it; false refuses
	// it (the attempt then fails).
	upgrade(uc *upConn, rest []byte) bool
	// tunnelFromUpstream, tunnelEOF, tunnelIdle and tunnelClosed relay
	// the upgraded connection.
	tunnelFromUpstream(uc *upConn, b []byte)
	tunnelEOF(uc *upConn)
	tunnelIdle()
	tunnelClosed(uc *upConn, clean bool)
}

// upRespHead is a response head from either kind of upstream, valid during
// the upHead call only. status and end mean the same for both; the
// fields stay in the upstream's own form until the client side encodes
// them in its protocol.
type upRespHead struct {
	status int
	end    bool         // no body follows: the response is complete
	h1     *h1.Response // from an HTTP/1.1 upstream, and raw: the head as received
	raw    []byte
	h2     *h2.Headers // from an HTTP/2 upstream
}

// upRespTrailers are a response's trailers from either kind of upstream
// (both empty: none), valid during the upEnd call only.
type upRespTrailers struct {
	h1 *h1.Headers
	h2 []hpack.HeaderField
}

// empty reports whether there are no trailers.
func (t upRespTrailers) empty() bool {
	return (t.h1 == nil || t.h1.Len() == 0) && len(t.h2) == 0
}

// upAttempt is the handle of one attempt: a request on an HTTP/1.1
// upstream connection, or a stream of an HTTP/2 one. The zero value is no
// attempt. It is a small value: comparing two tells whether they are the
// same attempt.
type upAttempt struct {
	uc *upConn   // an HTTP/1.1 attempt: the connection serving it
	up *h2UpConn // an HTTP/2 attempt: the connection carrying its stream
	id uint32    // the stream, on up
}

// serves reports whether the attempt still reports to s: its connection
// was not released, ended or handed to another exchange meanwhile.
func (a upAttempt) serves(s upSink) bool {
	switch {
	case a.uc != nil:
		return a.uc.cc != nil && upSink(a.uc.cc) == s
	case a.up != nil:
		return a.up.users[a.id] == s
	}
	return false
}

// pause stops response bytes for now: an HTTP/1.1 upstream is no longer
// read (what was read and not passed on waits in its carry). An HTTP/2
// stream needs nothing: bytes not credited (consumed) hold its window.
func (a upAttempt) pause() {
	if a.uc != nil {
		a.uc.pauseRead()
	}
}

// paused reports whether pause holds an HTTP/1.1 upstream's reads.
func (a upAttempt) paused() bool { return a.uc != nil && a.uc.readPaused }

// resume undoes pause: an HTTP/1.1 upstream first passes on what its
// carry kept, then reads on, with readTimeout between reads.
func (a upAttempt) resume(readTimeout int64) {
	if a.uc != nil {
		a.uc.resume(readTimeout)
	}
}

// consumed credits n response bytes passed on (or dropped) to an HTTP/2
// upstream's windows; an HTTP/1.1 upstream has no credit to give.
func (a upAttempt) consumed(n int) {
	if a.up != nil {
		a.up.consumed(a.id, n)
	}
}
