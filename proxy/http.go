package proxy

// The HTTP/1.1 reverse proxy (issue #4, items 3 and 4); HTTP/2 shares its
// configuration, routes, pools, balancing, health, retries, error
// statuses, header policy, metrics and access log (doc.go, h2*.go).
//
// Threading. Everything runs on engine loops. A client connection
// (clientConn, http_conn.go) and the upstream connections serving it
// (upConn, pool.go) live on the same loop, so forwarding is a function
// call; the pools are per loop (loopState). Only per-upstream counters
// (load, health, pool gauges) are shared across loops, as atomics.
// Active health checks run on the loops too, with loop timers (package
// upstream; health.go gives them their settings).
//
// One request at a time per client connection. Requests are answered in
// order; while one is in flight the connection reads only its body, and
// pipelined bytes wait in the engine (reads paused, at most one read
// buffer). Bodies stream both ways; a side whose peer is over the engine's
// high-water mark stops being read until the peer drains (OnWritable).
// Memory per connection is bounded by the engine's limits and the codec's.
//
// Framing to the client: a Content-Length body is forwarded as is; a
// chunked or read-until-close upstream body is chunked for an HTTP/1.1
// client and sent until close to an HTTP/1.0 one. A chunked request body
// is chunked again upstream (extensions dropped, trailers kept).
//
// Expect: 100-continue is forwarded, and the upstream's 100 Continue is
// passed to the client, so an upstream can refuse a body before it is
// sent. A final response that arrives before the whole request body
// closes the client connection afterwards (Connection: close), since the
// rest of the body would otherwise be read as the next request.
//
// Upgrade (WebSocket, ...): the request keeps its Upgrade field and
// "Connection: upgrade"; after the upstream's 101 both connections become
// a raw relay with backpressure and half-close, until both ends finish or
// TunnelIdleTimeout. An upgrade the upstream declines is an ordinary
// response.
//
// A response cut by the upstream is never made to look whole: a
// Content-Length or until-close body ends with a reset of the client
// connection, a chunked one without its last chunk (then FIN).
//
// Drain (engine.Drain → OnDrain): idle client connections and pooled
// upstream connections close at once (graceful close); a request in
// flight completes, its response carries Connection: close (or, if the
// head was already out, the connection closes after the body).
//
// Errors become statuses in one place, statusFor (errors.go). Header
// policy: headers.go. Metrics: httpmetrics.go. Access log: accesslog.go.

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h1"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
	"github.com/sluice-proxy/sluice/proxy/header"
	"github.com/sluice-proxy/sluice/proxy/upstream"
	"github.com/sluice-proxy/sluice/tlsio"
)

