package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// Mode is what a run measures.
type Mode string

// The modes (see doc.go).
const (
	ModeRate      Mode = "rate"
	ModeHold      Mode = "hold"
	ModeHandshake Mode = "handshake"
	ModeDrain     Mode = "drain"
	ModeSlowRead  Mode = "slowread"
)

// Options configure one run. Parse fills them from flags; the compare
// harness builds them directly.
type Options struct {
	Mode     Mode
	URL      *url.URL
	H2       bool          // HTTP/2: ALPN h2 over https, prior knowledge over http
	Conns    int           // connections
	Streams  int           // concurrent streams per HTTP/2 connection
	Duration time.Duration // how long to load (rate, handshake, drain, slowread) or hold (hold)
	Requests int64         // total requests (rate, handshake); 0: run for Duration
	Rate     float64       // open loop: requests per second in all; 0: closed loop
	Method   string
	Body     int      // request body bytes
	Headers  []string // extra request fields, "Name: value"
	Insecure bool     // do not verify the target's certificate
	Timeout  time.Duration
	TLSVer   uint16 // 0: TLS 1.2 and 1.3
	PID      int    // the target's process, for CPU and RSS from /proc (its children too)
	// SourceIPs spreads connections over 127.0.0.1..127.0.0.SourceIPs when
	// the target is on loopback (each source address has its own range of
	// ephemeral ports); 0 picks one address per 16,000 connections.
	SourceIPs   int
	Progress    time.Duration // progress line interval on stderr; 0: none
	JSON        bool
	SignalAfter time.Duration  // drain: load this long before the signal; 0: 1s after all connections are open
	Signal      syscall.Signal // drain: the target's graceful-stop signal; 0: SIGTERM
	ReadRate    int            // slowread: bytes per second per client
	OpenRate    float64        // hold: connections opened per second; 0: as fast as they come
}

// usage is printed by -h, with the flags after it.
const usage = `sluice-bench: load generator for HTTP/1.1 and HTTP/2 servers and proxies.

Usage: sluice-bench -url URL [-mode MODE] [flags]

Modes:
  rate       load from -c connections (HTTP/2: -m streams each) for -d or -n
             requests; closed loop (each connection sends its next request when
             the last is answered), or an open loop at -rate requests/s whose
             latency is measured from each request's scheduled time, so
             queueing in the client counts
  hold       open -c TLS (or cleartext) keep-alive connections, one request
             each, hold them idle for -d and report the target's RSS per
             connection (needs -pid)
  handshake  full TLS handshakes per second: a new connection per request, no
             session resumption (the client keeps no session cache, and every
             connection is checked: a resumed one counts as an error)
  drain      rate load, SIGTERM (-signal) to -pid once every connection is
             busy (or after -signal-after), then count lost and truncated
             responses and the time from the last response to the target's
             exit
  slowread   -c clients each GET the URL and read the body at -read-rate
             bytes/s; reports the bytes read and the target's RSS

Connections are spread over source addresses 127.0.0.1..127.0.0.N for a
loopback target (see -source-ips), and the fd limit (RLIMIT_NOFILE) is
raised to its hard limit; when that is too low for -c the run stops and says which limit to
raise. With -pid the report adds the target's CPU seconds (utime+stime) and
RSS from /proc, summed over the process and its children.

Examples:
  sluice-bench -url https://127.0.0.1:8443/ -k -c 50 -d 10s
  sluice-bench -url https://127.0.0.1:8443/ -k -h2 -c 50 -m 10 -n 20000 -pid 1234
  sluice-bench -url https://127.0.0.1:8443/ -k -rate 5000 -c 100 -d 10s
  sluice-bench -mode hold -url https://127.0.0.1:8443/ -k -c 19000 -d 5s -pid 1234
  sluice-bench -mode handshake -url https://127.0.0.1:8443/ -k -c 8 -d 5s -pid 1234
  sluice-bench -mode drain -url https://127.0.0.1:8443/ -k -c 1000 -d 10s -pid 1234
  sluice-bench -mode slowread -url 'https://127.0.0.1:8443/bytes?n=10000000' -k -c 20 -read-rate 65536 -d 10s

Exit status: 0 when the run worked (drain: and nothing was lost), 1 when no
request succeeded, a drain lost responses or the target could not be
measured, 2 for a bad flag (one line naming it).

Flags:
`

