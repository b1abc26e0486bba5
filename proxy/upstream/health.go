package upstream

import (
	"context"
	"log/slog"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h1"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
	"github.com/sluice-proxy/sluice/internal/h2run"
)

// warn logs at warn level if log is set and enabled.
func warn(log *slog.Logger, msg string, attrs ...slog.Attr) {
	if log != nil && log.Enabled(context.Background(), slog.LevelWarn) {
		log.LogAttrs(context.Background(), slog.LevelWarn, msg, attrs...)
	}
}

// ---- passive health: eject after MaxFails consecutive failures ----

// Passive is the passive health policy, shared by every upstream of a
// proxy. Read-only once set.
type Passive struct {
	MaxFails int           // consecutive failed attempts that eject; 0: never
	Cooldown time.Duration // how long an ejected upstream stays out
	Log      *slog.Logger  // ejections are logged at warn; nil: not logged
}

// Failed records an upstream-side failure of an attempt at engine clock now.
func (p *Passive) Failed(u *Upstream, now int64) {
	max := int32(p.MaxFails)
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
	u.downUntil.Store(now + int64(p.Cooldown))
	u.M.Ejections.Inc()
	warn(p.Log, "upstream ejected", slog.String("upstream", u.addr), slog.Int("consecutive_failures", int(max)),
		slog.Duration("cooldown", p.Cooldown))
}

// Succeeded records a complete exchange.
func (p *Passive) Succeeded(u *Upstream) {
	if u.fails.Load() != 0 {
		u.fails.Store(0)
	}
}

// ---- active health checks: one checker per upstream, on one loop ----

// CheckConfig is what a Checker needs from the proxy's configuration.
type CheckConfig struct {
	Interval time.Duration // between the end of a probe and the next
	Timeout  time.Duration // connect, and then the response head
	Passes   int           // consecutive passes that bring a down upstream back
	Fails    int           // consecutive failures that mark it down

	Request   []byte              // an HTTP/1.1 upstream's probe request, whole
	H2Request []hpack.HeaderField // an h2c/h2 upstream's probe header list
	H2        h2.Config           // the HTTP/2 probe's codec settings (client role)

	Log    *slog.Logger // up and down transitions, at warn; nil: not logged
	Closed func() bool  // true once the proxy is closed: no more probes; nil: never
}

// Checker probes one upstream every Interval with a GET on a fresh
// connection (HTTP/2 with prior knowledge, or ALPN h2, for an h2c/h2
// upstream), on its loop, with a loop timer: no goroutine of its own
// (engine's Dial uses a short-lived one per connect). Loop-owned, but for
// Loop, which any goroutine may call.
type Checker struct {
	u     *Upstream
	l     *engine.Loop
	cfg   CheckConfig
	tm    *engine.Timer
	first int64 // delay of the first probe, spreading upstreams over the interval

	running      bool
	stopped      bool
	fails, okays int
}

// NewChecker returns u's checker on loop l. first is the delay from Start
// to the first probe, so that a proxy's upstreams are spread over the
// interval (0 probes at once).
func NewChecker(u *Upstream, l *engine.Loop, first time.Duration, cfg CheckConfig) *Checker {
	return &Checker{u: u, l: l, cfg: cfg, first: int64(first)}
}

// Loop is the loop the checker runs on: Start and Stop are posted to it.
func (k *Checker) Loop() *engine.Loop { return k.l }

// Start schedules the first probe. It runs on the loop.
func (k *Checker) Start() {
	if k.off() {
		return
	}
	k.tm = k.l.AfterFunc(max(k.first, 1), k.probe)
}

// Stop ends the checks; a probe in flight gives no verdict. It runs on
// the loop.
func (k *Checker) Stop() {
	k.stopped = true
	if k.tm != nil {
		k.tm.Stop()
	}
}

// off: stopped, or the proxy closed.
func (k *Checker) off() bool {
	return k.stopped || k.cfg.Closed != nil && k.cfg.Closed()
}

func (k *Checker) probe() {
	if k.off() || k.running {
		return
	}
	k.running = true
	p := &probe{k: k}
	k.u.Dial(k.l, k.cfg.Timeout, p, func(error) { p.finish(false) })
}

func (k *Checker) result(ok bool) {
	k.running = false
	u := k.u
	if ok {
		u.M.ChecksOK.Inc()
		k.fails = 0
		k.okays++
		if u.checkDown.Load() && k.okays >= k.cfg.Passes {
			u.checkDown.Store(false)
			warn(k.cfg.Log, "upstream up (active health check)", slog.String("upstream", u.addr))
		}
	} else {
		u.M.ChecksFail.Inc()
		k.okays = 0
		k.fails++
		if !u.checkDown.Load() && k.fails >= k.cfg.Fails {
			u.checkDown.Store(true)
			warn(k.cfg.Log, "upstream down (active health check)", slog.String("upstream", u.addr),
				slog.Int("consecutive_failures", k.fails))
		}
	}
	if !k.off() {
		k.tm.Reset(int64(k.cfg.Interval))
	}
}

