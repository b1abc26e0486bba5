package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/tlsio"
)

// startSluice runs sluice's HTTP proxy in-process in front of backend,
// on a TLS listener when tlsSrv is set.
func startSluice(tb testing.TB, backend string, loops int, tlsSrv *tlsio.Server) string {
	tb.Helper()
	set := metrics.NewSet()
	h, err := proxy.NewHTTP(proxy.HTTPConfig{
		Routes:   []proxy.Route{{PathPrefix: "/", Upstreams: []string{backend}}},
		PoolSize: 64,
	}, proxy.NewMetrics(set))
	if err != nil {
		tb.Fatal(err)
	}
	// As the sluice binary runs: loops locked to threads, a P per loop.
	engine.SetProcs(loops)
	e, err := engine.New(engine.Config{
		Loops:       loops,
		LockThreads: true,
		Listeners:   []engine.Listener{{Name: "bench", Addr: "127.0.0.1:0", Accept: h.Accept, TLS: tlsSrv}},
		Logger:      slog.New(slog.DiscardHandler),
		Metrics:     set,
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
// HTTP/1.1 over cleartext and over TLS (the client side; both proxies
// reach the backend in cleartext). Each sub-benchmark reports each proxy's
// median req/s and CPU time per request, sluice's allocations per request,
// and the median and range of the per-round ratio sluice/nginx.
func BenchmarkHTTPProxyVsNginx(b *testing.B) {
	workers := envInt("SLUICE_BENCH_WORKERS", 1)
	const size = 1024
	backend := freePort(b)
	startNginx(b, "backend", 1, fmt.Sprintf(`  server {
    listen %s;
    location / { default_type application/octet-stream; return 200 "%s"; }
  }`, backend, strings.Repeat("x", size)), backend)

	b.Run("cleartext", func(b *testing.B) { compare(b, backend, workers, nil) })
	b.Run("tls", func(b *testing.B) {
		kp, err := tlsio.SelfSigned(time.Now(), rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		compare(b, backend, workers, kp)
	})
}

// compare runs the alternating rounds against both proxies; kp, when set,
// puts both client-facing listeners on TLS with that key pair.
func compare(b *testing.B, backend string, workers int, kp *tlsio.KeyPair) {
	rounds := envInt("SLUICE_BENCH_ROUNDS", 6)
	secs := envInt("SLUICE_BENCH_SECONDS", 3)
	const conns, size = 50, 1024
	scheme, listenOpt, tlsConf := "http", "", ""
	var tlsSrv *tlsio.Server
	if kp != nil {
		scheme, listenOpt = "https", " ssl"
		dir := b.TempDir()
		keyPEM, err := kp.KeyPEM()
		if err != nil {
			b.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "cert.pem"), kp.CertPEM(), 0o644)
		os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600)
		// Same offer as sluice: TLS 1.2 and 1.3 (nginx 1.22 defaults to 1.2 only).
		tlsConf = fmt.Sprintf(`
    ssl_certificate %s/cert.pem;
    ssl_certificate_key %s/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;`, dir, dir)
		store, err := tlsio.NewCertStore(kp)
		if err != nil {
			b.Fatal(err)
		}
		tlsSrv, err = tlsio.NewServer(tlsio.ServerConfig{Certs: store, NextProtos: []string{"http/1.1"}})
		if err != nil {
			b.Fatal(err)
		}
	}

	// nginx as the proxy, configured to do what sluice does: keep-alive
	// to the backend, X-Forwarded-*, Host preserved.
	ngxAddr := freePort(b)
	ngx := startNginx(b, "proxy", workers, fmt.Sprintf(`  upstream backend { server %s; keepalive 64; }
  server {
    listen %s%s;%s
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
    }
  }`, backend, ngxAddr, listenOpt, tlsConf), ngxAddr)
	slAddr := startSluice(b, backend, workers, tlsSrv)

	self := os.Getpid()
	targets := []*target{
		{name: "sluice", url: scheme + "://" + slAddr + "/1k", cpu: func() time.Duration { return cpuTime(self) }},
		{name: "nginx", url: scheme + "://" + ngxAddr + "/1k", cpu: func() time.Duration {
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
	var ratios, allocs []float64
	for r := 0; r < rounds; r++ {
		order := targets
		if r%2 == 1 {
			order = []*target{targets[1], targets[0]}
		}
		var got [2]float64
		for _, t := range order {
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			c0 := t.cpu()
			res := runLoad(b, t.url, conns, time.Duration(secs)*time.Second)
			c1 := t.cpu()
			runtime.ReadMemStats(&m1)
			if res.errors > 0 {
				b.Fatalf("%s: %d errors or non-2xx responses", t.name, res.errors)
			}
			reqs := res.rps * float64(secs)
			t.rps = append(t.rps, res.rps)
			t.cpr = append(t.cpr, float64((c1-c0).Microseconds())/reqs)
			if t == targets[0] {
				got[0] = res.rps
				allocs = append(allocs, float64(m1.Mallocs-m0.Mallocs)/reqs)
			} else {
				got[1] = res.rps
			}
		}
		ratios = append(ratios, got[0]/got[1])
		b.Logf("round %d: sluice %.0f req/s, nginx %.0f req/s, ratio %.3f", r+1, got[0], got[1], got[0]/got[1])
	}
	b.StopTimer()
	b.ReportMetric(median(targets[0].rps), "sluice_req/s")
	b.ReportMetric(median(targets[1].rps), "nginx_req/s")
	reportSpread(b, "ratio", ratios)
	b.ReportMetric(median(targets[0].cpr), "sluice_cpu_µs/req")
	b.ReportMetric(median(targets[1].cpr), "nginx_cpu_µs/req")
	b.ReportMetric(median(allocs), "sluice_allocs/req")
	b.ReportMetric(0, "ns/op") // one run of the whole comparison: ns/op means nothing
}
