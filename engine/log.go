package engine

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/sluice-proxy/sluice/diag"
)

// logClose writes the one line per close: outcome, cause, duration,
// bytes, and the close sequence as it happened, e.g.
//
//	conn=c1f outcome=clean duration=2.1s bytes_in=517 bytes_out=8388608
//	close="ShutdownInitiated pending=1024 · BufferFlushed +3ms · CloseNotifySent +3ms ·
//	WriteShut +3ms · Lingering +3ms · SocketClosed +150ms" shutdown=150ms
//
// A client connection's close logs at info. An upstream one logs at debug:
// pooled connections come and go with demand and health probes dial every
// few seconds: a line each at info would be paid per request on a busy
// proxy. Their outcomes are counted in the metrics either way.
func (e *Engine) logClose(t *diag.Trace) {
	lvl := slog.LevelInfo
	if t.Side == diag.Upstream {
		lvl = slog.LevelDebug
	}
	if !e.log.Enabled(context.Background(), lvl) {
		return
	}
	attrs := []slog.Attr{
		slog.String("conn", diag.ConnID(t.ID)),
		slog.String("side", t.Side.String()),
		slog.String("outcome", t.Outcome.String()),
	}
	if t.Cause != diag.OutcomeNone && t.Cause != t.Outcome {
		attrs = append(attrs, slog.String("cause", t.Cause.String()))
	}
	if t.Listener != "" {
		attrs = append(attrs, slog.String("listener", t.Listener))
	}
	attrs = append(attrs,
		slog.String("remote", t.Remote),
		slog.Duration("duration", time.Duration(t.Entered[diag.SocketClosed]-t.Entered[diag.Created])),
		slog.Int64("bytes_in", t.BytesIn),
		slog.Int64("bytes_out", t.BytesOut))
	if t.Discarded > 0 {
		attrs = append(attrs, slog.Int64("discarded", t.Discarded))
	}
	if s := t.Entered[diag.ShutdownInitiated]; s != 0 {
		attrs = append(attrs,
			slog.String("close", t.CloseSequence()),
			slog.Duration("shutdown", time.Duration(t.Entered[diag.SocketClosed]-s)))
	}
	if t.Delivered != 0 {
		attrs = append(attrs, slog.Bool("delivered", true))
	}
	e.log.LogAttrs(context.Background(), lvl, "connection closed", attrs...)
}

// gnetLogger sends gnet's own log lines to slog, at one level lower than
// gnet uses (its info lines are start-up chatter).
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(format string, args ...any) {
	g.l.Debug("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Infof(format string, args ...any) {
	g.l.Debug("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Warnf(format string, args ...any) {
	g.l.Warn("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Errorf(format string, args ...any) {
	g.l.Error("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Fatalf(format string, args ...any) {
	g.l.Error("gnet fatal: " + fmt.Sprintf(format, args...))
}
