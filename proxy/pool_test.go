package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/engine"
)

// h2cClients returns n HTTP/2 clients with prior knowledge, one
// connection each (x/net opens one per Transport while streams fit).
func h2cClients(n int) []*http.Client {
	cls := make([]*http.Client, n)
	for i := range cls {
		cls[i] = &http.Client{Timeout: 30 * time.Second, Transport: &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
		}}
	}
	return cls
}

// h2Burst sends one GET on each of streams goroutines per client, all at
// once, and waits for every response (each must be a 200 with body want).
func h2Burst(t *testing.T, cls []*http.Client, streams int, url, want string) {
	t.Helper()
	var wg sync.WaitGroup
	for _, cl := range cls {
		for s := 0; s < streams; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := cl.Get(url)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != want {
					t.Errorf("status %d body %q", resp.StatusCode, b)
				}
			}()
		}
	}
	wg.Wait()
}

// Bursts of 50 HTTP/2 connections × 10 streams to an HTTP/1.1 upstream:
// after the first burst the pool holds what the next one needs, so the
// upstream sees about as many connections as there were requests in
// flight at once (≤ 500), not one per request. With the old default
// idle cap of 32 per loop each burst redialed all but 64 (about 1,800
// connections for 2,000 requests).
func TestPoolReuseUnderBursts(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond) // keep the streams of a burst in flight together
		io.WriteString(w, "ok")
	}))
	env := h2Start(t, HTTPConfig{}, be.addr())
	const clients, streams, bursts = 50, 10, 4
	cls := h2cClients(clients)
	for b := 0; b < bursts; b++ {
		h2Burst(t, cls, streams, env.h2cURL("/"), "ok")
		if t.Failed() {
			t.FailNow()
		}
		t.Logf("after burst %d: %d upstream connections", b+1, be.conns.Load())
	}
	// A new upstream connection is dialed only when every one of its
	// loop's connections is busy, so no loop can hold more than the
	// requests it had in flight at once.
	if n := be.conns.Load(); n > clients*streams {
		t.Errorf("upstream connections = %d for %d requests, more than the %d in flight at once: the pool threw connections away",
			n, clients*streams*bursts, clients*streams)
	}
	if v := env.metric(`sluice_http_requests_total{proto="h2",code="200"}`); v != clients*streams*bursts {
		t.Errorf("h2 200s = %v, want %d", v, clients*streams*bursts)
	}
	hpSettled(t, env.hpEnv)
	if idle := env.metric(`sluice_upstream_pool_connections{upstream="` + be.addr() + `",state="idle"}`); idle != float64(be.conns.Load()) {
		t.Errorf("idle pooled connections = %v, want every one dialed (%d): none had a reason to close", idle, be.conns.Load())
	}
}

// The pool gives connections back when demand falls: after a burst of 20
// concurrent requests, one request every 40 ms keeps one connection warm
// (most recently used first) and the others close once unused for
// UpstreamIdleTimeout, without a new dial.
func TestPoolIdlePruning(t *testing.T) {
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	be := &hpBackend{Server: httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		io.WriteString(w, "ok")
	}))}
	be.Config.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			be.conns.Add(1)
			open[c] = true
		case http.StateClosed, http.StateHijacked:
			delete(open, c)
		}
	}
	be.Start()
	t.Cleanup(be.Close)
	openConns := func() int { mu.Lock(); defer mu.Unlock(); return len(open) }
	const idle = 300 * time.Millisecond
	// One loop, so "the pool" is one stack.
	env := hpStartEngine(t, HTTPConfig{UpstreamIdleTimeout: idle}, engine.Config{Loops: 1}, be.addr())
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := cl.Get(env.url("/"))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
	dialed := be.conns.Load()
	if dialed < 5 {
		t.Fatalf("only %d upstream connections for 20 concurrent requests; the test needs concurrency", dialed)
	}
	hpSettled(t, env)
	if n := env.metric(`sluice_upstream_pool_connections{upstream="` + be.addr() + `",state="idle"}`); n != float64(dialed) {
		t.Fatalf("idle pooled connections = %v right after the burst, want %d", n, dialed)
	}
	cl := hpClient()
	deadline := time.Now().Add(3 * idle)
	for time.Now().Before(deadline) {
		resp, err := cl.Get(env.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(40 * time.Millisecond)
	}
	if n := be.conns.Load(); n != dialed {
		t.Errorf("upstream connections dialed = %d, want %d: the trickle should reuse a pooled one", n, dialed)
	}
	hpEventually(t, "the unused pooled connections to close", func() bool {
		return env.metric(`sluice_upstream_pool_connections{upstream="`+be.addr()+`",state="idle"}`) == 1 && openConns() == 1
	})
	// And with no demand at all, the last one goes too.
	hpEventually(t, "the last pooled connection to close", func() bool {
		return env.metric(`sluice_upstream_pool_connections{upstream="`+be.addr()+`",state="idle"}`) == 0 && openConns() == 0
	})
}

// levelLog keeps each record's level, message and side.
type levelLog struct {
	mu   sync.Mutex
	recs []levelRec
}

type levelRec struct {
	level slog.Level
	msg   string
	side  string
}

func (l *levelLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *levelLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *levelLog) WithGroup(string) slog.Handler            { return l }
func (l *levelLog) Handle(_ context.Context, r slog.Record) error {
	rec := levelRec{level: r.Level, msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "side" {
			rec.side = a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, rec)
	l.mu.Unlock()
	return nil
}

func (l *levelLog) closes(side string) []levelRec {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []levelRec
	for _, r := range l.recs {
		if r.side == side && (r.msg == "connection closed" || r.msg == "connection aborted") {
			out = append(out, r)
		}
	}
	return out
}

// Upstream connection closes (pool churn, idle pruning) log at debug; a
// client connection's close keeps its one line at info.
func TestUpstreamClosesLogAtDebug(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	lg := &levelLog{}
	env := hpStartEngine(t, HTTPConfig{UpstreamIdleTimeout: 50 * time.Millisecond},
		engine.Config{Logger: slog.New(lg)}, be.addr())
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get(env.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	hpEventually(t, "both closes logged", func() bool {
		return len(lg.closes("upstream")) > 0 && len(lg.closes("downstream")) > 0
	})
	for _, r := range lg.closes("upstream") {
		if r.level != slog.LevelDebug {
			t.Errorf("upstream %q logged at %v, want DEBUG", r.msg, r.level)
		}
	}
	for _, r := range lg.closes("downstream") {
		if r.level != slog.LevelInfo {
			t.Errorf("client %q logged at %v, want INFO", r.msg, r.level)
		}
	}
}
