package proxy

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sluice-proxy/sluice/diag"
)

// The access log's own encoder (HTTPConfig.AccessLogWriter). slog's
// handlers are general: a record, an attribute walk, a value switch, a
// lock. Through slog the access log was 16% of the proxy's CPU under
// h2load (pprof, one loop); this writes the same fields in the same two
// shapes, one line per request, straight into a pooled buffer:
//
//	text: time=2026-12-07T14:29:06.123Z level=INFO msg=request conn=c1f ...
//	json: {"time":"2026-12-07T14:29:06.123456789Z","level":"INFO","msg":"request","conn":"c1f",...}
//
// the shapes of slog's TextHandler and JSONHandler (a text value is quoted
// with strconv.Quote when it is empty or holds a space, '=', '"', a
// control or any non-ASCII byte, a little more often than slog does; JSON
// durations are float seconds, as in the main log).

type accessEncoder struct {
	w    io.Writer
	json bool
	bufs sync.Pool
}

func (e *accessEncoder) write(attrs []slog.Attr) {
	if lw, ok := e.w.(*diag.LogWriter); ok {
		// Formatted straight into the batch: one copy of the line.
		now := time.Now()
		lw.Commit(e.appendLine(lw.Begin(), now, attrs))
		return
	}
	bp, _ := e.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 0, 512)
		bp = &b
	}
	b := e.appendLine((*bp)[:0], time.Now(), attrs)
	_, _ = e.w.Write(b)
	*bp = b
	e.bufs.Put(bp)
}

func (e *accessEncoder) appendLine(b []byte, now time.Time, attrs []slog.Attr) []byte {
	if e.json {
		b = append(b, `{"time":"`...)
		b = now.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","level":"INFO","msg":"request"`...)
		for _, a := range attrs {
			b = append(b, ',')
			b = appendJSONString(b, a.Key)
			b = append(b, ':')
			switch v := a.Value; v.Kind() {
			case slog.KindString:
				b = appendJSONString(b, v.String())
			case slog.KindInt64:
				b = strconv.AppendInt(b, v.Int64(), 10)
			case slog.KindUint64:
				b = strconv.AppendUint(b, v.Uint64(), 10)
			case slog.KindDuration:
				b = strconv.AppendFloat(b, v.Duration().Seconds(), 'g', -1, 64)
			default:
				b = appendJSONString(b, v.String())
			}
		}
		return append(b, "}\n"...)
	}
	b = append(b, "time="...)
	b = appendMillis(b, now)
	b = append(b, " level=INFO msg=request"...)
	for _, a := range attrs {
		b = append(b, ' ')
		b = append(b, a.Key...)
		b = append(b, '=')
		switch v := a.Value; v.Kind() {
		case slog.KindString:
			b = appendText(b, v.String())
		case slog.KindInt64:
			b = strconv.AppendInt(b, v.Int64(), 10)
		case slog.KindUint64:
			b = strconv.AppendUint(b, v.Uint64(), 10)
		default:
			b = appendText(b, v.String())
		}
	}
	return append(b, '\n')
}

// appendMillis is RFC 3339 with exactly three fractional digits, as slog's
// text handler writes times.
func appendMillis(b []byte, t time.Time) []byte {
	b = t.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	return b
}

func appendText(b []byte, s string) []byte {
	if textNeedsQuote(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func textNeedsQuote(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '=' || c == '"' || c >= utf8.RuneSelf || c == 0x7f {
			return true
		}
	}
	return false
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as a JSON string: ", \ and controls escaped,
// invalid UTF-8 replaced by U+FFFD, <, > and & left alone (as slog does).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

// accessOn reports whether request lines are written at all.
func (h *HTTP) accessOn() bool {
	if h.alw != nil {
		return true
	}
	al := h.cfg.AccessLog
	return al != nil && al.Enabled(context.Background(), slog.LevelInfo)
}

// logAccess writes one request line.
func (h *HTTP) logAccess(attrs []slog.Attr) {
	if h.alw != nil {
		h.alw.write(attrs)
		return
	}
	h.cfg.AccessLog.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}
