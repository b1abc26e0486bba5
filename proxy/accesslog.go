package proxy

import (
	"log/slog"

	"github.com/sluice-proxy/sluice/engine"
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
func (cc *clientConn) logRequest() {
	if !cc.h.accessOn() {
		return
	}
	x := &cc.x
	method, path, host := "-", "-", "-"
	if x.mEnd > 0 {
		method = string(x.logb[:x.mEnd])
		path = string(x.logb[x.mEnd:x.tEnd])
		host = string(x.logb[x.tEnd:x.hEnd])
	}
	proto := "HTTP/1.1"
	if x.minor == 0 {
		proto = "HTTP/1.0"
	}
	var upHead int64
	if x.headAt != 0 && x.sentAt != 0 {
		upHead = x.headAt - x.sentAt
	}
	attrs := [...]slog.Attr{
		slog.String("conn", cc.c.String()),
		slog.String("client", cc.ip),
		slog.String("method", method),
		slog.String("host", host),
		slog.String("path", path),
		slog.String("proto", proto),
		slog.Int("status", x.status),
		slog.Int64("bytes_in", x.bytesIn),
		slog.Int64("bytes_out", x.bytesOut),
		slog.Duration("duration", engine.Dur(engine.Now()-x.start)),
		slog.Duration("upstream_header", engine.Dur(upHead)),
		slog.String("user_agent", userAgent(x)),
		slog.String("tls_version", cc.tlsVer),
		slog.String("alpn", cc.alpn),
		slog.String("request_id", string(x.reqID)),
		slog.String("route", routeName(x.rt)),
		slog.String("upstream", x.upAddr),
		slog.Int("attempts", x.attempts),
		slog.String("end", x.end.String()),
	}
	cc.h.logAccess(attrs[:])
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
