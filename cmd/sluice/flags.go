package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/httpcodec/h2"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/tlsio"
)

// config is everything the flags (and the -config file) say.
type config struct {
	configFile string
	check      bool
	version    bool
	fileRoutes []proxy.Route                // the file's [[routes]], unless -route is given
	fileUps    []fileUpstream               // the file's [[upstreams]]: per-upstream TLS
	upTLSFor   map[string]proxy.UpstreamTLS // from fileUps, by upstream key
	values     map[string]string            // every flag's value as parsed, for reload diffs

	listen        string
	listenPlain   string
	proxyProtocol bool
	upProxyProto  string
	upProxyV      int // upProxyProto as a version: 0 (none), 1 or 2
	routes        []proxy.Route
	routeArgs     []string
	balance       string
	poolSize      int
	poolIdle      time.Duration
	upMaxConns    int
	upQueue       int
	upQueueWait   time.Duration
	retries       int
	maxFails      int
	healthPath    string
	accessLog     string // "stderr", "stdout", "off" or a file path
	maxHead       int
	maxFields     int
	maxLine       int
	upTimeout     time.Duration

	h2MaxStreams    int
	h2MaxHeaderList int
	h2StreamWindow  int
	h2ConnWindow    int
	h2MaxBuffered   int
	h2WebSocket     bool
	h2StallTimeout  time.Duration

	clientMaxUps     int
	clientMaxStreams int
	clientUpWait     time.Duration
	bodyTimeout      time.Duration
	bodyGrace        time.Duration
	bodyMinRate      int

	upstreams []string // as given

	upCAFile     string
	upCAs        *x509.CertPool // from upCAFile; nil: the system roots
	upInsecure   bool
	upServerName string
	trustedArg   string
	trusted      []netip.Prefix // from trustedArg
	upCertFile   string
	upKeyFile    string
	upCert       *tlsio.KeyPair // from upCertFile and upKeyFile
	admin        string
	certs        []string
	keys         []string
	loops        int
	lockLoops    bool
	mode         string
	logLevel     slog.Level
	logFormat    string
	maxConns     int
	maxHS        int
	tlsEngine    string // tlsio.EngineNative or EngineStdlib
	tlsKeyUpdate int64  // -tls-key-update-bytes

	handshakeTimeout time.Duration
	firstByteTimeout time.Duration
	headerTimeout    time.Duration
	idleTimeout      time.Duration
	writeTimeout     time.Duration
	lingerTimeout    time.Duration
	drainTimeout     time.Duration
	drainDelay       time.Duration
	dialTimeout      time.Duration
}

type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}
func (l listFlag) Set(s string) error { *l.v = append(*l.v, s); return nil }

// errHelp is returned for -h: usage goes to stdout and the exit status is 0.
var errHelp = errors.New("help requested")

func parseFlags(args []string, stdout io.Writer) (*config, error) {
	c := &config{}
	fs, level := newFlagSet(c)
	// A bad value is noted and the parse goes on, so that every bad flag
	// is reported; a flag the set does not know still stops it.
	var errs []error
	fs.VisitAll(func(f *flag.Flag) { f.Value = noted{f.Value, f, &errs} })
	err := fs.Parse(args)
	fs.VisitAll(func(f *flag.Flag) { f.Value = f.Value.(noted).Value })
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(fs, stdout)
			return nil, errHelp
		}
		return nil, flagError(fs, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (all options are flags; see -h)", fs.Arg(0))
	}
	if c.version {
		return c, nil
	}
	if c.configFile != "" {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		routes, ups, ferrs := applyFile(fs, c.configFile, given)
		c.fileUps = ups
		errs = append(errs, ferrs...)
		if !given["route"] {
			c.fileRoutes = routes
		}
	}
	c.values = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { c.values[f.Name] = f.Value.String() })
	if err := c.validate(*level); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// noted is a flag value during the command line's parse: a value Set
// refuses becomes one error naming the flag, and the parse goes on (the
// flag keeps its default, which validate does not report again).
type noted struct {
	flag.Value
	f    *flag.Flag
	errs *[]error
}

func (n noted) Set(s string) error {
	was := n.Value.String()
	if err := n.Value.Set(s); err != nil {
		_ = n.Value.Set(was) // the flag package's values zero themselves on a bad value
		f := *n.f
		f.Value = n.Value
		*n.errs = append(*n.errs, fmt.Errorf("-%s %q: %s", f.Name, s, valueReason(&f, s, err)))
	}
	return nil
}

