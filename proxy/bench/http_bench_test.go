package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/proxy"
)

// startSluice runs sluice's HTTP proxy in-process in front of backend.
func startSluice(tb testing.TB, backend string, loops int) string {
	tb.Helper()
	set := metrics.NewSet()
	h, err := proxy.NewHTTP(proxy.HTTPConfig{
		Routes:   []proxy.Route{{PathPrefix: "/", Upstreams: []string{backend}}},
		PoolSize: 64,
	}, proxy.NewMetrics(set))
	if err != nil {
		tb.Fatal(err)
	}
	e, err := engine.New(engine.Config{
		Loops:     loops,
		Listeners: []engine.Listener{{Name: "bench", Addr: "127.0.0.1:0", Accept: h.Accept}},
		Logger:    slog.New(slog.DiscardHandler),
		Metrics:   set,
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		h.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	return e.Addr("bench")
}

type target struct {
	name string
	url  string
	cpu  func() time.Duration // CPU time of the proxy process(es) so far

	rps []float64
	cpr []float64 // CPU µs per request, per run
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkHTTPProxyVsNginx: 1 KiB responses from an nginx backend through
// sluice and through nginx as a reverse proxy, 50 keep-alive connections,
// cleartext HTTP/1.1. Reports each proxy's median req/s and CPU time per
// request, and the median and range of the per-round ratio sluice/nginx.
func BenchmarkHTTPProxyVsNginx(b *testing.B) {
	workers := envInt("SLUICE_BENCH_WORKERS", 1)
	rounds := envInt("SLUICE_BENCH_ROUNDS", 5)
	secs := envInt("SLUICE_BENCH_SECONDS", 3)
	const conns, size = 50, 1024

	backend := freePort(b)
	startNginx(b, "backend", 1, fmt.Sprintf(`  server {
    listen %s;
    location / { default_type application/octet-stream; return 200 "%s"; }
  }`, backend, strings.Repeat("x", size)), backend)

	// nginx as the proxy, configured to do what sluice does: keep-alive
	// to the backend, X-Forwarded-*, Host preserved.
	ngxAddr := freePort(b)
	ngx := startNginx(b, "proxy", workers, fmt.Sprintf(`  upstream backend { server %s; keepalive 64; }
  server {
    listen %s;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
    }
  }`, backend, ngxAddr), ngxAddr)
	slAddr := startSluice(b, backend, workers)

	self := os.Getpid()
	targets := []*target{
		{name: "sluice", url: "http://" + slAddr + "/1k", cpu: func() time.Duration { return cpuTime(self) }},
		{name: "nginx", url: "http://" + ngxAddr + "/1k", cpu: func() time.Duration {
			var d time.Duration
			for _, pid := range ngx.workerPIDs() {
				d += cpuTime(pid)
			}
			return d
		}},
	}
	for _, t := range targets {
		if err := check(t.url, size); err != nil {
			b.Fatalf("%s: %v", t.name, err)
		}
		runLoad(b, t.url, conns, time.Second) // warm up: connections, pools, caches
	}
	b.ResetTimer()
	var ratios []float64
	for r := 0; r < rounds; r++ {
		order := targets
		if r%2 == 1 {
			order = []*target{targets[1], targets[0]}
		}
		var got [2]float64
		for _, t := range order {
			c0 := t.cpu()
			res := runLoad(b, t.url, conns, time.Duration(secs)*time.Second)
			c1 := t.cpu()
			if res.errors > 0 {
				b.Fatalf("%s: %d errors or non-2xx responses", t.name, res.errors)
			}
			t.rps = append(t.rps, res.rps)
			t.cpr = append(t.cpr, float64((c1-c0).Microseconds())/(res.rps*float64(secs)))
			if t == targets[0] {
				got[0] = res.rps
			} else {
				got[1] = res.rps
			}
		}
		ratios = append(ratios, got[0]/got[1])
		b.Logf("round %d: sluice %.0f req/s, nginx %.0f req/s, ratio %.3f", r+1, got[0], got[1], got[0]/got[1])
	}
	b.StopTimer()
	sort.Float64s(ratios)
	b.ReportMetric(median(targets[0].rps), "sluice_req/s")
	b.ReportMetric(median(targets[1].rps), "nginx_req/s")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(ratios[0], "ratio_min")
	b.ReportMetric(ratios[len(ratios)-1], "ratio_max")
	b.ReportMetric(median(targets[0].cpr), "sluice_cpu_µs/req")
	b.ReportMetric(median(targets[1].cpr), "nginx_cpu_µs/req")
	b.ReportMetric(0, "ns/op") // one run of the whole comparison: ns/op means nothing
}
