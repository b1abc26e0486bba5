package proxy

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/tlsio"
)

// Upstream is one origin server (host:port). Every route and every loop
// that names the same address shares one Upstream, so its health and load
// are per origin. The counters are atomics because loops read and write
// them concurrently; everything else is set at start-up.
type Upstream struct {
	addr  string        // host:port, dialed
	label string        // the upstream's key (scheme prefix, ?sni=): its metrics label
	h2    bool          // spoken to in HTTP/2 (h2c:// or h2://)
	host  string        // host:port as a Host field value (for RewriteHost)
	idx   int           // index into HTTP.ups and each loop's pools
	tls   *tlsio.Client // https or h2 upstream: verification, SNI, session cache; nil: cleartext

	inflight  atomic.Int64 // requests being served, all loops
	fails     atomic.Int32 // consecutive passive failures
	downUntil atomic.Int64 // engine clock; passively ejected until then
	checkDown atomic.Bool  // the active health check says down
	idleConns atomic.Int64 // pooled idle connections, all loops
	busyConns atomic.Int64 // connections serving a request, all loops

	// The in-use cap (HTTPConfig.UpstreamMaxConns, queue.go); 0: none.
	maxConns int64
	inUse    atomic.Int64 // slots held: connections dialing or serving, all loops
	queued   atomic.Int64 // requests waiting for a slot, all loops

	m upstreamMetrics
}

// Addr is the upstream's host:port.
func (u *Upstream) Addr() string { return u.addr }

// InFlight is the number of requests the upstream is serving, over all loops.
func (u *Upstream) InFlight() int64 { return u.inflight.Load() }

// Available reports whether the upstream may be picked: not ejected by
// passive health checking and not marked down by the active check.
func (u *Upstream) Available() bool { return u.available(engine.Now()) }

func (u *Upstream) available(now int64) bool {
	return !u.checkDown.Load() && now >= u.downUntil.Load()
}

func newUpstream(addr string, idx int, tls *tlsio.Client) *Upstream {
	host, port, _ := net.SplitHostPort(addr)
	hv := addr
	if port == "80" && tls == nil || port == "443" && tls != nil {
		hv = host
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			hv = "[" + host + "]"
		}
	}
	return &Upstream{addr: addr, host: hv, idx: idx, tls: tls}
}

// scheme is the :scheme of HTTP/2 requests to u.
func (u *Upstream) scheme() string {
	if u.tls != nil {
		return "https"
	}
	return "http"
}

// dial connects to u from loop l: over TLS for an https upstream, in
// which case h opens after the handshake (engine.Loop.DialTLS).
func (u *Upstream) dial(l *engine.Loop, timeout time.Duration, h engine.Handler, onErr func(error)) {
	if u.tls != nil {
		l.DialTLS(u.addr, timeout, u.tls, h, onErr)
		return
	}
	l.Dial(u.addr, timeout, h, onErr)
}

// Selector picks the upstream for one request. cands is never empty and
// holds the route's available upstreams (or all of them when none is
// available, see HTTPConfig.Balance). Implementations are shared by every
// loop, so their state must be safe for concurrent use, and Select must
// not block.
type Selector interface {
	Select(cands []*Upstream) *Upstream
}

// Balancing policies, for HTTPConfig.Balance.
const (
	BalanceRoundRobin = "round_robin"
	BalanceLeastConn  = "least_conn"
	BalanceP2C        = "p2c"
)

// NewSelector returns a fresh selector for a policy name.
func NewSelector(policy string) (Selector, error) {
	switch policy {
	case "", BalanceRoundRobin:
		return &RoundRobin{}, nil
	case BalanceLeastConn:
		return LeastConn{}, nil
	case BalanceP2C:
		return PowerOfTwo{}, nil
	}
	return nil, fmt.Errorf("balance policy %q: want %s, %s or %s", policy, BalanceRoundRobin, BalanceLeastConn, BalanceP2C)
}

// RoundRobin takes the candidates in turn. One counter is shared by all
// loops, so the rotation is global.
type RoundRobin struct{ n atomic.Uint64 }

// Select returns the next candidate in turn.
func (r *RoundRobin) Select(cands []*Upstream) *Upstream {
	if len(cands) == 1 {
		return cands[0]
	}
	return cands[(r.n.Add(1)-1)%uint64(len(cands))]
}

// LeastConn takes the candidate with the fewest requests in flight over all
// loops. Ties go to the first one found scanning from a random start, so
// an idle pool is not always served by its first member.
type LeastConn struct{}

// Select returns the least loaded candidate.
func (LeastConn) Select(cands []*Upstream) *Upstream {
	n := len(cands)
	if n == 1 {
		return cands[0]
	}
	start := rand.IntN(n)
	best := cands[start]
	bl := best.InFlight()
	for i := 1; i < n && bl > 0; i++ {
		c := cands[(start+i)%n]
		if l := c.InFlight(); l < bl {
			best, bl = c, l
		}
	}
	return best
}

// PowerOfTwo ("power of two choices") samples two distinct candidates at
// random and takes the one with fewer requests in flight: nearly the load
// spread of LeastConn without reading every counter, and no herd on one
// newly idle upstream.
type PowerOfTwo struct{}

// Select returns the less loaded of two random candidates.
func (PowerOfTwo) Select(cands []*Upstream) *Upstream {
	n := len(cands)
	if n == 1 {
		return cands[0]
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := cands[i], cands[j]
	if b.InFlight() < a.InFlight() {
		return b
	}
	return a
}