// IsBoolFlag keeps -flag (without =true) working for boolean flags.
func (n noted) IsBoolFlag() bool {
	b, ok := n.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "sluice: a reverse proxy on gnet event loops with a deterministic close.\n\nUsage: sluice [flags]\n\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// flagErrRE matches the flag package's value errors:
// invalid value "5" for flag -idle-timeout: parse error
// invalid boolean value "maybe" for -lock-loops: parse error
var flagErrRE = regexp.MustCompile(`^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-([^:]+): (.*)$`)

// flagError rewrites the flag package's parse errors that say too little:
// what a value should look like (a duration its unit) for every flag
// defined, whoever added it.
func flagError(fs *flag.FlagSet, err error) error {
	m := flagErrRE.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	q, name, why := m[1], m[2], m[3]
	if f := fs.Lookup(name); f != nil {
		v, _ := strconv.Unquote(q)
		return fmt.Errorf("-%s %s: %s", name, q, valueReason(f, v, errors.New(why)))
	}
	return fmt.Errorf("-%s %s: %s", name, q, why)
}

// valueReason says why v is not a value of flag f (err: what Set said).
func valueReason(f *flag.Flag, v string, err error) string {
	if g, ok := f.Value.(flag.Getter); ok {
		switch g.Get().(type) {
		case time.Duration:
			if v != "" && strings.Trim(v, "0123456789.") == "" {
				return fmt.Sprintf("a duration needs a unit, e.g. %ss (ns, us, ms, s, m, h)", v)
			}
			return "not a duration; write e.g. 5s, 250ms, 2m or 1h30m"
		case int, int64, uint, uint64:
			return "want a whole number"
		case float64:
			return "want a number"
		case bool:
			return "want true or false"
		}
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.HasPrefix(msg, "invalid") {
		msg = msg[i+2:]
	}
	return msg
}

// newFlagSet defines every flag on c. The -config file's keys are these
// flags' names, so a flag defined here is a key with no more code.
func newFlagSet(c *config) (fs *flag.FlagSet, level *string) {
	fs = flag.NewFlagSet("sluice", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by the caller
	fs.StringVar(&c.configFile, "config", "", "TOML configuration file: every flag is a key of the same name (lists for repeatable flags) plus [[routes]] tables; flags given on the command line win; SIGHUP reloads its routes, upstreams and certificates")
	fs.BoolVar(&c.check, "check", false, "check the configuration (flags and -config file) and exit: 0 if good, else 2 and one line per problem")
	fs.BoolVar(&c.version, "version", false, "print the version (module version, VCS revision, modified flag, Go version) and exit")
	fs.StringVar(&c.listen, "listen", ":8443", "client-facing TLS listen address (host:port); in tcp mode plain TCP unless -cert is given")
	fs.BoolVar(&c.proxyProtocol, "proxy-protocol", false, "require a PROXY protocol header (v1 or v2, as HAProxy and cloud load balancers send) at the start of every connection on -listen and -listen-plain, and take the client address from it; only for listeners that trusted balancers alone can reach")
	fs.StringVar(&c.upProxyProto, "upstream-proxy-protocol", "", "tcp mode: start each upstream connection with a PROXY protocol header naming the client, v1 or v2 (empty: none)")
	fs.StringVar(&c.listenPlain, "listen-plain", "", "cleartext HTTP/1.1 and h2c (HTTP/2 with prior knowledge) listen address (http mode), e.g. 127.0.0.1:8080; empty disables")
	fs.Var(listFlag{&c.routeArgs}, "route", `route "[name:][host][/pathprefix]=URL[,URL...]" (repeatable, http mode; longest prefix wins, exact host before any host; the name labels its metrics, default host/prefix; -upstream alone is the catch-all route "/")`)
	fs.StringVar(&c.balance, "balance", "round_robin", "load balancing across a route's upstreams: round_robin, least_conn or p2c (power of two choices)")
	fs.IntVar(&c.poolSize, "pool-size", 1024, "most idle keep-alive connections kept per upstream per event loop: a connection freed by a finished request is kept up to this cap, and closed after -pool-idle-timeout unused")
	fs.DurationVar(&c.poolIdle, "pool-idle-timeout", 60*time.Second, "close a pooled upstream connection unused this long (keep it below the upstream's own keep-alive timeout)")
	fs.IntVar(&c.upMaxConns, "upstream-max-conns", 0, "cap on connections in use per upstream, all loops (0: no cap); requests over it wait in a queue (-upstream-queue, -upstream-queue-timeout), then get 503. HTTP/2 upstreams: connections open, each carrying the streams its peer allows, one per loop at least; no queue")
	fs.IntVar(&c.upQueue, "upstream-queue", 1024, "requests that may wait per upstream at -upstream-max-conns (0: none wait, 503 at once)")
	fs.DurationVar(&c.upQueueWait, "upstream-queue-timeout", 5*time.Second, "longest wait in the -upstream-max-conns queue, then 503")
	fs.IntVar(&c.retries, "retries", 2, "extra attempts when nothing was processed: any method after a failed dial, idempotent ones also after a reused connection failed before any response byte (0 disables)")
	fs.IntVar(&c.maxFails, "max-fails", 3, "consecutive failures that eject an upstream for 10s (0 disables passive health checks)")
	fs.StringVar(&c.healthPath, "health-path", "", "active health check path, e.g. /healthz (empty disables; every 5s, 2s timeout; h2c upstreams are checked over HTTP/2)")
	fs.StringVar(&c.accessLog, "access-log", "stderr", "one line per HTTP request, to stderr, stdout, a file (a path with a /, appended to; reopened on SIGHUP) or off; buffered, flushed every second and on exit; written whatever -log-level says (true and false still mean stderr and off)")
	fs.IntVar(&c.maxHead, "max-header-bytes", 32<<10, "largest request head in bytes (more: 431)")
	fs.IntVar(&c.maxFields, "max-header-fields", 100, "most request header fields (more: 431)")
	fs.IntVar(&c.maxLine, "max-request-line", 8<<10, "longest request line in bytes (more: 414)")
	fs.DurationVar(&c.upTimeout, "upstream-timeout", 60*time.Second, "time for an upstream to send a response head, and the longest gap between response body reads (then 504, or a cut response)")
	fs.Var(listFlag{&c.upstreams}, "upstream", "upstream URL, e.g. http://10.0.0.1:8080, https://api.internal or https://10.0.0.5:8443?sni=api.internal (HTTP/1.1 over TLS, certificate verified), h2c://10.0.0.1:50051 (HTTP/2 cleartext, e.g. gRPC), h2://grpc.internal (HTTP/2 over TLS, ALPN h2) or tcp://10.0.0.1:5432 (repeatable; tcp mode uses the first; default: a built-in demo upstream on loopback)")
	fs.StringVar(&c.upCAFile, "upstream-ca", "", "PEM file of the CA certificates that verify https:// and h2:// upstreams (default: the system roots)")
	fs.BoolVar(&c.upInsecure, "upstream-insecure-skip-verify", false, "accept any certificate from https:// and h2:// upstreams (logged as a warning at start-up)")
	fs.StringVar(&c.upCertFile, "upstream-client-cert", "", "PEM certificate chain presented to https:// and h2:// upstreams that ask for one (mutual TLS); with -upstream-client-key")
	fs.StringVar(&c.upKeyFile, "upstream-client-key", "", "PEM private key of -upstream-client-cert")
	fs.StringVar(&c.trustedArg, "trusted-proxies", "", "comma-separated CIDRs or addresses of clients (load balancers, CDNs) whose X-Forwarded-For is appended to and whose X-Forwarded-Proto, X-Forwarded-Host and Forwarded are kept; anyone else's are replaced (default: nobody)")
	fs.StringVar(&c.upServerName, "upstream-server-name", "", "SNI sent to, and name verified for, every https:// and h2:// upstream without its own ?sni=NAME (default: each upstream's own host)")
	fs.IntVar(&c.h2MaxStreams, "h2-max-concurrent-streams", h2.DefaultMaxConcurrentStreams, "HTTP/2: streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS; more are refused)")
	fs.IntVar(&c.h2MaxHeaderList, "h2-max-header-list-size", h2.DefaultMaxHeaderListSize, "HTTP/2: largest request header list in bytes (SETTINGS_MAX_HEADER_LIST_SIZE; more: 431)")
	fs.IntVar(&c.h2StreamWindow, "h2-stream-window", h2.DefaultInitialStreamWindow, "HTTP/2: request body bytes a client may send per stream ahead of the upstream (SETTINGS_INITIAL_WINDOW_SIZE)")
	fs.IntVar(&c.h2ConnWindow, "h2-conn-window", h2.DefaultConnWindow, "HTTP/2: request body bytes a client may send per connection ahead of the upstreams")
	fs.IntVar(&c.h2MaxBuffered, "h2-max-buffered", 1<<20, "HTTP/2: response bytes held per client connection for streams the client does not read; past it upstreams are not read")
	fs.BoolVar(&c.h2WebSocket, "h2-websocket", true, "HTTP/2: accept WebSockets as extended CONNECT streams (RFC 8441) and relay them to HTTP/1.1 upstreams; never offered when a route has an h2c or h2 upstream")
	fs.DurationVar(&c.h2StallTimeout, "h2-stall-timeout", 15*time.Second, "HTTP/2: reset a stream whose response the client's flow-control window keeps stalled this long, and free the upstream it held (at most -write-timeout)")
	fs.IntVar(&c.clientMaxUps, "client-max-upstreams", 16, "HTTP/2: HTTP/1.1 upstream connections one client connection's streams may hold at once; more streams wait for a slot")
	fs.IntVar(&c.clientMaxStreams, "client-max-upstream-streams", 100, "HTTP/2: streams of h2c/h2 upstream connections one client connection's streams may hold at once; more wait for a slot")
	fs.DurationVar(&c.clientUpWait, "client-upstream-wait", 30*time.Second, "HTTP/2: how long a stream waits for an upstream slot of its client connection's budget before it is refused (REFUSED_STREAM)")
	fs.DurationVar(&c.bodyTimeout, "body-timeout", 5*time.Minute, "deadline for a whole request body, the time sluice holds it back not counted (then 408; 0 disables)")
	fs.DurationVar(&c.bodyGrace, "body-grace", 10*time.Second, "after this long a request body must have come at -body-min-rate on average (then 408)")
	fs.IntVar(&c.bodyMinRate, "body-min-rate", 500, "minimum average request body rate in bytes per second after -body-grace, as Apache's mod_reqtimeout MinRate (0 disables)")
	fs.StringVar(&c.admin, "admin", "127.0.0.1:9090", "admin listen address: /metrics /healthz /readyz /debug/connections /debug/pprof/ (empty disables)")
	fs.Var(listFlag{&c.certs}, "cert", "TLS certificate chain PEM file (repeatable, paired in order with -key; chosen by SNI, first is the default; SIGHUP reloads). tcp mode terminates TLS when given; http mode without it uses a self-signed certificate")
	fs.Var(listFlag{&c.keys}, "key", "TLS private key PEM file (repeatable, paired in order with -cert)")
	fs.IntVar(&c.loops, "loops", runtime.GOMAXPROCS(0), "number of event loops (GOMAXPROCS becomes the CPUs plus one per loop unless the GOMAXPROCS environment variable is set)")
	fs.BoolVar(&c.lockLoops, "lock-loops", true, "pin each event loop to its own OS thread: faster steady-state proxying, somewhat fewer TLS handshakes per second")
	fs.StringVar(&c.mode, "mode", "http", "proxy mode: http (HTTPS reverse proxy on -listen) or tcp (layer-4 pass-through to the first upstream)")
	level = fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.IntVar(&c.maxHS, "max-handshakes", 1024, "TLS handshakes in flight, all loops, each from the client's first byte; at the cap the one longest without progress is evicted")
	fs.IntVar(&c.maxConns, "max-conns", 16384, "maximum open connections, client and upstream; at the cap the oldest client connection that has sent nothing is evicted, and with none a new one is reset at accept")
	fs.DurationVar(&c.handshakeTimeout, "handshake-timeout", 10*time.Second, "TLS handshake deadline, from the client's first byte")
	fs.StringVar(&c.tlsEngine, "tls-engine", tlsio.DefaultEngine, "client-facing TLS implementation: native (sluice's own TLS 1.3, crypto/tls for clients without TLS 1.3) or stdlib (crypto/tls for everything)")
	fs.Int64Var(&c.tlsKeyUpdate, "tls-key-update-bytes", tlsio.DefaultKeyUpdateAfter, "native engine: send a TLS 1.3 KeyUpdate after sealing this many bytes under one key (-1: never)")
	fs.DurationVar(&c.firstByteTimeout, "first-byte-timeout", 5*time.Second, "reset a TLS connection that sends nothing for this long after accept; with -proxy-protocol, the time for the whole PROXY header")
	fs.DurationVar(&c.headerTimeout, "header-timeout", 30*time.Second, "deadline to receive a complete request header")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 60*time.Second, "close a connection idle for this long (keep-alive between requests; tcp mode: no bytes either way)")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 60*time.Second, "abort a connection whose output makes no progress for this long (also bounds the close flush)")
	fs.DurationVar(&c.lingerTimeout, "linger-timeout", 5*time.Second, "after our FIN, how long to read and discard while waiting for the client's FIN")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM/SIGINT, how long connections get to finish before they are aborted (counted after -drain-delay)")
	fs.DurationVar(&c.drainDelay, "drain-delay", 0, "lame-duck phase: after SIGTERM/SIGINT, /readyz answers 503 while sluice keeps accepting and serving this long before it stops accepting (Kubernetes: 5s, with -drain-timeout 25s inside the default 30s grace period)")
	fs.DurationVar(&c.dialTimeout, "dial-timeout", 5*time.Second, "upstream connect timeout")
	fs.Usage = func() {}
	return fs, level
}
