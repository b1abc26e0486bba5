package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/internal/testutil"
)

var accessAttrCases = [][]slog.Attr{{
	slog.String("conn", "c1f"),
	slog.Uint64("stream", 7),
	slog.String("method", "GET"),
	slog.String("path", "/a/b?c=d"),
	slog.String("host", ""),
	slog.String("odd", `a b"c\d`),
	slog.String("ctl", "x\ty\x01z\n"),
	slog.Int("status", 503),
	slog.Int64("bytes_out", -1),
	slog.Duration("duration", 1430*time.Microsecond),
	slog.Duration("zero", 0),
}}

// The encoder writes what slog's text and JSON handlers write for the same
// record (JSON durations as seconds, as the main log does).
func TestAccessEncoderMatchesSlog(t *testing.T) {
	now := time.Date(2026, 12, 7, 14, 29, 6, 123456789, time.UTC)
	for _, attrs := range accessAttrCases {
		for _, js := range []bool{false, true} {
			var want bytes.Buffer
			var h slog.Handler = slog.NewTextHandler(&want, nil)
			if js {
				h = slog.NewJSONHandler(&want, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Value.Kind() == slog.KindDuration {
						return slog.Float64(a.Key, a.Value.Duration().Seconds())
					}
					return a
				}})
			}
			r := slog.NewRecord(now, slog.LevelInfo, "request", 0)
			r.AddAttrs(attrs...)
			h.Handle(context.Background(), r)
			e := &accessEncoder{json: js}
			if got := string(e.appendLine(nil, now, attrs)); got != want.String() {
				t.Errorf("json=%v:\n got %s\nwant %s", js, got, want.String())
			}
		}
	}
}

// Where the encoder quotes more eagerly than slog (non-ASCII), the text
// value still reads back exactly, and JSON is valid with invalid UTF-8
// replaced.
func TestAccessEncoderUnusualValues(t *testing.T) {
	for _, v := range []string{"café", "\xff\xfe", "日本", "a=b", "\x7f"} {
		e := &accessEncoder{}
		line := string(e.appendLine(nil, time.Now(), []slog.Attr{slog.String("path", v)}))
		i := strings.Index(line, " path=")
		q := strings.TrimSuffix(line[i+len(" path="):], "\n")
		if got, err := strconv.Unquote(q); err != nil || got != v {
			t.Errorf("text %q: wrote %s, reads back %q %v", v, q, got, err)
		}
		e.json = true
		var m map[string]any
		if err := json.Unmarshal(e.appendLine(nil, time.Now(), []slog.Attr{slog.String("path", v)}), &m); err != nil {
			t.Errorf("json %q: %v", v, err)
		} else if want := string([]rune(v)); m["path"] != want {
			t.Errorf("json %q: read back %q, want %q", v, m["path"], want)
		}
	}
}

// Through the proxy: with AccessLogWriter each request is one whole line
// in one Write, JSON when asked.
func TestAccessLogWriterLines(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	out := &testutil.Writes{}
	env := h2Start(t, HTTPConfig{AccessLogWriter: out, AccessLogJSON: true}, be.addr())
	if code, _ := get(t, hpClient(), env.url("/h1?x=1")); code != 200 {
		t.Fatal(code)
	}
	if code, _ := get(t, h2TLSClient(), env.tlsURL("/h2")); code != 200 {
		t.Fatal(code)
	}
	hpEventually(t, "two access lines", func() bool { return len(out.All()) == 2 })
	paths := map[string]string{}
	for _, w := range out.All() {
		var m map[string]any
		if err := json.Unmarshal(w, &m); err != nil || !bytes.HasSuffix(w, []byte("\n")) || bytes.Count(w, []byte("\n")) != 1 {
			t.Fatalf("not one JSON line: %q %v", w, err)
		}
		if m["msg"] != "request" || m["status"] != float64(200) || m["end"] != "ok" {
			t.Errorf("line %v", m)
		}
		if d, ok := m["duration"].(float64); !ok || d <= 0 || d > 5 {
			t.Errorf("duration %v: not seconds", m["duration"])
		}
		paths[m["path"].(string)] = m["proto"].(string)
	}
	if paths["/h1?x=1"] != "HTTP/1.1" || paths["/h2"] != "HTTP/2.0" {
		t.Errorf("paths %v", paths)
	}
	if len(env.log.all()) != 0 {
		t.Errorf("lines also went to AccessLog: %v", env.log.all())
	}
}

// BenchmarkAccessLine: one request line through the encoder into a
// LogWriter, against slog's TextHandler on the same LogWriter.
func BenchmarkAccessLine(b *testing.B) {
	attrs := []slog.Attr{
		slog.String("conn", "c1f3a"), slog.String("client", "127.0.0.1"), slog.String("method", "GET"),
		slog.String("host", "example.com"), slog.String("path", "/index.html"), slog.String("proto", "HTTP/1.1"),
		slog.Int("status", 200), slog.Int64("bytes_in", 0), slog.Int64("bytes_out", 1024),
		slog.Duration("duration", 1349231*time.Nanosecond), slog.Duration("upstream_header", 1347839*time.Nanosecond),
		slog.String("route", "/"), slog.String("upstream", "127.0.0.1:8080"), slog.Int("attempts", 1), slog.String("end", "ok"),
	}
	b.Run("encoder", func(b *testing.B) {
		lw := diag.NewLogWriter(io.Discard, 64<<10, time.Hour)
		defer lw.Close()
		e := &accessEncoder{w: lw}
		b.ReportAllocs()
		for b.Loop() {
			e.write(attrs)
		}
	})
	b.Run("slog", func(b *testing.B) {
		lw := diag.NewLogWriter(io.Discard, 64<<10, time.Hour)
		defer lw.Close()
		l := slog.New(slog.NewTextHandler(lw, nil))
		b.ReportAllocs()
		for b.Loop() {
			l.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
		}
	})
}
