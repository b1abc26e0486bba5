package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/sluice-proxy/sluice/diag"
)

// shutdownStep records one step of the close sequence in the trace (bytes
// at each step), feeds the shutdown metrics and writes the debug line
// for it: the facts an operator needs to see where a close went, as slog
// attributes (text and JSON alike).
func (c *Conn) shutdownStep(s, prev diag.State, now, spent int64) {
	t := &c.trace
	t.OutAt[s-diag.ShutdownInitiated] = t.BytesOut
	m := c.l.e.met
	if s == diag.ShutdownInitiated {
		t.PendingAtShutdown = c.pending()
		t.KernelAtShutdown = max(c.kernelQueue(), 0)
		t.InAtShutdown = t.BytesIn
		if c.side == diag.Downstream {
			m.conn.ShutdownPending(t.PendingAtShutdown)
		}
	}
	lg := c.l.e.log
	if !lg.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	a := make([]slog.Attr, 0, 10)
	a = append(a, slog.String("conn", diag.ConnID(c.id)), slog.String("side", c.side.String()),
		slog.String("step", s.String()))
	switch s {
	case diag.ShutdownInitiated:
		cause := t.Cause
		if cause == diag.OutcomeNone {
			cause = t.Outcome
		}
		a = append(a, slog.String("state_at_shutdown", prev.String()), slog.String("cause", cause.String()),
			slog.Int("pending", t.PendingAtShutdown), slog.Int("kernel_queue", t.KernelAtShutdown))
		if t.PeerEnded != 0 {
			a = append(a, slog.String("peer_ended", t.PeerEndedBy.String()))
		}
	case diag.BufferFlushed:
		a = append(a, slog.Bool("flush_completed", true),
			slog.Int64("flushed", t.BytesOut-t.OutAt[0]), slog.Duration("flush", Dur(spent)))
	case diag.CloseNotifySent:
		a = append(a, slog.Bool("close_notify_sent", true), slog.Duration("in_prev", Dur(spent)))
	case diag.WriteShut, diag.Lingering:
		a = append(a, slog.Int("kernel_queue", max(c.kernelQueue(), 0)), slog.Duration("in_prev", Dur(spent)))
	case diag.SocketClosed:
		a = append(a, slog.String("outcome", t.Outcome.String()), slog.String("closed_first", t.ClosedFirst()),
			slog.Bool("flush_completed", t.Entered[diag.BufferFlushed] != 0),
			slog.Bool("close_notify_sent", t.Entered[diag.CloseNotifySent] != 0),
			slog.Bool("delivered", t.Delivered != 0))
		if t.Discarded > 0 {
			a = append(a, slog.Int64("discarded", t.Discarded))
		}
		if st := t.Entered[diag.ShutdownInitiated]; st != 0 {
			a = append(a, slog.Duration("shutdown", time.Duration(now-st)))
		}
	}
	lg.LogAttrs(context.Background(), slog.LevelDebug, "shutdown", a...)
}