// HTTPConfig configures the HTTP reverse proxy (HTTP/1.1 and HTTP/2). Zero
// values take the defaults named on each field.
type HTTPConfig struct {
	// Routes map host and path prefix to upstreams (see Route for the
	// matching rules). At least one is required; a plain -upstream list
	// is the route "/=URL,...".
	Routes []Route

	// DialTimeout bounds connecting to an upstream (default 5s). A dial
	// that times out answers 504, one that fails answers 502.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the time from the request being fully
	// sent upstream to the response head being complete (default 60s,
	// nginx's proxy_read_timeout). Past it: 504.
	ResponseHeaderTimeout time.Duration
	// ReadTimeout bounds the gap between two reads of a response body
	// (default 60s). Time the proxy itself stops reading because the
	// client is slow does not count. Past it the response is cut (see
	// doc.go: a truncated response is never made to look complete).
	ReadTimeout time.Duration
	// HeaderTimeout bounds receiving a request head, from the connection's
	// start or the next request's first byte (default 30s). Past it: 408
	// and close; a connection that sent nothing is closed silently.
	HeaderTimeout time.Duration
	// IdleTimeout closes a client keep-alive connection idle between
	// requests (default 60s). It also bounds a stall while the client
	// sends a request body (then 408).
	IdleTimeout time.Duration
	// UpstreamIdleTimeout closes a pooled upstream connection unused this
	// long (default 60s): an HTTP/1.1 one idle in the pool, an HTTP/2 one
	// with no stream.
	UpstreamIdleTimeout time.Duration
	// TunnelIdleTimeout closes an upgraded connection (WebSocket, ...)
	// when no byte moved either way for this long (default 5m).
	TunnelIdleTimeout time.Duration

	// MaxHeadBytes, MaxFields and MaxRequestLine limit a request head
	// (defaults from h1: 32 KiB → 431, 100 fields → 431, 8 KiB → 414).
	MaxHeadBytes, MaxFields, MaxRequestLine int

	// PoolSize caps the idle keep-alive connections kept per upstream per
	// event loop (default 1024). The pool follows demand: a connection
	// freed by a finished request is kept (up to this cap) and closed once
	// unused for UpstreamIdleTimeout, most recently used reused first, so
	// a burst keeps what the next burst needs and a quiet spell gives the
	// connections back (HAProxy keeps every idle server connection and
	// purges by age; Envoy closes by idle_timeout). A small cap makes
	// every request over it dial and close a connection.
	PoolSize int

	// UpstreamMaxConns caps the connections in use per upstream, over all
	// loops (0, the default: no cap). That, not the idle pool, protects a
	// backend. For an HTTP/1.1 upstream (http://, https://) a connection
	// is in use from its dial, or from being taken from the pool, until
	// it goes back to the pool or closes; idle pooled connections do not
	// count. A request that finds the cap reached waits in the upstream's
	// queue (UpstreamQueue, UpstreamQueueTimeout) for a connection another
	// request frees, first come first served; past either bound it gets a
	// 503 (access log end=queue_full or queue_timeout, counted in
	// sluice_upstream_requests_total{result}). It is not retried
	// elsewhere and does not count against the upstream's health. For an
	// HTTP/2 upstream (h2c://, h2://) it caps connections, open or
	// dialing, each carrying up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS
	// streams; a request that finds every connection full at the cap gets
	// a 503 at once (end=queue_full): there is no queue for HTTP/2
	// upstreams. Each loop keeps its own HTTP/2 connections, so a cap
	// under the number of loops leaves some loops without any (cmd
	// refuses that).
	UpstreamMaxConns int
	// UpstreamQueue bounds the requests waiting per upstream at its cap
	// (default 1024; negative: no queue, a 503 at once).
	UpstreamQueue int
	// UpstreamQueueTimeout bounds how long a request waits there (default
	// 5s, like HAProxy's timeout queue defaulting to its connect timeout).
	UpstreamQueueTimeout time.Duration

	// Balance names the load-balancing policy: "round_robin" (default),
	// "least_conn" or "p2c" (power of two choices). Upstreams ejected by
	// health checks are skipped; when every upstream of a route is out,
	// all of them are tried anyway (like Envoy's panic routing) rather
	// than failing every request.
	Balance string

	// MaxFails is the number of consecutive failures (dial error, timeout,
	// reset, bad response) that ejects an upstream (default 3; negative
	// disables passive health checking). After FailCooldown (default 10s,
	// nginx's fail_timeout) it is picked again; one more failure ejects it
	// again at once, one success clears the count.
	MaxFails     int
	FailCooldown time.Duration

	// HealthPath enables active health checks: every HealthInterval
	// (default 5s) each upstream gets "GET HealthPath" on a new connection
	// (HTTP/2 with prior knowledge for an h2c upstream); no 2xx or 3xx
	// within HealthTimeout (default 2s, dial included) is a failure.
	// HealthFails consecutive failures (default 2) mark it down,
	// HealthPasses successes (default 1) mark it up again. Checks run on
	// the engine's loops once Start is called.
	HealthPath                string
	HealthInterval            time.Duration
	HealthTimeout             time.Duration
	HealthFails, HealthPasses int

	// Retries is how many more attempts a failed request may get (default
	// 2; negative disables), only when nothing of the request can have
	// been processed. Any method is retried after a failed dial (HTTP/1.1
	// or h2c) while no attempt has written a byte upstream (the body is
	// still unread). A stream refused by an h2c upstream is retried too,
	// any method. Idempotent methods (GET, HEAD, OPTIONS,
	// TRACE, PUT, DELETE) are also retried when a reused keep-alive
	// connection failed before any response byte. Every request body
	// byte sent must still be held (up to RetryBodyBytes, default 64
	// KiB). A retry after a dial failure prefers another upstream; after a
	// stale pooled connection it dials the same upstream afresh; after a
	// refusal it opens a new stream there. The policy is retry.go's.
	Retries        int
	RetryBodyBytes int

	// Scheme is what X-Forwarded-Proto says for a cleartext connection:
	// "http" (default) or "https" (e.g. behind a TLS-terminating load
	// balancer). A connection on a TLS listener always says "https".
	Scheme string
	// NoXForwarded disables X-Forwarded-For (appended to), X-Forwarded-Proto
	// and X-Forwarded-Host (replaced).
	NoXForwarded bool
	// TrustedProxies are the client addresses whose X-Forwarded-For,
	// X-Forwarded-Proto, X-Forwarded-Host and Forwarded fields are
	// believed: kept and appended to. Anyone else's are replaced (the
	// default: nobody is trusted). See headers.go.
	TrustedProxies []netip.Prefix
	// RewriteHost sends the upstream's host[:port] as Host instead of the
	// client's (which is preserved by default).
	RewriteHost bool
	// Via is the pseudonym in the Via field added both ways (default
	// "sluice", giving "Via: 1.1 sluice").
	Via string

	// H2 tunes the HTTP/2 codec of client connections (ALPN "h2" on a
	// TLS listener, or the prior-knowledge preface on a cleartext one):
	// MaxConcurrentStreams (default 100), MaxHeaderListSize (64 KiB),
	// windows, and the flood budgets (Rapid Reset, CONTINUATION, PING,
	// SETTINGS, WINDOW_UPDATE, empty frames); zero values take the codec's
	// defaults (httpcodec/h2 doc.go). CountError is set by the proxy.
	H2 h2.Config
	// H2Upstream tunes the codec of h2c upstream connections. Its
	// InitialStreamWindow (default 64 KiB here) bounds the response bytes
	// sluice holds per stream when the client reads slower than the
	// upstream sends; ConnWindow (default 1 MiB) per upstream connection.
	H2Upstream h2.Config
	// H2MaxBuffered caps the response bytes one HTTP/2 client connection
	// holds for streams the client does not read (flow-control windows
	// shut, or its output over the engine's high-water mark), across all
	// its streams (default 1 MiB). Past it, every HTTP/1.1 upstream of the
	// connection stops being read until the held bytes fall to half; the
	// overshoot is at most the upstream reads already under way. Each
	// stream alone holds at most one upstream read (64 KiB) for an
	// HTTP/1.1 upstream, its upstream window for an h2c one.
	H2MaxBuffered int
	// WriteTimeout is the engine's write timeout (default 60s: a
	// connection whose socket output makes no progress that long is
	// aborted); it caps StallTimeout.
	WriteTimeout time.Duration

	// StallTimeout bounds how long one HTTP/2 stream's response may stay
	// stalled by the client's flow-control window (h2.Conn.BlockedSince;
	// window updates a byte at a time do not restart it). Past it the
	// stream is reset with RST_STREAM(CANCEL) and the upstream it held is
	// freed: an HTTP/1.1 upstream connection whose response has at most
	// DiscardBytes left (Content-Length) is read to its end and pooled
	// again, any other is reset; an h2c/h2 upstream stream gets
	// RST_STREAM(CANCEL). Default 15s, and never more than WriteTimeout.
	StallTimeout time.Duration

	// ClientMaxUpstreams and ClientMaxUpstreamStreams are the budget of
	// one HTTP/2 client connection: how many of its streams may hold an
	// HTTP/1.1 upstream connection (dialing or busy) at once (default
	// 16), and how many may hold a stream of an h2c/h2 upstream
	// connection (default 100, the default concurrent stream limit: such
	// a slot is a share of a multiplexed connection, which gRPC clients
	// keep many of). A route with any HTTP/1.1 upstream counts against
	// the first. A stream over the budget waits, before any upstream
	// work, for a slot (oldest first) for up to ClientUpstreamWait
	// (default 30s), then is refused with RST_STREAM(REFUSED_STREAM),
	// which says it was not processed. An HTTP/1.1 client connection
	// holds one upstream at most, by construction.
	ClientMaxUpstreams       int
	ClientMaxUpstreamStreams int
	ClientUpstreamWait       time.Duration

	// Request body deadlines (HTTP/1.1 and HTTP/2 clients), as Apache's
	// mod_reqtimeout body=BodyGrace,MinRate=BodyMinRate with a cap: a
	// body must be whole within BodyTimeout (default 5m), and after
	// BodyGrace (default 10s) it must have come at BodyMinRate bytes a
	// second on average (default 500): the deadline is BodyGrace plus one
	// second per BodyMinRate bytes received. Time the client cannot send
	// because sluice holds it back (dialing, an upstream slower than the
	// client, waiting for a slot or a 100 Continue) does not count.
	// Past either: 408 (HTTP/1.1: then close; HTTP/2: on the stream, or
	// RST_STREAM(CANCEL) once a response head went out), the upstream
	// attempt is cancelled, access log end=body_deadline or
	// body_min_rate. Negative disables each. IdleTimeout still bounds a
	// stall between two body reads (end=body_timeout).
	BodyTimeout time.Duration
	BodyGrace   time.Duration
	BodyMinRate int

	// NoH2WebSocket stops advertising SETTINGS_ENABLE_CONNECT_PROTOCOL
	// to HTTP/2 clients, so browsers open WebSockets over HTTP/1.1
	// instead of as extended CONNECT streams (RFC 8441). It is never
	// advertised when a route has an h2c or h2 upstream.
	NoH2WebSocket bool

	// UpstreamTLS configures https:// and h2:// upstreams (HTTP/1.1 and
	// HTTP/2 over TLS).
	UpstreamTLS UpstreamTLS
	// UpstreamTLSFor overrides UpstreamTLS for single upstreams, by the
	// upstream's key as ParseUpstream gives it (https://host:port, with
	// ?sni= when given): its own CA, name, client certificate. Upstreams
	// a reload adds get theirs from this map as NewHTTP was given it.
	UpstreamTLSFor map[string]UpstreamTLS

	// Logger receives warnings (ejections, health changes); nil discards.
	Logger *slog.Logger
	// AccessLog receives one Info line per request; nil disables it.
	AccessLog *slog.Logger
	// AccessLogWriter, when set, takes the request lines instead of
	// AccessLog, written by the proxy's own encoder (accessfmt.go: the
	// same fields in slog's text shape, or JSON with AccessLogJSON), at a
	// fraction of slog's cost. Each Write is one whole line; it must be
	// safe for concurrent use (diag.LogWriter is).
	AccessLogWriter io.Writer
	AccessLogJSON   bool
}

