package proxy

import (
	"errors"
	"net"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// errKind classifies what went wrong in an exchange. It decides the status
// the client gets (statusFor), the upstream result label, the access log's
// "end" and whether a retry is allowed.
type errKind uint8

const (
	errNone           errKind = iota
	errBadRequest             // the client's request was malformed (*h1.Error)
	errNoRoute                // no route matches host and path
	errMethod                 // a method the proxy does not forward (CONNECT)
	errHeaderTimeout          // the client did not send a whole head in time
	errBodyTimeout            // the client stalled while sending the body
	errBodyDeadline           // the client did not send the whole body within BodyTimeout
	errBodyRate               // the client sent its body slower than BodyMinRate after BodyGrace
	errClientAbort            // the client went away or half-closed mid-body
	errWriteStall             // an HTTP/2 client kept a response stalled by its window past StallTimeout
	errRefused                // an HTTP/2 stream waited for an upstream slot past ClientUpstreamWait (REFUSED_STREAM)
	errNotImplemented         // a request sluice cannot relay to the upstream picked (WebSocket over HTTP/2 to an h2c one)
	errQueueFull              // the upstream is at its in-use cap and its queue is full (not the upstream's failure)
	errQueueTimeout           // the request waited its queue timeout for a connection to the upstream
	errDial                   // connecting to the upstream failed
	errDialTimeout            // connecting to the upstream timed out (its TLS handshake included)
	errUpTLS                  // the upstream's TLS handshake failed (certificate, alert, protocol)
	errUpTimeout              // no response head, or no body bytes, in time
	errUpReset                // the upstream connection broke (RST, EOF before the end)
	errUpBadResponse          // the upstream's response could not be parsed
)

var errKindEnd = [...]string{
	errNone:           "ok",
	errBadRequest:     "bad_request",
	errNoRoute:        "no_route",
	errMethod:         "bad_method",
	errHeaderTimeout:  "header_timeout",
	errBodyTimeout:    "body_timeout",
	errBodyDeadline:   "body_deadline",
	errBodyRate:       "body_min_rate",
	errClientAbort:    "client_abort",
	errWriteStall:     "stall_timeout",
	errRefused:        "refused",
	errNotImplemented: "not_implemented",
	errQueueFull:      "queue_full",
	errQueueTimeout:   "queue_timeout",
	errDial:           "dial_error",
	errDialTimeout:    "dial_timeout",
	errUpTLS:          "upstream_tls_error",
	errUpTimeout:      "upstream_timeout",
	errUpReset:        "upstream_reset",
	errUpBadResponse:  "bad_response",
}

// String is the token used as the access log's "end" field.
func (k errKind) String() string {
	if int(k) < len(errKindEnd) {
		return errKindEnd[k]
	}
	return "unknown"
}

// upstreamSide reports whether the upstream, not the client, failed.
func (k errKind) upstreamSide() bool { return k >= errDial }

// connecting reports a failure before the connection could carry the
// request (dial, TLS handshake): nothing was sent.
func (k errKind) connecting() bool { return k == errDial || k == errDialTimeout || k == errUpTLS }

// proxyError is an exchange failure: its kind, and the underlying error
// (an *h1.Error, a dial error, ...) when there is one.
type proxyError struct {
	kind errKind
	err  error
}

func (e *proxyError) Error() string {
	if e.err != nil {
		return e.kind.String() + ": " + e.err.Error()
	}
	return e.kind.String()
}

func (e *proxyError) Unwrap() error { return e.err }

// Preallocated errors for the kinds that carry no cause, so failing
// allocates nothing.
var (
	errNoRouteErr       = &proxyError{kind: errNoRoute}
	errMethodErr        = &proxyError{kind: errMethod}
	errHeaderTimeoutErr = &proxyError{kind: errHeaderTimeout}
	errBodyTimeoutErr   = &proxyError{kind: errBodyTimeout}
	errBodyDeadlineErr  = &proxyError{kind: errBodyDeadline}
	errBodyRateErr      = &proxyError{kind: errBodyRate}
	errClientAbortErr   = &proxyError{kind: errClientAbort}
	errNotImplErr       = &proxyError{kind: errNotImplemented}
	errUpTimeoutErr     = &proxyError{kind: errUpTimeout}
	errUpResetErr       = &proxyError{kind: errUpReset}
	errQueueFullErr     = &proxyError{kind: errQueueFull}
	errQueueTimeoutErr  = &proxyError{kind: errQueueTimeout}
)

// bodyErr is the error of a request body that broke deadline k
// (errBodyTimeout, errBodyDeadline or errBodyRate), for either client kind.
func bodyErr(k errKind) *proxyError {
	switch k {
	case errBodyDeadline:
		return errBodyDeadlineErr
	case errBodyRate:
		return errBodyRateErr
	}
	return errBodyTimeoutErr
}

// kindOf classifies any error the exchange can meet.
func kindOf(err error) errKind {
	var pe *proxyError
	if errors.As(err, &pe) {
		return pe.kind
	}
	var he *h1.Error
	if errors.As(err, &he) {
		return errBadRequest
	}
	return errUpReset
}

// dialError wraps a failed dial, telling a timeout from the rest.
func dialError(err error) *proxyError {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &proxyError{kind: errDialTimeout, err: err}
	}
	return &proxyError{kind: errDial, err: err}
}

// errUpTLSTimeout and errUpTLSFailed are an upstream TLS handshake that
// did not finish in time, or failed (the engine logs why).
var (
	errUpTLSTimeout = &proxyError{kind: errDialTimeout, err: errors.New("upstream TLS handshake timed out")}
	errUpTLSFailed  = &proxyError{kind: errUpTLS, err: errors.New("upstream TLS handshake failed")}
	errUpNoH2       = &proxyError{kind: errUpTLS, err: errors.New("h2 upstream did not select ALPN h2")}
)

// statusFor is the one place an error becomes a status code:
//
//	400/413/414/431/501/505  a malformed request, as h1.StatusFor says
//	404                      no route for the host and path
//	405                      CONNECT (sluice is not a forward proxy)
//	501                      WebSocket over HTTP/2 to an upstream that is not HTTP/1.1
//	503                      the upstream is at its in-use cap: its queue is full, or the wait timed out
//	408                      the client was too slow sending its head or body (stall, deadline, rate)
//	502                      the upstream refused, reset, closed early or sent garbage
//	504                      the upstream did not connect or answer in time
func statusFor(err error) int {
	switch k := kindOf(err); k {
	case errBadRequest:
		var he *h1.Error
		if errors.As(err, &he) {
			return h1.StatusFor(he)
		}
		return 400
	case errNoRoute:
		return 404
	case errMethod:
		return 405
	case errNotImplemented:
		return 501
	case errQueueFull, errQueueTimeout:
		return 503
	case errHeaderTimeout, errBodyTimeout, errBodyDeadline, errBodyRate:
		return 408
	case errClientAbort:
		return 400
	case errDialTimeout, errUpTimeout:
		return 504
	default:
		return 502
	}
}
