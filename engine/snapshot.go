package engine

import (
	"context"
	"crypto/tls"
	"sort"

	"github.com/sluice-proxy/sluice/diag"
)

// Snapshot collects live connections and recent close traces by running a
// task on each loop, so it never races the loops. A loop that does not
// answer before ctx ends is left out.
func (e *Engine) Snapshot(ctx context.Context) (diag.Snapshot, error) {
	type part struct {
		conns  []diag.ConnInfo
		recent []diag.Trace
	}
	loops := e.Loops()
	parts := make(chan part, len(loops))
	posted := 0
	for _, l := range loops {
		l := l
		err := l.Post(func() {
			now := l.now()
			var p part
			for _, c := range l.conns {
				ci := diag.ConnInfo{
					ID: diag.ConnID(c.id), Side: c.side.String(), Listener: c.listener, Loop: l.idx,
					State:          c.state.String(),
					AgeSeconds:     float64(now-c.trace.Entered[diag.Created]) / 1e9,
					InStateSeconds: float64(now-c.stateSince) / 1e9,
					BytesIn:        c.trace.BytesIn, BytesOut: c.trace.BytesOut,
					Pending: c.pending(), ReadPaused: c.paused, PeerEOF: c.readEOF,
					KernelQueue: max(c.kernelQueue(), 0),
				}
				if l.e.draining.Load() {
					ci.Draining = c.drainWait(ci.KernelQueue)
				}
				switch {
				case c.admIn(admHandshake):
					ci.WaitingFor = "handshake"
				case c.pp != nil:
					ci.WaitingFor = "proxy_header"
				case c.hsParked:
					ci.WaitingFor = "handshake_slot"
				case c.admIn(admWaiting):
					ci.WaitingFor = "first_byte"
				}
				if c.adm != 0 {
					ci.StalledSeconds = float64(now-c.admKey) / 1e9
				}
				if in, ok := c.TLSInfo(); ok {
					ci.TLS = &diag.TLSInfo{Version: tls.VersionName(in.Version), Cipher: tls.CipherSuiteName(in.CipherSuite),
						ALPN: in.ALPN, SNI: in.ServerName, Resumed: in.Resumed}
				}
				if c.local != nil {
					ci.Local = c.local.String()
				}
				if c.remote != nil {
					ci.Remote = c.remote.String()
				}
				if c.lb != nil {
					ci.Balancer = c.lb.String()
				}
				p.conns = append(p.conns, ci)
			}
			p.recent = l.recent.AppendTo(p.recent, nil)
			parts <- p
		})
		if err == nil {
			posted++
		}
	}
	var s diag.Snapshot
	var traces []diag.Trace
	var err error
	for ; posted > 0; posted-- {
		select {
		case p := <-parts:
			s.Conns = append(s.Conns, p.conns...)
			traces = append(traces, p.recent...)
		case <-ctx.Done():
			err = ctx.Err()
			posted = 1
		}
	}
	sort.Slice(s.Conns, func(i, j int) bool { return s.Conns[i].AgeSeconds > s.Conns[j].AgeSeconds })
	sort.Slice(traces, func(i, j int) bool {
		return traces[i].Entered[diag.SocketClosed] > traces[j].Entered[diag.SocketClosed]
	})
	for i := range traces {
		s.Recent = append(s.Recent, traces[i].Info())
	}
	return s, err
}

// drainWait says what holds a connection open during a drain; kq is its
// kernel send queue.
func (c *Conn) drainWait(kq int) string {
	switch {
	case c.state < diag.HandshakeDone || c.pp != nil:
		return "handshake"
	case c.state < diag.ShutdownInitiated:
		return "response"
	case c.pending() > 0 || kq > 0:
		return "peer_read"
	}
	return "fin"
}

// RecentCloses returns the recent close traces of every loop (the last
// 64 per loop), newest first: those keep accepts (nil: all).
func (e *Engine) RecentCloses(ctx context.Context, keep func(*diag.Trace) bool) ([]diag.TraceInfo, error) {
	loops := e.Loops()
	parts := make(chan []diag.Trace, len(loops))
	posted := 0
	for _, l := range loops {
		l := l
		if l.Post(func() {
			parts <- l.recent.AppendTo(nil, keep)
		}) == nil {
			posted++
		}
	}
	var traces []diag.Trace
	var err error
	for ; posted > 0; posted-- {
		select {
		case p := <-parts:
			traces = append(traces, p...)
		case <-ctx.Done():
			err = ctx.Err()
			posted = 1
		}
	}
	sort.Slice(traces, func(i, j int) bool {
		return traces[i].Entered[diag.SocketClosed] > traces[j].Entered[diag.SocketClosed]
	})
	out := make([]diag.TraceInfo, 0, len(traces))
	for i := range traces {
		out = append(out, traces[i].Info())
	}
	return out, err
}
