package proxy

import (
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/proxyproto"
)

// TCPConfig configures the layer-4 pass-through.
type TCPConfig struct {
	Upstream    string        // host:port
	DialTimeout time.Duration // connect timeout
	IdleTimeout time.Duration // no bytes either way for this long closes both sides
	// ProxyProtocol, 1 or 2, starts each upstream connection with a PROXY
	// protocol header of that version naming the client and the address
	// it reached (httpcodec/proxyproto); 0 sends none.
	ProxyProtocol int
	Logger        *slog.Logger
}

// TCP is the layer-4 pass-through: each client connection gets its own
// upstream connection on the same loop, and bytes flow both ways with
// backpressure (a side whose peer is over the output high-water mark stops
// reading until it drains). Half-closes are forwarded: a FIN from one side
// becomes a shutdown(SHUT_WR) on the other after every byte before it.
type TCP struct {
	cfg TCPConfig
	m   *tcpMetrics
}

// NewTCP returns the relay; Accept is its engine.Listener.Accept.
func NewTCP(cfg TCPConfig, m *Metrics) *TCP {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &TCP{cfg: cfg, m: m.tcp(cfg.Upstream)}
}

// Accept starts a relay for a new client connection.
func (t *TCP) Accept(c *engine.Conn) engine.Handler {
	r := &relay{t: t, down: c}
	return (*relayDown)(r)
}

// relay is one client↔upstream pair. Loop-owned: both conns are on one loop.
type relay struct {
	t        *TCP
	down, up *engine.Conn
	downEOF  bool // the client half-closed
	dialing  bool
}

type relayDown relay
type relayUp relay

func (r *relay) touch() {
	if d := r.t.cfg.IdleTimeout; d > 0 {
		r.down.SetTimer(engine.TimerIdle, int64(d))
		if r.up != nil {
			r.up.SetTimer(engine.TimerIdle, int64(d))
		}
	}
}

// forward writes b from src to dst and pauses src while dst is over its
// high-water mark.
func forward(src, dst *engine.Conn, b []byte) {
	dst.Write(b)
	if dst.OverHighWater() {
		src.PauseRead()
		dst.NotifyWritable()
	}
}

// ---- downstream side ----

func (h *relayDown) OnOpen(c *engine.Conn) {
	r := (*relay)(h)
	c.Advance(diag.DataTransfer)
	r.touch()
	r.dialing = true
	c.Loop().Dial(r.t.cfg.Upstream, r.t.cfg.DialTimeout, (*relayUp)(r), func(err error) {
		r.dialing = false
		r.t.m.dialErrors.Inc()
		r.t.cfg.Logger.Warn("upstream dial failed", "conn", r.down.String(), "upstream", r.t.cfg.Upstream, "err", err)
		// A client of a layer-4 proxy can only learn of the failure from
		// the connection itself: reset it rather than fake a clean end.
		r.down.Abort(diag.UpstreamError)
	})
}

func (h *relayDown) OnData(c *engine.Conn, b []byte) int {
	r := (*relay)(h)
	if r.up == nil {
		c.PauseRead() // the engine keeps b until the upstream is connected
		return 0
	}
	r.touch()
	forward(c, r.up, b)
	return len(b)
}

func (h *relayDown) OnReadEOF(c *engine.Conn) {
	r := (*relay)(h)
	r.downEOF = true
	if r.up != nil {
		r.up.CloseWrite()
	}
}

func (h *relayDown) OnWritable(c *engine.Conn) {
	if r := (*relay)(h); r.up != nil {
		r.up.ResumeRead()
	}
}

func (h *relayDown) OnTimer(c *engine.Conn, k engine.TimerKind) { (*relay)(h).idle(k) }

func (r *relay) idle(k engine.TimerKind) {
	r.down.Close(k.Outcome())
	if r.up != nil {
		r.up.Close(k.Outcome())
	}
}

// OnDrain lets the relay run to its natural end: a byte stream has no
// request boundary to stop at. The drain deadline bounds it.
func (h *relayDown) OnDrain(*engine.Conn) {}

func (h *relayDown) OnClosed(c *engine.Conn, t *diag.Trace) {
	r := (*relay)(h)
	if r.up == nil || r.up.State() == diag.SocketClosed {
		return
	}
	if cleanOutcome(t.Outcome) {
		r.up.Close(diag.Clean)
	} else {
		r.up.Abort(diag.Aborted) // pass the failure on, as an RST
	}
}

// ---- upstream side ----

func (h *relayUp) OnOpen(c *engine.Conn) {
	r := (*relay)(h)
	r.dialing = false
	r.t.m.relays.Inc()
	if r.down.State() == diag.SocketClosed {
		c.Close(diag.Clean)
		return
	}
	r.up = c
	c.Advance(diag.DataTransfer)
	if v := r.t.cfg.ProxyProtocol; v != 0 {
		c.Write(proxyproto.Append(nil, v, tcpAddrPort(r.down.RemoteAddr()), tcpAddrPort(r.down.LocalAddr()))) // before any client byte
	}
	r.touch()
	r.down.ResumeRead()
	if r.downEOF {
		c.CloseWrite()
	}
}

func (h *relayUp) OnData(c *engine.Conn, b []byte) int {
	r := (*relay)(h)
	r.touch()
	forward(c, r.down, b)
	return len(b)
}

func (h *relayUp) OnReadEOF(c *engine.Conn) { (*relay)(h).down.CloseWrite() }

func (h *relayUp) OnWritable(c *engine.Conn) { (*relay)(h).down.ResumeRead() }

func (h *relayUp) OnTimer(c *engine.Conn, k engine.TimerKind) { (*relay)(h).idle(k) }

func (h *relayUp) OnDrain(*engine.Conn) {}

func (h *relayUp) OnClosed(c *engine.Conn, t *diag.Trace) {
	r := (*relay)(h)
	if r.down.State() == diag.SocketClosed {
		return
	}
	if cleanOutcome(t.Outcome) {
		return // the upstream's FIN was forwarded; the client side finishes on its own
	}
	// The upstream broke: the client must not mistake the truncation for a
	// clean end of stream.
	r.down.Abort(diag.UpstreamError)
}

func cleanOutcome(o diag.Outcome) bool {
	switch o {
	case diag.Clean, diag.PeerClosed, diag.IdleTimeout, diag.LingerTimeout:
		return true
	}
	return false
}

// tcpAddrPort is a's address and port; zero (the header then says
// "unknown") when a is not a TCP address.
func tcpAddrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok && ta != nil {
		return ta.AddrPort()
	}
	return netip.AddrPort{}
}
