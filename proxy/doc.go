// Package proxy is what sluice does with a connection once the engine has
// it: the layer-4 relay (tcp mode), the HTTP reverse proxy (HTTP/1.1 and
// HTTP/2, http mode: routes, per-loop upstream pools, balancing, health
// checks, retries, header rewriting, access log, metrics). The admin
// listener is package diag's.
// Upstream state, balancing and health checks are package proxy/upstream's;
// the proxy binds them to routes and configuration (health.go).
//
// # Threading model
//
// Relay and proxy state is loop-owned: a client connection and the
// upstream connections serving it live on the same engine loop, so
// forwarding is a function call and needs no locks. Pools are per loop.
// Only per-upstream counters (load, health, pool gauges) are shared, as
// atomics, read by metrics scrapes.
//
// Routes live behind an atomic pointer: HTTP.SetRoutes (a reload, from
// any goroutine) builds a new router and swaps it; an exchange keeps the
// route it matched, so requests in flight finish on the old routes.
// Upstreams are kept by key across reloads; a loop grows its per-upstream
// pools and queues when it first meets a new one.
//
// Headers: one policy for every protocol pair is package proxy/header
// (hop-by-hop, forwarding fields by whether the client's address is in
// TrustedProxies, Host, Via, trailers); headers.go and h2headers.go only
// name a message's fields and its body's framing for it. forward.go:
// trust, and X-Request-Id kept or generated per loop without locks. Metrics
// (httpmetrics.go): requests by route name and upstream, Prometheus le
// histograms; their HELP text is in diag/metrichelp.go.
//
// # HTTP/1.1
//
// http.go and http_conn.go: one exchange at a time per client connection,
// bodies streamed both ways with backpressure, 100-continue, upgrades,
// truncation never made to look whole. See the comment at the top of
// http.go.
//
// # HTTP/2 (issue #5)
//
// Dispatch (dispatch.go): on a TLS listener ALPN "h2" selects HTTP/2; on a
// cleartext one the 24-byte client preface does (prior knowledge, "h2c").
// A cleartext first line that is neither the preface nor an HTTP/1.x
// request line is closed without a response.
//
// Client connections (h2conn.go) run the sans-I/O codec httpcodec/h2.
// Each stream is one exchange (h2stream.go), routed, balanced, retried,
// logged (proto=HTTP/2.0) and counted (sluice_http_requests_total
// {proto="h2"}) exactly as an HTTP/1.1 request is:
//
//   - to an HTTP/1.1 upstream, through the per-loop pools, one upstream
//     request per stream (body framing in h2headers.go);
//   - to an h2c upstream (route URL h2c://host:port), as a stream of a
//     multiplexed upstream connection (h2up.go, h2stream_up.go): gRPC's
//     trailers and bidirectional streaming pass end to end, message by
//     message. An HTTP/1.1 client to an h2c upstream is translated
//     (h1h2c.go); its trailers arrive in the last chunk whenever the
//     response is chunked, and are dropped otherwise. h2:// upstreams are
//     the same over TLS (ALPN h2);
//   - a WebSocket opened as an extended CONNECT (RFC 8441) goes to an
//     HTTP/1.1 upstream as the RFC 6455 handshake and becomes a tunnel
//     on its stream (h2ws.go).
//
// One request's life is written once for the four protocol pairs where
// it can be: the retry policy and its replay buffer (retry.go over
// package proxy/exchange: exchange.retryAction, one afterFailure per
// client kind), attempt accounting (beginAttempt, endAttemptOn), the
// response's progress (exchange.resp), the access log line and request
// metrics (accesslog.go: HTTP.account), the request's noted fields
// (noteRequest) and body-deadline errors (bodyErr). Still one copy per
// client kind: the request state booleans besides resp, the tunnels
// (http_conn.go, h2ws.go) and the downstream writes.
//
// Pools and the in-use cap: pool.go (the idle pool follows demand, purged
// by age) and queue.go (UpstreamMaxConns: slots over all loops, a FIFO
// per loop, 503 past its bounds).
//
// Both kinds of upstream connection, HTTP/1.1 (upConn) and HTTP/2
// (h2UpConn), report to the exchange through one sink, upSink (head, body,
// end with trailers, failure with a refused flag, writable), naming the
// attempt by its upAttempt handle (ownership, pause/resume, credit):
// attempt.go; the exchanges adapt to it in sinks.go.
//
// Upstreams over TLS (https:// for HTTP/1.1, h2:// for HTTP/2) are dialed
// with engine.Loop.DialTLS: verified against UpstreamTLS, one session
// cache per upstream; a failed handshake is a failed dial.
//
// Flow control is backpressure: request bytes are credited to the client
// (Consumed) only as an upstream takes them; response bytes wait for the
// client's window with their upstream stopped (an HTTP/1.1 upstream is not
// read, an h2c one gets no WINDOW_UPDATE). HTTP/2 output is flushed once
// per loop batch of events, so many responses leave in one TLS record and
// one writev.
//
// Errors per stream: before the response head, statusFor's 502/504 as
// HEADERS and DATA on that stream; after, RST_STREAM (INTERNAL_ERROR, or
// CANCEL for a timeout), never END_STREAM on a cut body. A client's
// RST_STREAM cancels the upstream exchange (an HTTP/1.1 upstream
// connection half used is reset, never pooled; an h2c stream gets
// RST_STREAM CANCEL).
//
// The end of a connection: drain (OnDrain) and the idle timeout (no
// stream for IdleTimeout) send GOAWAY(2^31-1) and a PING, then, on the
// ACK or after a second, GOAWAY with the last stream processed; streams
// up to it finish, then the engine's graceful close (close_notify, FIN,
// linger) runs with outcome clean (drain) or idle_timeout. h2c upstream
// connections get GOAWAY on drain and close after their last stream. A
// protocol error sends the codec's GOAWAY and closes with protocol_error.
//
// Limits and defenses (defaults; HTTPConfig.H2 and the -h2-* flags):
//
//	concurrent streams per connection   100      more: RST_STREAM REFUSED_STREAM
//	header list size                    64 KiB   more: 431 on that stream (decoded field by field, never materialized)
//	HPACK table the client may use      4 KiB    an "HPACK bomb" is bounded by the list size above
//	stream / connection receive window  256 KiB / 1 MiB   request bytes a client can make sluice hold
//	Rapid Reset (CVE-2023-44487)        200 resets / 10 s  then GOAWAY ENHANCE_YOUR_CALM
//	CONTINUATION flood                  64 frames, 128 KiB per header block  then ENHANCE_YOUR_CALM
//	SETTINGS / PING floods              100 / 10 s each    then ENHANCE_YOUR_CALM
//	WINDOW_UPDATE flood                 1000 / s (+2 per DATA sent)
//	empty DATA, PRIORITY, unknown frames 1000 / 10 s       then ENHANCE_YOUR_CALM
//	response bytes held per connection  1 MiB (H2MaxBuffered)  past it HTTP/1.1 upstreams are not read
//	response bytes held per stream      one upstream read (64 KiB), or the h2c stream window (64 KiB)
//	upstreams held per connection       16 HTTP/1.1 upstream connections, 100 h2c/h2 stream slots (budget.go)
//	                                    more streams wait, with no upstream work, up to 30 s: then REFUSED_STREAM
//	stalled window (zero or trickling)  StallTimeout (15 s, at most WriteTimeout)  then RST_STREAM CANCEL; the
//	                                    HTTP/1.1 upstream is drained and pooled (256 KiB left at most) or reset;
//	                                    access log end=stall_timeout
//	request body stall                  IdleTimeout (60 s)     then 408 on that stream
//	request body deadline, rate         5 min; 500 B/s on average after 10 s (time sluice holds it back not counted)
//	                                    then 408 on that stream, or RST_STREAM CANCEL after a response head
//	client preface                      HeaderTimeout (30 s)   then close
//
// A client that half-closes can open no window any more: its streams that
// are stalled, or whose requests are incomplete, are abandoned. A client
// that does not read its socket meets the engine's write timeout.
//
// Metrics (httpmetrics.go, budget.go), all created at start-up:
// sluice_http2_streams_active, sluice_http2_goaways_total{direction,code},
// sluice_http2_rst_streams_total{direction,code},
// sluice_http2_flow_control_stalls_total, sluice_http2_errors_total{reason}
// (codec errors and tripped defenses), sluice_http2_upstream_slots_held,
// sluice_http2_upstream_slot_waits_total, _slot_refusals_total,
// sluice_http2_stall_resets_total, sluice_upstream_discards_total{result},
// sluice_http_body_timeouts_total{proto,reason}, and the HTTP request
// metrics with proto="h2".
package proxy
