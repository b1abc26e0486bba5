package proxy

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/tlsio"

	"github.com/sluice-proxy/sluice/internal/testutil"

	"github.com/sluice-proxy/sluice/internal/testutil/enginetest"
)

// Test harness for the HTTP proxy: sluice in an engine on 127.0.0.1:0,
// net/http (or raw sockets) on both sides. Names start with hp so they do
// not collide with other tests of the package.

type hpEnv struct {
	addr string // proxy host:port
	e    *engine.Engine
	h    *HTTP
	set  *metrics.Set
	log  *hpLog
}

func hpLogger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// hpStart runs the HTTP proxy with cfg (Routes default to "/" on
// upstreams) and stops it when the test ends.
func hpStart(t testing.TB, cfg HTTPConfig, upstreams ...string) *hpEnv {
	t.Helper()
	return hpStartEngine(t, cfg, engine.Config{}, upstreams...)
}

func hpStartEngine(t testing.TB, cfg HTTPConfig, ecfg engine.Config, upstreams ...string) *hpEnv {
	t.Helper()
	return hpLaunch(t, cfg, ecfg, nil, upstreams...)
}

// hpLaunch starts the proxy on a cleartext listener "http" and, with srv,
// a TLS listener "tls" too.
func hpLaunch(t testing.TB, cfg HTTPConfig, ecfg engine.Config, srv *tlsio.Server, upstreams ...string) *hpEnv {
	t.Helper()
	if len(cfg.Routes) == 0 {
		cfg.Routes = []Route{{PathPrefix: "/", Upstreams: upstreams}}
	}
	env := &hpEnv{set: metrics.NewSet(), log: &hpLog{}}
	if cfg.AccessLog == nil {
		cfg.AccessLog = slog.New(env.log)
	}
	if cfg.Logger == nil {
		cfg.Logger = hpLogger()
	}
	h, err := NewHTTP(cfg, NewMetrics(env.set))
	if err != nil {
		t.Fatal(err)
	}
	ls := []engine.Listener{{Name: "http", Addr: "127.0.0.1:0", Accept: h.Accept}}
	if srv != nil {
		ls = append(ls, engine.Listener{Name: "tls", Addr: "127.0.0.1:0", Accept: h.Accept, TLS: srv})
	}
	e := hpEngine(t, ecfg, env.set, ls...)
	if err := h.Start(e); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close) // before the engine's Stop (cleanups run last first)
	env.addr, env.e, env.h = e.Addr("http"), e, h
	return env
}

// hpEngine runs an engine with ecfg (two loops and hpLogger unless set)
// on listeners, its metrics in set, until the test ends.
func hpEngine(t testing.TB, ecfg engine.Config, set *metrics.Set, listeners ...engine.Listener) *engine.Engine {
	t.Helper()
	if ecfg.Loops == 0 {
		ecfg.Loops = 2
	}
	if ecfg.Logger == nil {
		ecfg.Logger = hpLogger()
	}
	ecfg.Listeners, ecfg.Metrics = listeners, set
	return enginetest.Start(t, ecfg)
}

func (env *hpEnv) url(path string) string { return "http://" + env.addr + path }

// metric returns the value of one sample line of the proxy's metrics, or -1.
//
// With labels, name{a="x",b="y"} sums every series of the family that
// carries those labels (others too: requests also carry route and
// upstream).
func (env *hpEnv) metric(name string) float64 {
	var sb strings.Builder
	env.set.WritePrometheus(&sb)
	fam, labels, hasLabels := strings.Cut(strings.TrimSuffix(name, "}"), "{")
	sum, found := 0.0, false
	for _, line := range strings.Split(sb.String(), "\n") {
		series, val, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if !hasLabels {
			if series != name {
				continue
			}
		} else {
			f, have, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
			if f != fam {
				continue
			}
			all := true
			for _, l := range strings.Split(labels, ",") {
				if !slices.Contains(strings.Split(have, ","), l) {
					all = false
				}
			}
			if !all {
				continue
			}
		}
		var v float64
		if _, err := fmt.Sscan(val, &v); err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// hpBackend is a net/http upstream that counts its connections.
type hpBackend struct {
	*httptest.Server
	conns atomic.Int64 // connections accepted
}

func hpServe(t testing.TB, h http.Handler) *hpBackend {
	t.Helper()
	b := &hpBackend{}
	b.Server = httptest.NewUnstartedServer(h)
	b.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.Config.ErrorLog = nil
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func (b *hpBackend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

// hpClient is a keep-alive client with enough idle connections.
func hpClient() *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: 64,
			DisableCompression:  true,
		},
	}
}

// hpRaw dials the proxy with a raw socket.
func hpRaw(t testing.TB, addr string) (*net.TCPConn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c.(*net.TCPConn), bufio.NewReader(c)
}

// hpRawServer accepts connections and runs fn on each.
func hpRawServer(t testing.TB, fn func(c net.Conn)) string {
	t.Helper()
	return testutil.Serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		fn(c)
	})
}

// hpDeadAddr is a loopback address nothing listens on.
func hpDeadAddr(t testing.TB) string { return testutil.FreePort(t) }

// hpLog is a slog.Handler that keeps the records (the access log).
type hpLog struct {
	mu   sync.Mutex
	recs []map[string]any
}

func (l *hpLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *hpLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *hpLog) WithGroup(string) slog.Handler            { return l }
func (l *hpLog) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	l.mu.Lock()
	l.recs = append(l.recs, m)
	l.mu.Unlock()
	return nil
}

func (l *hpLog) all() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.recs...)
}

// wait returns the records once there are at least n, or fails.
func (l *hpLog) wait(t testing.TB, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if r := l.all(); len(r) >= n {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("access log: %d records, want %d: %v", len(l.all()), n, l.all())
	return nil
}

// hpEventually polls cond until it holds or 5 s pass.
func hpEventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, what, cond)
}

// hpSettled waits until no upstream has a request in flight or a busy
// connection: every attempt was accounted for.
func hpSettled(t testing.TB, env *hpEnv) {
	t.Helper()
	hpEventually(t, "upstream counters back to zero", func() bool {
		for _, u := range env.h.Upstreams() {
			if u.InFlight() != 0 || u.BusyConns.Load() != 0 {
				return false
			}
		}
		return true
	})
}
