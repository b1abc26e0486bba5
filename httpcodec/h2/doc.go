// Package h2 is sluice's sans-I/O HTTP/2 (RFC 9113) connection: the framer,
// the stream state machine, flow control, header validation and the
// defenses against abusive peers, for both ends of a proxy — the server
// role (clients connect to sluice) and the client role (sluice multiplexes
// streams to an h2c upstream). HPACK is golang.org/x/net/http2/hpack;
// everything else is here. A header block made only of indexed fields is
// kept and sent again for the same field list while the encoder's table
// has not moved (blockcache.go): a proxy's repeated response heads skip
// the encoder and, once checked, the response validation.
//
// # What it owns, what it does not
//
// h2 turns bytes from the peer into events and the caller's requests into
// bytes. It does no I/O, starts no goroutines, never reads the clock (the
// caller passes time in) and never logs; errors are typed values and a
// CountError hook counts them. It does not do TLS, ALPN, the HTTP/1.1
// Upgrade to h2c, routing, or HTTP semantics beyond what RFC 9113 §8
// requires of a message (it does not join cookie crumbs or translate to
// HTTP/1.1). Server push is never sent and always refused; priorities
// (RFC 7540 and RFC 9218) are parsed, validated and ignored, and
// SETTINGS_NO_RFC7540_PRIORITIES is advertised.
//
// What other packages use is exported: Conn and NewConn, Config and its
// defaults, Handler, Headers, Settings, Stats, the error types and codes.
// The frame layer (the framer, the frame types and the append* frame
// builders) is internal to the package; its tests and fuzz targets reach
// it from inside.
//
// # Threading model
//
// A Conn belongs to one goroutine, the event loop that owns its socket.
// Every method, and every Handler callback, runs on that goroutine; nothing
// is locked. Handler methods run synchronously inside Feed and OnTimer and
// may call the write methods (WriteHeaders, WriteData, WriteTrailers,
// ResetStream, Consumed, Ping, GoAway, Shutdown, OpenStream), which only
// queue output; they must not call Feed or OnTimer.
//
// # The loop
//
//	c := h2.NewConn(h2.Server, cfg, handler, now)
//	on readable:  n, err := c.Feed(now, buf); buf = buf[n:] (keep the tail)
//	              out = c.AppendOutput(out); write out
//	              (or write c.Output() and call c.DiscardOutput(): no copy)
//	              if err != nil: flush, close (a GOAWAY is already queued)
//	on timer:     c.OnTimer(now); re-arm at c.NextDeadline()
//	when c.Drained(): flush and close
//
// Feed consumes whole frames only; at most 9+MaxReadFrameSize
// bytes are ever needed to make progress. Data given to OnData aliases the
// buffer passed to Feed and is valid only during the call; header field
// slices are reused; strings may be kept.
//
// A proxy's server side, one request:
//
//	func (p *proxyConn) OnHeaders(id uint32, h *h2.Headers) {
//		// h.Method, h.Authority, h.Path, h.Fields (pseudo first); route it.
//		p.upstream.Start(id, h)
//	}
//	func (p *proxyConn) OnData(id uint32, data []byte, end bool) {
//		p.upstream.Forward(id, data, end) // copies or writes out now
//		p.c.Consumed(id, len(data))       // only now may the client send more
//	}
//	// when the upstream answers:
//	p.c.WriteHeaders(id, []hpack.HeaderField{{Name: ":status", Value: "200"}, ...}, false)
//	n, _ := p.c.WriteData(id, body, true) // n < len(body): wait for OnWindowOpen(id)
//
// And its client side, to an h2c upstream:
//
//	u := h2.NewConn(h2.Client, cfg, upstreamHandler, now) // preface+SETTINGS queued
//	if u.CanOpenStream() {
//		id, err := u.OpenStream(fields, false) // :method, :scheme, :authority, :path first
//		u.WriteData(id, body, true)
//	}
//	// upstreamHandler.OnHeaders/OnData/OnTrailers carry the response;
//	// OnReset with REFUSED_STREAM (e.g. after a GOAWAY) means "retry elsewhere".
//
// # Flow control and backpressure
//
// The peer gets more window only when the caller reports bytes with
// Consumed, so a peer can make sluice hold at most ConnWindow bytes of DATA
// per connection (InitialStreamWindow per stream), whatever it sends.
// WriteData sends what the windows allow and says how much; OnWindowOpen
// says when to try again; BlockedSince/OldestBlocked report how long a
// stream has been stalled, for the caller's write timeout (window
// reopenings a byte at a time do not reset it). A caller must not wait for
// more unconsumed data than InitialStreamWindow before consuming, or both
// sides wait forever.
//
// # Errors
//
// A *ConnError ends the connection: the codec queues GOAWAY (with the
// reason as debug data) and Feed returns it, and keeps returning it. A
// stream error costs only the stream: RST_STREAM is queued and, if the
// caller knew the stream, Handler.OnReset gets a *StreamError. Each error
// records who raised it (ByCodec, ByCaller, ByPeer). Malformed requests
// (RFC 9113 §8.1.1) are reset before the caller sees them; a request whose
// header list exceeds MaxHeaderListSize gets a 431 response from the codec.
//
// # Graceful shutdown
//
// Shutdown sends GOAWAY(2^31-1) and a PING, then, on the PING's ACK or
// after GoAwayTimeout (NextDeadline), GOAWAY with the last stream actually
// processed; streams up to it finish, later ones are ignored, and Drained
// turns true after the last one ends. GoAway sends a single GOAWAY at once.
//
// # Limits and defaults
//
//	SETTINGS_MAX_CONCURRENT_STREAMS  100        excess HEADERS: RST_STREAM REFUSED_STREAM
//	SETTINGS_MAX_HEADER_LIST_SIZE    64 KiB     enforced while decoding; 431 (server), CANCEL (client)
//	SETTINGS_HEADER_TABLE_SIZE       4096       HPACK table the peer may make us keep
//	SETTINGS_MAX_FRAME_SIZE          16384      larger frames: FRAME_SIZE_ERROR
//	SETTINGS_INITIAL_WINDOW_SIZE     256 KiB    per stream receive window
//	connection receive window        1 MiB      the most DATA a peer can make us hold
//	header block, encoded            128 KiB    (2 x list size) else ENHANCE_YOUR_CALM
//	HEADERS+CONTINUATION frames      64         per block, else ENHANCE_YOUR_CALM
//	streams reset (Rapid Reset)      200/10 s   peer RSTs of open streams + streams we had to reset/refuse
//	PING                             100/10 s
//	SETTINGS                         100/10 s
//	WINDOW_UPDATE                    1000/1 s   + 2 per DATA frame we sent
//	empty/ignored frames             1000/10 s  empty DATA, PRIORITY, unknown types, ...
//	queued control frames            1000       not yet taken by AppendOutput
//	outstanding Pings                8
//	closed streams remembered        128, 10 s  late frames get RFC 9113 §5.1 treatment
//	SETTINGS ACK timeout             10 s       SETTINGS_TIMEOUT
//	Shutdown PING wait               1 s
//
// A budget trip ends the connection with GOAWAY ENHANCE_YOUR_CALM. Every
// value is a Config field; Budget{Max: -1} disables a rate check.
// Until the server's SETTINGS arrive, the client role opens at most 100
// streams.
//
// # Metrics
//
// Conn.Stats returns counters (streams opened and refused, GOAWAY and
// RST_STREAM sent and received by code, flow-control stalls, bytes) and
// gauges (active and blocked streams); Config.CountError receives a token
// for every error and every tripped defense.
//
// # Tests against real peers
//
// The interop tests run against net/http's HTTP/2 and against
// golang.org/x/net/http2's Server.ServeConn and Transport.NewClientConn
// (xnet_test.go), and the framer benchmarks put x/net's Framer beside ours.
// TestH2Spec runs h2spec (pinned as a Go tool in go.mod) against a
// server-role Conn.
package h2