// probe is one health-check connection: send the request, judge the final
// status of the response head (below 400 passes), close. Over HTTP/1.1 the
// request is CheckConfig.Request and the head is parsed with h1; over
// HTTP/2 it is the preface, SETTINGS and one GET stream on an h2.Conn.
// Loop-owned.
type probe struct {
	engine.BaseHandler
	k    *Checker
	done bool // the verdict is given

	// HTTP/1.1
	parser h1.Parser
	resp   h1.Response

	// HTTP/2: nil sc until the connection is open.
	sc  *h2.Conn
	run h2run.Runner // writes sc's frames at once: a probe needs no batching
	ev  probeEvents
	id  uint32
	// Set by the codec's events during Feed, acted on after it: closing
	// the socket in the middle of Feed would leave the codec half way.
	verdict int8 // 0: none yet, 1: pass, -1: fail
}

func (p *probe) finish(ok bool) {
	if p.done {
		return
	}
	p.done = true
	p.k.result(ok)
}

func (p *probe) OnOpen(c *engine.Conn) {
	c.Advance(diag.DataTransfer)
	if p.k.off() {
		p.finish(false)
		c.Close(diag.Clean)
		return
	}
	c.SetTimer(engine.TimerProto, int64(p.k.cfg.Timeout))
	if !p.k.u.h2 {
		c.Write(p.k.cfg.Request)
		return
	}
	if !h2run.CarriesH2(c) {
		p.finish(false)
		c.Close(diag.Clean)
		return
	}
	p.ev.p = p
	p.sc = h2.NewConn(h2.Client, p.k.cfg.H2, &p.ev, h2run.Now())
	p.run.Init(p.sc, nil)
	p.run.Attach(c)
	id, err := p.sc.OpenStream(p.k.cfg.H2Request, true)
	if err != nil { // cannot happen with a validated path; fail, do not panic
		p.finish(false)
		c.Close(diag.Clean)
		return
	}
	p.id = id
	p.run.WriteOut()
}

func (p *probe) OnData(c *engine.Conn, b []byte) int {
	if p.done {
		return len(b)
	}
	if p.k.u.h2 {
		return p.onH2Data(c, b)
	}
	for n := 0; n < len(b); {
		k, err := p.parser.ParseResponse(&p.resp, b[n:], h1.MethodOther)
		if err == h1.ErrNeedMore {
			return n
		}
		if err != nil {
			p.finish(false)
			c.Abort(diag.UpstreamError)
			return len(b)
		}
		n += k
		if p.resp.Status >= 200 {
			p.finish(p.resp.Status < 400)
			c.Close(diag.Clean) // the body is not needed: input is discarded from here
			return len(b)
		}
	}
	return len(b)
}

func (p *probe) onH2Data(c *engine.Conn, b []byte) int {
	if p.sc == nil {
		return len(b)
	}
	n, err := p.run.Feed(c, b)
	p.run.WriteOut() // SETTINGS and PING ACKs, or the GOAWAY of a codec error
	switch {
	case err != nil:
		p.finish(false)
		c.Close(diag.ProtocolError)
		return len(b)
	case p.verdict != 0:
		p.finish(p.verdict > 0)
		// The body is not needed; a GOAWAY tells the upstream the close is
		// deliberate, and input is discarded from here.
		p.sc.Shutdown(h2run.Now())
		p.run.WriteOut()
		c.Close(diag.Clean)
		return len(b)
	}
	return n
}

func (p *probe) OnReadEOF(c *engine.Conn) {
	p.finish(false)
	c.Close(diag.PeerClosed)
}

// OnTimer is the Timeout: the upstream accepted but did not answer.
func (p *probe) OnTimer(c *engine.Conn, _ engine.TimerKind) {
	p.finish(false)
	c.Abort(diag.UpstreamError)
}

// OnDrain stops the checks: a draining process needs no more of them, and
// a probe must not keep the engine from going idle.
func (p *probe) OnDrain(c *engine.Conn) {
	p.k.Stop()
	p.done = true
	c.Close(diag.Clean)
}

func (p *probe) OnClosed(*engine.Conn, *diag.Trace) { p.finish(false) }

// probeEvents is the probe seen as the codec's Handler (a separate type:
// engine.Handler and h2.Handler both have an OnData).
type probeEvents struct {
	h2.NopHandler
	p *probe
}

// OnHeaders: a final status decides; 1xx are skipped.
func (e *probeEvents) OnHeaders(id uint32, hd *h2.Headers) {
	if p := e.p; id == p.id && p.verdict == 0 && hd.Status >= 200 {
		p.verdict = -1
		if hd.Status < 400 {
			p.verdict = 1
		}
	}
}

// OnData credits what arrives before the verdict is acted on, so the
// upstream's windows stay open (the body itself is ignored).
func (e *probeEvents) OnData(id uint32, data []byte, _ bool) {
	e.p.sc.Consumed(id, len(data))
}

// OnReset: the stream was reset (by the upstream or the codec) or refused.
func (e *probeEvents) OnReset(id uint32, _ *h2.StreamError) {
	if p := e.p; id == p.id && p.verdict == 0 {
		p.verdict = -1
	}
}

// OnGoAway before the response fails the check even if the stream may
// still be answered: an upstream going away should not get new traffic.
func (e *probeEvents) OnGoAway(uint32, h2.ErrCode, []byte) {
	if p := e.p; p.verdict == 0 {
		p.verdict = -1
	}
}