// UpstreamTLS is how sluice checks the https:// (HTTP/1.1) and h2://
// (HTTP/2) upstreams it connects to. Each upstream's connections share a
// session cache, so a new pooled connection resumes rather than running a
// full handshake. ALPN offers http/1.1 to an https upstream and h2 to an
// h2 one, which must select it.
type UpstreamTLS struct {
	// RootCAs verifies upstream certificates; nil means the system roots.
	RootCAs *x509.CertPool
	// InsecureSkipVerify accepts any upstream certificate.
	InsecureSkipVerify bool
	// ServerName, when set, is the SNI sent to and the name verified for
	// every https or h2 upstream without its own ?sni=; by default each
	// upstream's own host (an IP address is checked against the
	// certificate's IP SANs and sent no SNI).
	ServerName string
	// SessionCacheSize is the sessions kept per upstream for resumption
	// (0: 64; negative disables resumption).
	SessionCacheSize int
	// ClientCert, when set, is presented to upstreams that ask for a
	// client certificate (mutual TLS).
	ClientCert *tlsio.KeyPair
}

// upstreamTLSClient builds the TLS client of the https or h2 upstream at
// addr, offering one ALPN protocol. The name verified (and sent as SNI)
// is the upstream's own ?sni=, else UpstreamTLS.ServerName, else its host.
func upstreamTLSClient(t *UpstreamTLS, addr, sni, alpn string) (*tlsio.Client, error) {
	name := sni
	if name == "" {
		name = t.ServerName
	}
	if name == "" {
		name, _, _ = net.SplitHostPort(addr)
	}
	return tlsio.NewClient(tlsio.ClientConfig{
		ServerName:         name,
		RootCAs:            t.RootCAs,
		InsecureSkipVerify: t.InsecureSkipVerify,
		NextProtos:         []string{alpn},
		SessionCacheSize:   t.SessionCacheSize,
		Certificate:        t.ClientCert,
	})
}

