package main

import (
	"io"
	"log/slog"
)

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	return newLoggerAt(cfg, w, cfg.logLevel)
}

// newLoggerAt is a logger in -log-format at level (the access log has its
// own).
func newLoggerAt(cfg *config, w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if cfg.logFormat == "json" {
		opts.ReplaceAttr = jsonSeconds
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// jsonSeconds writes every duration in a JSON log line as seconds (a
// float), the unit of the metrics and /debug/connections; slog's JSON
// handler would write bare nanoseconds.
func jsonSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.Float64(a.Key, a.Value.Duration().Seconds())
	}
	return a
}
