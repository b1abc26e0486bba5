package upstream

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/tlsio"
)

// Upstream is one origin server (host:port). Every route and every loop
// that names the same address shares one Upstream, so its health and load
// are per origin. The counters are atomics because loops read and write
// them concurrently; everything else is set before it is shared.
type Upstream struct {
	addr  string        // host:port, dialed
	label string        // the upstream's key (scheme prefix, ?sni=): its metrics label
	h2    bool          // spoken to in HTTP/2 (h2c:// or h2://)
	host  string        // host:port as a Host field value (for RewriteHost)
	idx   int           // index into the proxy's upstreams and each loop's pools
	tls   *tlsio.Client // https or h2 upstream: verification, SNI, session cache; nil: cleartext

	inflight  atomic.Int64 // requests being served, all loops
	fails     atomic.Int32 // consecutive passive failures
	downUntil atomic.Int64 // engine clock; passively ejected until then
	checkDown atomic.Bool  // the active health check says down

	// Connection counters kept by the pools, all loops.
	IdleConns atomic.Int64 // pooled idle connections
	BusyConns atomic.Int64 // connections serving a request

	// The in-use cap (proxy's UpstreamMaxConns); 0: none. Set before
	// the upstream is shared.
	MaxConns int64
	InUse    atomic.Int64 // slots held: connections dialing or serving, all loops
	Queued   atomic.Int64 // requests waiting for a slot, all loops

	M Metrics // created by the proxy before the upstream is shared
}

// Metrics are an upstream's counters, labelled with its key.
type Metrics struct {
	Results    []*metrics.Counter // attempts by result, indexed by the proxy's result codes
	Ejections  *metrics.Counter   // passive ejections
	ChecksOK   *metrics.Counter   // active checks passed
	ChecksFail *metrics.Counter   // active checks failed
}

// New returns the upstream key names: addr is its host:port, idx its
// index among the proxy's upstreams, h2 whether it speaks HTTP/2 (h2c or
// h2), tls its TLS client (nil: cleartext).
func New(key, addr string, idx int, h2 bool, tls *tlsio.Client) *Upstream {
	host, port, _ := net.SplitHostPort(addr)
	hv := addr
	if port == "80" && tls == nil || port == "443" && tls != nil {
		hv = host
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			hv = "[" + host + "]"
		}
	}
	return &Upstream{addr: addr, label: key, h2: h2, host: hv, idx: idx, tls: tls}
}

// Addr is the upstream's host:port.
func (u *Upstream) Addr() string { return u.addr }

// Label is the upstream's key (scheme prefix and ?sni= included), the
// label of its metrics.
func (u *Upstream) Label() string { return u.label }

// H2 reports whether the upstream is spoken to in HTTP/2 (h2c or h2).
func (u *Upstream) H2() bool { return u.h2 }

// Host is the upstream's address as a Host field (or :authority) value:
// without the scheme's default port.
func (u *Upstream) Host() string { return u.host }

// Index is the upstream's index among the proxy's upstreams (its pools'
// and queues' slot on every loop).
func (u *Upstream) Index() int { return u.idx }

// Scheme is the :scheme of HTTP/2 requests to u.
func (u *Upstream) Scheme() string {
	if u.tls != nil {
		return "https"
	}
	return "http"
}

// InFlight is the number of requests the upstream is serving, over all loops.
func (u *Upstream) InFlight() int64 { return u.inflight.Load() }

// CountRequest adds delta (1 when an exchange starts on u, -1 when it
// ends) to the requests in flight that LeastConn and PowerOfTwo compare.
func (u *Upstream) CountRequest(delta int64) { u.inflight.Add(delta) }

// Available reports whether the upstream may be picked: not ejected by
// passive health checking and not marked down by the active check.
func (u *Upstream) Available() bool { return u.AvailableAt(engine.Now()) }

// AvailableAt is Available at engine clock now.
func (u *Upstream) AvailableAt(now int64) bool {
	return !u.checkDown.Load() && now >= u.downUntil.Load()
}

// TakeSlot claims one of u's in-use slots (MaxConns > 0); false when all
// are held.
func (u *Upstream) TakeSlot() bool {
	for {
		n := u.InUse.Load()
		if n >= u.MaxConns {
			return false
		}
		if u.InUse.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Dial connects to u from loop l: over TLS for an https or h2 upstream,
// in which case h opens after the handshake (engine.Loop.DialTLS).
func (u *Upstream) Dial(l *engine.Loop, timeout time.Duration, h engine.Handler, onErr func(error)) {
	if u.tls != nil {
		l.DialTLS(u.addr, timeout, u.tls, h, onErr)
		return
	}
	l.Dial(u.addr, timeout, h, onErr)
}
