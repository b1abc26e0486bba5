package proxy

import (
	"log/slog"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// ---- passive health: eject after MaxFails consecutive failures ----

// failed records an upstream-side failure of an attempt.
func (h *HTTP) failed(u *Upstream, now int64) {
	max := int32(h.cfg.MaxFails)
	if max <= 0 {
		return
	}
	if now < u.downUntil.Load() {
		return // already out: late failures of requests in flight do not extend it
	}
	if u.fails.Add(1) < max {
		return
	}
	// Half-open once re-admitted: the count stays one short, so the next
	// failure ejects again and a success clears it.
	u.fails.Store(max - 1)
	u.downUntil.Store(now + h.failCooldown)
	u.m.ejections.Inc()
	h.warn("upstream ejected", slog.String("upstream", u.addr), slog.Int("consecutive_failures", int(max)),
		slog.Duration("cooldown", h.cfg.FailCooldown))
}

// succeeded records a complete exchange.
func (h *HTTP) succeeded(u *Upstream) {
	if u.fails.Load() != 0 {
		u.fails.Store(0)
	}
}

// ---- active health checks: one checker per upstream, on one loop ----

// checker probes one upstream every HealthInterval with a GET on a fresh
// connection (HTTP/2 with prior knowledge for an h2c upstream), on its
// loop, with a loop timer: no goroutine of its own (engine's Dial uses a
// short-lived one per connect). Loop-owned.
type checker struct {
	h     *HTTP
	u     *Upstream
	l     *engine.Loop
	tm    *engine.Timer
	first int64 // delay of the first probe, spreading upstreams over the interval

	running      bool
	stopped      bool
	fails, okays int
	req          []byte
	h2req        []hpack.HeaderField // h2c upstream: probe over HTTP/2 (health_h2c.go)
}

func newChecker(h *HTTP, u *Upstream, l *engine.Loop, i, n int) *checker {
	k := &checker{h: h, u: u, l: l}
	k.first = int64(h.cfg.HealthInterval) * int64(i) / int64(n)
	if u.h2 {
		k.h2req = h2cHealthRequest(h, u)
		return k
	}
	k.req = h1.AppendRequestLine(nil, "GET", h.cfg.HealthPath, 1)
	k.req = h1.AppendHeader(k.req, "Host", u.host)
	k.req = h1.AppendHeader(k.req, "User-Agent", "sluice-health-check")
	k.req = h1.AppendHeader(k.req, "Connection", "close")
	k.req = h1.AppendEndOfHead(k.req)
	return k
}

// start runs on the loop.
func (k *checker) start() {
	if k.stopped || k.h.closed.Load() {
		return
	}
	k.tm = k.l.AfterFunc(max(k.first, 1), k.probe)
}

// stop runs on the loop.
func (k *checker) stop() {
	k.stopped = true
	if k.tm != nil {
		k.tm.Stop()
	}
}

func (k *checker) probe() {
	if k.stopped || k.h.closed.Load() || k.running {
		return
	}
	k.running = true
	if k.h2req != nil {
		p := newH2CProbe(k)
		k.u.dial(k.l, time.Duration(k.h.cfg.HealthTimeout), p, func(error) { p.finish(false) })
		return
	}
	p := &probeConn{probeBase: probeBase{k: k}}
	k.u.dial(k.l, time.Duration(k.h.cfg.HealthTimeout), p, func(error) { p.finish(false) })
}

func (k *checker) result(ok bool) {
	k.running = false
	u := k.u
	if ok {
		u.m.checksOK.Inc()
		k.fails = 0
		k.okays++
		if u.checkDown.Load() && k.okays >= k.h.cfg.HealthPasses {
			u.checkDown.Store(false)
			k.h.warn("upstream up (active health check)", slog.String("upstream", u.addr))
		}
	} else {
		u.m.checksFail.Inc()
		k.okays = 0
		k.fails++
		if !u.checkDown.Load() && k.fails >= k.h.cfg.HealthFails {
			u.checkDown.Store(true)
			k.h.warn("upstream down (active health check)", slog.String("upstream", u.addr),
				slog.Int("consecutive_failures", k.fails))
		}
	}
	if !k.stopped && !k.h.closed.Load() {
		k.tm.Reset(int64(k.h.cfg.HealthInterval))
	}
}

// probeBase is what every probe connection shares: one verdict per
// probe, the timeout, EOF, drain and close. Loop-owned.
type probeBase struct {
	engine.BaseHandler
	k    *checker
	done bool
}

func (p *probeBase) finish(ok bool) {
	if p.done {
		return
	}
	p.done = true
	p.k.result(ok)
}

// begin starts the exchange on an open connection; false: the checks
// stopped while it dialed, and it is closed.
func (p *probeBase) begin(c *engine.Conn) bool {
	c.Advance(engine.DataTransfer)
	if p.k.stopped || p.k.h.closed.Load() {
		p.finish(false)
		c.Close(engine.Clean)
		return false
	}
	c.SetTimer(engine.TimerProto, int64(p.k.h.cfg.HealthTimeout))
	return true
}

func (p *probeBase) OnReadEOF(c *engine.Conn) {
	p.finish(false)
	c.Close(engine.PeerClosed)
}

// OnTimer is HealthTimeout: the upstream accepted but did not answer.
func (p *probeBase) OnTimer(c *engine.Conn, _ engine.TimerKind) {
	p.finish(false)
	c.Abort(engine.UpstreamError)
}

// OnDrain stops the checks: a draining process needs no more of them, and
// a probe must not keep the engine from going idle.
func (p *probeBase) OnDrain(c *engine.Conn) {
	p.k.stop()
	p.done = true
	c.Close(engine.Clean)
}

func (p *probeBase) OnClosed(*engine.Conn, *engine.Trace) { p.finish(false) }

// probeConn is one health-check connection: send the GET, read the status
// line, close.
type probeConn struct {
	probeBase
	parser h1.Parser
	resp   h1.Response
}

func (p *probeConn) OnOpen(c *engine.Conn) {
	if p.begin(c) {
		c.Write(p.k.req)
	}
}

func (p *probeConn) OnData(c *engine.Conn, b []byte) int {
	for n := 0; n < len(b); {
		k, err := p.parser.ParseResponse(&p.resp, b[n:], h1.MethodOther)
		if err == h1.ErrNeedMore {
			return n
		}
		if err != nil {
			p.finish(false)
			c.Abort(engine.UpstreamError)
			return len(b)
		}
		n += k
		if p.resp.Status >= 200 {
			p.finish(p.resp.Status < 400)
			c.Close(engine.Clean) // the body is not needed: input is discarded from here
			return len(b)
		}
	}
	return len(b)
}
