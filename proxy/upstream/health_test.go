package upstream

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h1"
	"github.com/sluice-proxy/sluice/internal/testutil/enginetest"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// startLoops runs an engine (one loop; a listener nobody dials) for
// checkers to run on, stopped when the test ends.
func startLoops(t *testing.T) *engine.Loop {
	t.Helper()
	e := enginetest.Start(t, engine.Config{Loops: 1, Listeners: []engine.Listener{{
		Name: "unused", Addr: "127.0.0.1:0",
		Accept: func(*engine.Conn) engine.Handler { return engine.BaseHandler{} },
	}}})
	return e.Loops()[0]
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, what, cond)
}

// One checker, both protocols: an HTTP/1.1 upstream (net/http) and an h2c
// one (x/net/http2, prior knowledge) are marked down after Fails failing
// probes and up after Passes passing ones; each probe is a GET of the
// health path in the upstream's protocol; after Stop no probe starts.
func TestCheckerBothProtocols(t *testing.T) {
	for _, tc := range []struct {
		name  string
		h2    bool
		proto int
	}{{"http1", false, 1}, {"h2c", true, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			var status atomic.Int32
			status.Store(500)
			var probes, wrong atomic.Int32
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				probes.Add(1)
				if r.ProtoMajor != tc.proto || r.Method != "GET" || r.URL.Path != "/healthz" || r.UserAgent() != "sluice-health-check" {
					wrong.Add(1)
				}
				w.WriteHeader(int(status.Load()))
				w.Write([]byte(strings.Repeat("x", 100000))) // a body the probe must not need
			})
			var srv *httptest.Server
			if tc.h2 {
				srv = httptest.NewServer(h2c.NewHandler(h, &http2.Server{}))
			} else {
				srv = httptest.NewServer(h)
			}
			defer srv.Close()
			addr := strings.TrimPrefix(srv.URL, "http://")

			u := withMetrics(New(addr, addr, 0, tc.h2, nil))
			cfg := CheckConfig{Interval: 20 * time.Millisecond, Timeout: 5 * time.Second, Passes: 1, Fails: 2}
			if tc.h2 {
				cfg.H2Request = []hpack.HeaderField{
					{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
					{Name: ":authority", Value: addr}, {Name: ":path", Value: "/healthz"},
					{Name: "user-agent", Value: "sluice-health-check"},
				}
			} else {
				b := h1.AppendRequestLine(nil, "GET", "/healthz", 1)
				b = h1.AppendHeader(b, "Host", addr)
				b = h1.AppendHeader(b, "User-Agent", "sluice-health-check")
				cfg.Request = h1.AppendEndOfHead(b)
			}
			l := startLoops(t)
			k := NewChecker(u, l, 0, cfg)
			if err := l.Post(k.Start); err != nil {
				t.Fatal(err)
			}

			waitFor(t, "the upstream marked down", func() bool { return !u.Available() })
			if n := u.M.ChecksFail.Get(); n < 2 {
				t.Fatalf("down after %d failed checks, want %d", n, cfg.Fails)
			}
			status.Store(204)
			waitFor(t, "the upstream marked up", func() bool { return u.Available() })
			if u.M.ChecksOK.Get() < 1 {
				t.Fatal("up with no passed check counted")
			}
			if n := wrong.Load(); n != 0 {
				t.Fatalf("%d probes were not GET /healthz over HTTP/%d from sluice-health-check", n, tc.proto)
			}

			stopped := make(chan int32)
			l.Post(func() { k.Stop(); stopped <- probes.Load() })
			at := <-stopped
			time.Sleep(10 * cfg.Interval)
			if n := probes.Load(); n > at+1 { // one may have been in flight
				t.Fatalf("%d probes after Stop", n-at)
			}
		})
	}
}