// headerList is a repeatable -H flag.
type headerList []string

func (h *headerList) String() string { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error {
	name, _, ok := strings.Cut(v, ":")
	if !ok || !h1.ValidFieldName(strings.TrimSpace(name)) {
		return fmt.Errorf("%q: want \"Name: value\"", v)
	}
	*h = append(*h, v)
	return nil
}

// errHelp is returned by Parse for -h.
var errHelp = flag.ErrHelp

// Parse reads flags into Options. A bad value is an error naming the flag.
func Parse(args []string, helpOut io.Writer) (*Options, error) {
	o := &Options{}
	fs := flag.NewFlagSet("sluice-bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	mode := fs.String("mode", "rate", "rate, hold, handshake, drain or slowread")
	u := fs.String("url", "", "target `URL`: http:// (cleartext) or https:// (TLS); the path is requested")
	fs.BoolVar(&o.H2, "h2", false, "HTTP/2 (ALPN h2 over https://, prior knowledge over http://); default HTTP/1.1")
	fs.IntVar(&o.Conns, "c", 50, "connections (clients in slowread, concurrent handshakers in handshake)")
	fs.IntVar(&o.Streams, "m", 10, "concurrent streams per HTTP/2 connection")
	fs.DurationVar(&o.Duration, "d", 10*time.Second, "duration of the load; in hold mode, how long the connections are held")
	fs.Int64Var(&o.Requests, "n", 0, "total requests (rate, handshake); 0: run for -d")
	fs.Float64Var(&o.Rate, "rate", 0, "open loop: requests per second across all connections (0: closed loop)")
	fs.StringVar(&o.Method, "method", "GET", "request method")
	fs.IntVar(&o.Body, "body", 0, "request body `bytes` (sent with Content-Length)")
	var hs headerList
	fs.Var(&hs, "H", "extra request header \"Name: value\", repeatable")
	fs.BoolVar(&o.Insecure, "k", false, "do not verify the target's certificate")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "per-request timeout (and dial and handshake timeout)")
	tlsv := fs.String("tls", "", "TLS version: 1.2 or 1.3 (default: either)")
	fs.IntVar(&o.PID, "pid", 0, "target process id: CPU and RSS from /proc (children included); needed by hold and drain")
	fs.IntVar(&o.SourceIPs, "source-ips", 0, "spread connections to a loopback target over 127.0.0.1..127.0.0.N (0: one per 16,000 connections)")
	fs.DurationVar(&o.Progress, "progress", time.Second, "live progress line interval on stderr (0: none)")
	fs.BoolVar(&o.JSON, "json", false, "print the result as JSON instead of a table")
	fs.DurationVar(&o.SignalAfter, "signal-after", 0, "drain: load this long before the signal (0: one second after every connection is open, at the latest -d/2)")
	sig := fs.String("signal", "TERM", "drain: the signal that stops the target gracefully: TERM, INT, QUIT (nginx) or USR1 (HAProxy)")
	fs.IntVar(&o.ReadRate, "read-rate", 16384, "slowread: bytes per second each client reads")
	fs.Float64Var(&o.OpenRate, "open-rate", 0, "hold: connections opened per second (0: as fast as the target accepts)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(helpOut, usage)
			fs.SetOutput(helpOut)
			fs.PrintDefaults()
			return nil, errHelp
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%q: unexpected argument (flags only)", fs.Arg(0))
	}
	o.Headers = hs
	o.Mode = Mode(*mode)
	switch *sig {
	case "TERM":
		o.Signal = syscall.SIGTERM
	case "INT":
		o.Signal = syscall.SIGINT
	case "QUIT":
		o.Signal = syscall.SIGQUIT
	case "USR1":
		o.Signal = syscall.SIGUSR1
	default:
		return nil, fmt.Errorf("-signal %q: want TERM, INT, QUIT or USR1", *sig)
	}
	switch o.Mode {
	case ModeRate, ModeHold, ModeHandshake, ModeDrain, ModeSlowRead:
	default:
		return nil, fmt.Errorf("-mode %q: want rate, hold, handshake, drain or slowread", *mode)
	}
	if *u == "" {
		return nil, errors.New("-url is required (e.g. -url https://127.0.0.1:8443/)")
	}
	var err error
	if o.URL, err = ParseURL(*u); err != nil {
		return nil, fmt.Errorf("-url %q: %v", *u, err)
	}
	switch *tlsv {
	case "":
	case "1.2":
		o.TLSVer = 0x0303
	case "1.3":
		o.TLSVer = 0x0304
	default:
		return nil, fmt.Errorf("-tls %q: want 1.2 or 1.3", *tlsv)
	}
	return o, o.Check()
}

// ParseURL accepts http:// and https:// URLs with a host, adding the
// default port.
func ParseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("want http://host:port/path or https://host:port/path")
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	return u, nil
}

