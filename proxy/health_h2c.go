package proxy

import (
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
	"github.com/sluice-proxy/sluice/internal/h2run"
)

// Active health checks of h2c upstreams: the same checker, but the probe
// speaks HTTP/2 with prior knowledge, since an h2c-only upstream (gRPC)
// cannot answer an HTTP/1.1 GET. One connection, one stream, then close.

// h2cHealthRequest is the probe's request header list for upstream u.
func h2cHealthRequest(h *HTTP, u *Upstream) []hpack.HeaderField {
	return []hpack.HeaderField{
		{Name: ":method", Value: "GET"},
		{Name: ":scheme", Value: u.scheme()},
		{Name: ":authority", Value: u.host},
		{Name: ":path", Value: h.cfg.HealthPath},
		{Name: "user-agent", Value: "sluice-health-check"},
	}
}

// h2cProbe is one health-check connection to an h2c upstream: preface,
// SETTINGS and one GET stream, pass on a final :status below 400.
// Loop-owned.
type h2cProbe struct {
	probeBase
	sc  *h2.Conn     // nil until the connection is open
	run h2run.Runner // writes sc's frames at once: a probe needs no batching
	ev  h2cProbeEvents
	id  uint32

	// Set by the codec's events during Feed, acted on after it: closing
	// the socket in the middle of Feed would leave the codec half way.
	verdict int8 // 0: none yet, 1: pass, -1: fail
}

// h2cProbeEvents is the probe seen as the codec's Handler (a separate type:
// engine.Handler and h2.Handler both have an OnData).
type h2cProbeEvents struct {
	h2.NopHandler
	p *h2cProbe
}

func newH2CProbe(k *checker) *h2cProbe {
	p := &h2cProbe{probeBase: probeBase{k: k}}
	p.ev.p = p
	return p
}

func (p *h2cProbe) OnOpen(c *engine.Conn) {
	if !p.begin(c) {
		return
	}
	if !alpnH2(c) {
		p.finish(false)
		c.Close(engine.Clean)
		return
	}
	p.sc = h2.NewConn(h2.Client, p.k.h.h2ucfg, &p.ev, h2Now())
	p.run.Init(p.sc, nil)
	p.run.Attach(c)
	id, err := p.sc.OpenStream(p.k.h2req, true)
	if err != nil { // cannot happen with a validated path; fail, do not panic
		p.finish(false)
		c.Close(engine.Clean)
		return
	}
	p.id = id
	p.run.WriteOut()
}

func (p *h2cProbe) OnData(c *engine.Conn, b []byte) int {
	if p.sc == nil || p.done {
		return len(b)
	}
	n, err := p.run.Feed(c, b)
	p.run.WriteOut() // SETTINGS and PING ACKs, or the GOAWAY of a codec error
	switch {
	case err != nil:
		p.finish(false)
		c.Close(engine.ProtocolError)
		return len(b)
	case p.verdict != 0:
		p.finish(p.verdict > 0)
		// The body is not needed; a GOAWAY tells the upstream the close is
		// deliberate, and input is discarded from here.
		p.sc.Shutdown(h2Now())
		p.run.WriteOut()
		c.Close(engine.Clean)
		return len(b)
	}
	return n
}

// OnHeaders: a final status decides; 1xx are skipped.
func (e *h2cProbeEvents) OnHeaders(id uint32, hd *h2.Headers) {
	if p := e.p; id == p.id && p.verdict == 0 && hd.Status >= 200 {
		p.verdict = -1
		if hd.Status < 400 {
			p.verdict = 1
		}
	}
}

// OnData credits what arrives before the verdict is acted on, so the
// upstream's windows stay open (the body itself is ignored).
func (e *h2cProbeEvents) OnData(id uint32, data []byte, _ bool) {
	e.p.sc.Consumed(id, len(data))
}

// OnReset: the stream was reset (by the upstream or the codec) or refused.
func (e *h2cProbeEvents) OnReset(id uint32, _ *h2.StreamError) {
	if p := e.p; id == p.id && p.verdict == 0 {
		p.verdict = -1
	}
}

// OnGoAway before the response fails the check even if the stream may
// still be answered: an upstream going away should not get new traffic.
func (e *h2cProbeEvents) OnGoAway(uint32, h2.ErrCode, []byte) {
	if p := e.p; p.verdict == 0 {
		p.verdict = -1
	}
}