func (cfg *HTTPConfig) setDefaults() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.DialTimeout, 5*time.Second)
	def(&cfg.ResponseHeaderTimeout, 60*time.Second)
	def(&cfg.ReadTimeout, 60*time.Second)
	def(&cfg.HeaderTimeout, 30*time.Second)
	def(&cfg.IdleTimeout, 60*time.Second)
	def(&cfg.UpstreamIdleTimeout, 60*time.Second)
	def(&cfg.TunnelIdleTimeout, 5*time.Minute)
	def(&cfg.FailCooldown, 10*time.Second)
	def(&cfg.HealthInterval, 5*time.Second)
	def(&cfg.HealthTimeout, 2*time.Second)
	def(&cfg.WriteTimeout, 60*time.Second)
	def(&cfg.StallTimeout, 15*time.Second)
	cfg.StallTimeout = min(cfg.StallTimeout, cfg.WriteTimeout)
	def(&cfg.ClientUpstreamWait, 30*time.Second)
	if cfg.ClientMaxUpstreams <= 0 {
		cfg.ClientMaxUpstreams = 16
	}
	if cfg.ClientMaxUpstreamStreams <= 0 {
		cfg.ClientMaxUpstreamStreams = 100
	}
	if cfg.BodyTimeout == 0 {
		cfg.BodyTimeout = 5 * time.Minute
	}
	if cfg.BodyGrace == 0 {
		cfg.BodyGrace = 10 * time.Second
	}
	if cfg.BodyMinRate == 0 {
		cfg.BodyMinRate = 500
	}
	if cfg.H2MaxBuffered <= 0 {
		cfg.H2MaxBuffered = 1 << 20
	}
	if cfg.H2Upstream.InitialStreamWindow == 0 {
		cfg.H2Upstream.InitialStreamWindow = 64 << 10
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = 1024
	}
	if cfg.UpstreamMaxConns < 0 {
		return fmt.Errorf("upstream max conns %d: must be 0 (no cap) or more", cfg.UpstreamMaxConns)
	}
	if cfg.UpstreamQueue == 0 {
		cfg.UpstreamQueue = 1024
	}
	if cfg.UpstreamQueue < 0 {
		cfg.UpstreamQueue = 0
	}
	def(&cfg.UpstreamQueueTimeout, 5*time.Second)
	if cfg.MaxFails == 0 {
		cfg.MaxFails = 3
	}
	if cfg.HealthFails <= 0 {
		cfg.HealthFails = 2
	}
	if cfg.HealthPasses <= 0 {
		cfg.HealthPasses = 1
	}
	if cfg.Retries == 0 {
		cfg.Retries = 2
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.RetryBodyBytes <= 0 {
		cfg.RetryBodyBytes = 64 << 10
	}
	switch cfg.Scheme {
	case "":
		cfg.Scheme = "http"
	case "http", "https":
	default:
		return fmt.Errorf("scheme %q: want http or https", cfg.Scheme)
	}
	if cfg.Via == "" {
		cfg.Via = "sluice"
	}
	if !h1.ValidFieldValue(cfg.Via) {
		return fmt.Errorf("via %q: not a valid field value", cfg.Via)
	}
	if cfg.HealthPath != "" && (cfg.HealthPath[0] != '/' || !h1.ValidFieldValue(cfg.HealthPath)) {
		return fmt.Errorf("health path %q: must start with / and hold no spaces or controls", cfg.HealthPath)
	}
	for _, c := range []byte(cfg.HealthPath) {
		if c <= ' ' || c >= 0x7f {
			return fmt.Errorf("health path %q: must start with / and hold no spaces or controls", cfg.HealthPath)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Routes) == 0 {
		return errors.New("no routes: give at least one route or upstream")
	}
	return nil
}

// HTTP is the HTTP/1.1 and HTTP/2 reverse proxy. Accept is its
// engine.Listener.Accept.
// One HTTP serves every loop: its configuration, routes and upstreams are
// read-only after NewHTTP (upstream counters are atomics); connection pools
// are per loop and touched only by their loop.
type HTTP struct {
	cfg    HTTPConfig
	m      *httpMetrics
	bm     *budgetMetrics
	rt     atomic.Pointer[router] // replaced whole by SetRoutes
	ups    []*Upstream            // every upstream ever routed to, by idx; appended under mu
	h2cfg  h2.Config
	h2ucfg h2.Config
	reqCfg h1.Config // client heads: limits and the error counter
	resCfg h1.Config // upstream heads

	// Derived once from cfg, in engine-clock nanoseconds.
	dialTimeout, respHeaderTimeout, readTimeout           int64
	headerTimeout, idleTimeout, upIdleTimeout, tunnelIdle int64
	writeTimeout, h2Tick, queueTimeout                    int64
	stallTimeout, upWait                                  int64
	body                                                  bodyLimits
	hdr                                                   *header.Policy

	alw      *accessEncoder // AccessLogWriter's encoder; nil: AccessLog, if any
	mu       sync.Mutex     // guards creating loop states, ups, SetRoutes and the health checkers
	loops    atomic.Pointer[[]*loopState]
	passive  upstream.Passive
	checks   map[*Upstream]*upstream.Checker
	engLoops []*engine.Loop // from Start, for the checkers of upstreams added later
	closed   atomic.Bool
	started  bool
}

// buildRoutes binds routes to upstreams: those already known (by their
// key) are reused with their pools, health and counters; new ones are
// returned in ups after h.ups. Callers hold h.mu or own h.
func (h *HTTP) buildRoutes(routes []Route) (*router, []*Upstream, error) {
	ups := slices.Clone(h.ups)
	byAddr := map[string]*Upstream{}
	for _, u := range ups {
		byAddr[u.Label()] = u
	}
	var rs []*route
	for _, r := range routes {
		if r.PathPrefix == "" {
			r.PathPrefix = "/"
		}
		if r.PathPrefix[0] != '/' {
			return nil, nil, fmt.Errorf("http proxy: route %s: path prefix must start with /", r)
		}
		if len(r.Upstreams) == 0 {
			return nil, nil, fmt.Errorf("http proxy: route %s: no upstream", r)
		}
		if r.HostHeader != "" && !header.ValidHost(r.HostHeader) {
			// It goes into every upstream head as is.
			return nil, nil, fmt.Errorf("http proxy: route %s: host header %q: not a host[:port]", r, r.HostHeader)
		}
		rr := &route{Route: r, name: r.DisplayName(), allH2: true, retries: h.cfg.Retries,
			respHT: int64(h.cfg.ResponseHeaderTimeout), readT: int64(h.cfg.ReadTimeout)}
		if r.Retries > 0 {
			rr.retries = r.Retries
		} else if r.Retries < 0 {
			rr.retries = 0
		}
		if r.UpstreamTimeout > 0 {
			rr.respHT, rr.readT = int64(r.UpstreamTimeout), int64(r.UpstreamTimeout)
		}
		if r.Weights != nil {
			if len(r.Weights) != len(r.Upstreams) {
				return nil, nil, fmt.Errorf("http proxy: route %s: %d weights for %d upstreams", r, len(r.Weights), len(r.Upstreams))
			}
			for _, w := range r.Weights {
				if w < 1 || w > 100 {
					return nil, nil, fmt.Errorf("http proxy: route %s: weight %d: must be 1..100", r, w)
				}
			}
		}
		for _, a := range r.Upstreams {
			key, err := ParseUpstream(a)
			if err != nil {
				return nil, nil, fmt.Errorf("http proxy: route %s: %w", r, err)
			}
			u := byAddr[key]
			if u == nil {
				addr, isH2C := strings.CutPrefix(key, h2cPrefix)
				var cl *tlsio.Client
				for _, s := range []struct{ prefix, alpn string }{{httpsPrefix, "http/1.1"}, {h2Prefix, "h2"}} {
					if a, ok := strings.CutPrefix(key, s.prefix); ok {
						var sni string
						addr, sni = splitSNI(a)
						isH2C = s.alpn == "h2"
						ut := h.cfg.UpstreamTLS
						if o, ok := h.cfg.UpstreamTLSFor[key]; ok {
							ut = o
						}
						if cl, err = upstreamTLSClient(&ut, addr, sni, s.alpn); err != nil {
							return nil, nil, fmt.Errorf("http proxy: route %s: upstream %s: %w", r, key, err)
						}
					}
				}
				u = upstream.New(key, addr, len(ups), isH2C, cl)
				u.MaxConns = int64(h.cfg.UpstreamMaxConns)
				h.m.registerUpstream(u, key)
				byAddr[key] = u
				ups = append(ups, u)
			}
			rr.ups = append(rr.ups, u)
			rr.m = append(rr.m, h.m.routeUp(r.DisplayName(), u.Label()))
			rr.hasH2C = rr.hasH2C || u.H2()
			rr.allH2 = rr.allH2 && u.H2()
		}
		rr.m = append(rr.m, h.m.routeUp(r.DisplayName(), ""))
		sel, _ := upstream.NewSelector(h.cfg.Balance)
		rr.set = upstream.NewSet(rr.ups, r.Weights, sel)
		rs = append(rs, rr)
	}
	rt, err := newRouter(rs)
	if err != nil {
		return nil, nil, fmt.Errorf("http proxy: %w", err)
	}
	return rt, ups, nil
}

// SetRoutes replaces the routes (a configuration reload) without touching
// a connection: a request already routed finishes on its old route and
// upstream, the next one is matched against the new routes. Upstreams
// that stay keep their pools, health and counters; new ones get active
// health checks once Start has run; those no route names any more stop
// being checked, and their pooled connections close by idle time. The
// other settings (timeouts, limits, TLS verification) stay as NewHTTP set
// them. On error nothing changes.
func (h *HTTP) SetRoutes(routes []Route) error {
	if len(routes) == 0 {
		return errors.New("http proxy: no routes")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	rt, ups, err := h.buildRoutes(routes)
	if err != nil {
		return err
	}
	h.ups = ups
	h.rt.Store(rt)
	if h.started && h.cfg.HealthPath != "" && !h.closed.Load() {
		used := rt.upstreams()
		for u, k := range h.checks {
			if !used[u] {
				_ = k.Loop().Post(k.Stop)
				delete(h.checks, u)
			}
		}
		for _, u := range ups {
			if used[u] && h.checks[u] == nil {
				h.startChecker(u, len(ups))
			}
		}
	}
	return nil
}

// startChecker starts u's active health check on a loop; h.mu is held.
func (h *HTTP) startChecker(u *Upstream, n int) error {
	k := h.newChecker(u, u.Index(), n)
	h.checks[u] = k
	return k.Loop().Post(k.Start)
}

// NewHTTP checks cfg and builds the proxy. m may be nil (metrics then go
// to a private set).
func NewHTTP(cfg HTTPConfig, m *Metrics) (*HTTP, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("http proxy: %w", err)
	}
	if _, err := upstream.NewSelector(cfg.Balance); err != nil {
		return nil, fmt.Errorf("http proxy: %w", err)
	}
	h := &HTTP{cfg: cfg, m: m.http()}
	h.bm = newBudgetMetrics(h.m.set)
	if cfg.AccessLogWriter != nil {
		h.alw = &accessEncoder{w: cfg.AccessLogWriter, json: cfg.AccessLogJSON}
	}
	h.reqCfg = h1.Config{MaxHeadBytes: cfg.MaxHeadBytes, MaxFields: cfg.MaxFields, MaxRequestLine: cfg.MaxRequestLine,
		CountError: h.m.requestError}
	h.resCfg = h1.Config{CountError: h.m.responseError}
	rt, ups, err := h.buildRoutes(cfg.Routes)
	if err != nil {
		return nil, err
	}
	h.rt.Store(rt)
	h.ups = ups
	h.dialTimeout = int64(cfg.DialTimeout)
	h.respHeaderTimeout = int64(cfg.ResponseHeaderTimeout)
	h.readTimeout = int64(cfg.ReadTimeout)
	h.headerTimeout = int64(cfg.HeaderTimeout)
	h.idleTimeout = int64(cfg.IdleTimeout)
	h.upIdleTimeout = int64(cfg.UpstreamIdleTimeout)
	h.tunnelIdle = int64(cfg.TunnelIdleTimeout)
	h.passive = upstream.Passive{MaxFails: cfg.MaxFails, Cooldown: cfg.FailCooldown, Log: cfg.Logger}
	h.writeTimeout = int64(cfg.WriteTimeout)
	h.queueTimeout = int64(cfg.UpstreamQueueTimeout)
	h.stallTimeout = int64(cfg.StallTimeout)
	h.upWait = int64(cfg.ClientUpstreamWait)
	h.body = newBodyLimits(&cfg)
	h.hdr = header.NewPolicy(cfg.Via, cfg.RewriteHost, cfg.NoXForwarded)
	// The HTTP/2 housekeeping tick checks stalled streams; a quarter of
	// the shortest timeout it enforces, between 10ms and 1s.
	h.h2Tick = int64(min(cfg.StallTimeout, cfg.IdleTimeout, cfg.ResponseHeaderTimeout, cfg.ReadTimeout, cfg.ClientUpstreamWait) / 4)
	if b := h.body.shortest(); b > 0 {
		h.h2Tick = min(h.h2Tick, b/4)
	}
	h.h2Tick = min(max(h.h2Tick, int64(10*time.Millisecond)), int64(time.Second))
	h.h2cfg = cfg.H2
	h.h2cfg.CountError = h.m.h2Error
	// WebSocket over HTTP/2 is relayed to HTTP/1.1 upstreams only (h2ws.go).
	h.h2cfg.EnableConnectProtocol = !cfg.NoH2WebSocket && !slices.ContainsFunc(h.ups, func(u *Upstream) bool { return u.H2() })
	h.h2ucfg = cfg.H2Upstream
	h.h2ucfg.CountError = h.m.h2Error
	empty := []*loopState{}
	h.loops.Store(&empty)
	return h, nil
}

// Upstreams lists the proxy's upstreams, one per distinct address, those
// a reload took out of every route included.
func (h *HTTP) Upstreams() []*Upstream {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ups
}

// Start begins active health checks on e's loops (nothing to do without
// HealthPath). Call it once, after e.Start.
func (h *HTTP) Start(e *engine.Engine) error {
	if h.cfg.HealthPath == "" {
		return nil
	}
	loops := e.Loops()
	if len(loops) == 0 {
		return errors.New("http proxy: engine has no loops (call after engine Start)")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started {
		return errors.New("http proxy: already started")
	}
	h.started = true
	h.engLoops = loops
	h.checks = map[*Upstream]*upstream.Checker{}
	used := h.rt.Load().upstreams()
	for _, u := range h.ups {
		if !used[u] {
			continue
		}
		if err := h.startChecker(u, len(h.ups)); err != nil {
			return fmt.Errorf("http proxy: start health checks: %w", err)
		}
	}
	return nil
}

// Close stops the background work (active health checks). Connections are
// the engine's to drain; Close does not touch them. It does not wait for
// a check in progress, which ends on its own timeout.
func (h *HTTP) Close() {
	if h.closed.Swap(true) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range h.checks {
		_ = k.Loop().Post(k.Stop)
	}
}

// loopState is what the proxy keeps per event loop: the upstream
// connection pools. Loop-owned: touched only on its loop, so no locks.
type loopState struct {
	h       *HTTP
	l       *engine.Loop
	reqSeq  uint64         // request ids generated on this loop (forward.go)
	hs      header.Scratch // HTTP/1.1 clients' h2c request fields, built one at a time
	pools   []pool         // by Upstream.idx
	h2pools []h2pool       // by Upstream.idx: h2c upstream connections
	cands   []*Upstream
	queues  atomic.Pointer[[]*upQueue] // by Upstream.idx: requests waiting at the in-use cap (queue.go)
}

// loopState returns (creating on first use) the state of loop l. Creation
// is rare (once per loop), so it copies the slice under the mutex and
// readers never lock.
func (h *HTTP) loopState(l *engine.Loop) *loopState {
	i := l.Index()
	if ls := *h.loops.Load(); i < len(ls) && ls[i] != nil {
		return ls[i]
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old := *h.loops.Load()
	if i < len(old) && old[i] != nil {
		return old[i]
	}
	ns := make([]*loopState, max(len(old), i+1))
	copy(ns, old)
	ls := &loopState{h: h, l: l, pools: make([]pool, len(h.ups)), h2pools: make([]h2pool, len(h.ups))}
	qs := make([]*upQueue, len(h.ups))
	for i := range qs {
		qs[i] = &upQueue{}
	}
	ls.queues.Store(&qs)
	l.OnDrain(ls.drain) // created on l, by its first connection's Accept
	ns[i] = ls
	h.loops.Store(&ns)
	return ns[i]
}

// pick chooses an upstream of r for an attempt. avoid, if not nil, is
// skipped when another candidate is available (the one that just failed).
func (ls *loopState) pick(r *route, avoid *Upstream, now int64) *Upstream {
	return r.set.Pick(avoid, now, &ls.cands)
}

// logf is a Logger.Warn shorthand that checks Enabled first.
func (h *HTTP) warn(msg string, attrs ...slog.Attr) {
	if h.cfg.Logger.Enabled(context.Background(), slog.LevelWarn) {
		h.cfg.Logger.LogAttrs(context.Background(), slog.LevelWarn, msg, attrs...)
	}
}
