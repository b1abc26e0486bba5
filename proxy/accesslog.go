package proxy

import (
	"log/slog"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/proxy/header"
)

// The access log is one Info line per request, message "request":
//
//	conn             client connection id (as in the engine's logs)
//	client           client IP address
//	method, host     as received ("-" for a request that could not be parsed)
//	path             target as sent upstream (origin form)
//	proto            HTTP/1.0 or HTTP/1.1
//	status           status sent to the client; 499 when the client left first
//	bytes_in         request body bytes read from the client
//	bytes_out        response body bytes sent to the client
//	duration         from the request head being read to the end of the exchange
//	upstream_header  from the request being sent to the response head (0 if none)
//	user_agent       the request's User-Agent ("" if none)
//	tls_version      TLS 1.2 or TLS 1.3 ("" on cleartext)
//	alpn             h2, http/1.1 or "" (cleartext, or no ALPN)
//	request_id       X-Request-Id as sent upstream: the client's or generated
//	route            the route's name ("" if none matched)
//	upstream         host:port of the last attempt ("" if none)
//	attempts         upstream attempts (more than 1 after retries)
//	end              ok, client_abort, upstream_reset, upstream_timeout,
//	                 dial_error, dial_timeout, bad_response, bad_request,
//	                 header_timeout, body_timeout, no_route, bad_method,
//	                 queue_full, queue_timeout (503 at -upstream-max-conns),
//	                 body_deadline, body_min_rate (408: -body-timeout,
//	                 -body-min-rate), stall_timeout (HTTP/2: reset after
//	                 -h2-stall-timeout), refused (HTTP/2: REFUSED_STREAM
//	                 after -client-upstream-wait)
//
// An upgraded exchange (WebSocket) is logged when the tunnel ends, with the
// bytes relayed each way.
//
// HTTP/2 requests say proto HTTP/2.0 and carry one more field, stream (the
// stream id), after conn.
//
// account writes it, with the request metrics, for both client kinds.
// proto is the metrics' index (HTTP/1.minor, or protoH2); stream is 0 for
// HTTP/1.x.
func (h *HTTP) account(x *exchange, now int64, c *engine.Conn, ip, tlsVer, alpn string, proto int, stream uint32) {
	h.m.request(x.rt, x.u, proto, x.status, engine.Dur(now-x.start).Seconds())
	if !h.accessOn() {
		return
	}
	method, path, host := "-", "-", "-"
	if x.mEnd > 0 {
		method = string(x.logb[:x.mEnd])
		path = string(x.logb[x.mEnd:x.tEnd])
		host = string(x.logb[x.tEnd:x.hEnd])
	}
	protoName := "HTTP/1.1"
	switch proto {
	case 0:
		protoName = "HTTP/1.0"
	case protoH2:
		protoName = "HTTP/2.0"
	}
	var upHead int64
	if x.headAt != 0 && x.sentAt != 0 {
		upHead = x.headAt - x.sentAt
	}
	var buf [20]slog.Attr
	attrs := append(buf[:0], slog.String("conn", c.String()))
	if stream != 0 {
		attrs = append(attrs, slog.Uint64("stream", uint64(stream)))
	}
	attrs = append(attrs,
		slog.String("client", ip),
		slog.String("method", method),
		slog.String("host", host),
		slog.String("path", path),
		slog.String("proto", protoName),
		slog.Int("status", x.status),
		slog.Int64("bytes_in", x.bytesIn),
		slog.Int64("bytes_out", x.bytesOut),
		slog.Duration("duration", engine.Dur(engine.Now()-x.start)),
		slog.Duration("upstream_header", engine.Dur(upHead)),
		slog.String("user_agent", userAgent(x)),
		slog.String("tls_version", tlsVer),
		slog.String("alpn", alpn),
		slog.String("request_id", string(x.reqID)),
		slog.String("route", routeName(x.rt)),
		slog.String("upstream", x.upAddr),
		slog.Int("attempts", x.attempts),
		slog.String("end", x.end.String()),
	)
	h.logAccess(attrs)
}

// noteRequest copies what the access log and the upstream need of a
// request head: logb holds method, target, host, then the user agent;
// reqID the client's valid X-Request-Id, or one generated on loop ls.
// fields yields the head's fields; HTTP/2 names arrive lower case.
func noteRequest[T ~string | ~[]byte](x *exchange, ls *loopState, method, target, host T, fields func(yield func(name, value T) bool)) {
	x.logb = append(x.logb, method...)
	x.mEnd = len(x.logb)
	x.logb = append(x.logb, target...)
	x.tEnd = len(x.logb)
	x.logb = append(x.logb, host...)
	x.hEnd = len(x.logb)
	for name, value := range fields {
		switch {
		case len(name) == 10 && header.EqualFold(name, "user-agent") && len(x.logb) == x.hEnd:
			x.logb = append(x.logb, value...)
		case len(name) == 12 && header.EqualFold(name, "x-request-id") && len(x.reqID) == 0 && validRequestID(value):
			x.reqID = append(x.reqID, value...)
		}
	}
	if len(x.reqID) == 0 {
		x.reqID = ls.appendRequestID(x.reqID)
	}
}

// userAgent is the exchange's User-Agent, kept in logb after the host.
func userAgent(x *exchange) string {
	if x.hEnd == 0 || x.hEnd > len(x.logb) {
		return ""
	}
	return string(x.logb[x.hEnd:])
}

func routeName(rt *route) string {
	if rt == nil {
		return ""
	}
	return rt.name
}