// Check validates options built without Parse; errors name the flag.
func (o *Options) Check() error {
	switch {
	case o.URL == nil:
		return errors.New("-url is required")
	case o.Conns < 1 || o.Conns > 100000:
		return fmt.Errorf("-c %d: want 1 to 100000", o.Conns)
	case o.Streams < 1 || o.Streams > 1000:
		return fmt.Errorf("-m %d: want 1 to 1000", o.Streams)
	case o.Duration <= 0:
		return fmt.Errorf("-d %v: want a positive duration", o.Duration)
	case o.Requests < 0:
		return fmt.Errorf("-n %d: want 0 or more", o.Requests)
	case o.Rate < 0:
		return fmt.Errorf("-rate %v: want 0 or more", o.Rate)
	case !h1.ValidMethod(o.Method):
		return fmt.Errorf("-method %q: not a method token", o.Method)
	case o.Body < 0:
		return fmt.Errorf("-body %d: want 0 or more", o.Body)
	case o.Timeout <= 0:
		return fmt.Errorf("-timeout %v: want a positive duration", o.Timeout)
	case o.PID < 0:
		return fmt.Errorf("-pid %d: want a process id", o.PID)
	case o.SourceIPs < 0 || o.SourceIPs > 254:
		return fmt.Errorf("-source-ips %d: want 0 to 254", o.SourceIPs)
	case o.Progress < 0:
		return fmt.Errorf("-progress %v: want 0 or more", o.Progress)
	case o.SignalAfter < 0 || (o.SignalAfter > 0 && o.SignalAfter >= o.Duration):
		return fmt.Errorf("-signal-after %v: want less than -d %v", o.SignalAfter, o.Duration)
	case o.ReadRate < 1:
		return fmt.Errorf("-read-rate %d: want a positive byte rate", o.ReadRate)
	case o.OpenRate < 0:
		return fmt.Errorf("-open-rate %v: want 0 or more", o.OpenRate)
	}
	if o.Streams == 0 {
		o.Streams = 1
	}
	switch o.Mode {
	case ModeHold, ModeDrain:
		if o.PID == 0 {
			return fmt.Errorf("-pid: %s mode needs the target's process id", o.Mode)
		}
	case ModeHandshake:
		if o.URL.Scheme != "https" {
			return errors.New("-url: handshake mode needs an https:// URL")
		}
	case ModeSlowRead:
		if o.H2 {
			return errors.New("-h2: slowread reads HTTP/1.1 responses (one per connection, TCP paces the target)")
		}
	}
	if o.Mode != ModeRate && o.Rate > 0 {
		return fmt.Errorf("-rate: only for rate mode, not %s", o.Mode)
	}
	return nil
}

func (o *Options) proto() string {
	if o.H2 {
		return "HTTP/2"
	}
	return "HTTP/1.1"
}

func (o *Options) target() string {
	t := o.URL.RequestURI()
	if t == "" {
		t = "/"
	}
	return t
}

// streams is the concurrency of one connection.
func (o *Options) streams() int {
	if o.H2 {
		return o.Streams
	}
	return 1
}

func itoa(n int) string { return strconv.Itoa(n) }
