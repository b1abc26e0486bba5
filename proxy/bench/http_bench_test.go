package bench

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/tlsio"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

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
// reach the backend in cleartext). sluice is the binary users run, on its
// defaults (only -loops to match nginx's workers, the certificate, the
// upstream, and -admin off to keep ports free), with its access log to a
// file (nginx has access_log off); "sluice-tuned" is the same with
// -access-log=off. Rounds alternate the three targets; each sub-benchmark
// reports each one's median req/s and CPU time per request (the process's
// own utime+stime from /proc), and the median and range of the per-round
// ratios sluice/nginx and sluice-tuned/nginx.
func BenchmarkHTTPProxyVsNginx(b *testing.B) {
	workers := envInt("SLUICE_BENCH_WORKERS", 1)
	const size = 1024
	backend := testutil.FreePort(b)
	startNginx(b, "backend", 1, fmt.Sprintf(`  server {
    listen %s;
    location / { default_type application/octet-stream; return 200 "%s"; }
  }`, backend, strings.Repeat("x", size)), backend)
	kp := testutil.SelfSigned(b)
	dir := b.TempDir()
	bin := testutil.SluiceBinary(b, dir)
	b.Run("cleartext", func(b *testing.B) { compare(b, bin, backend, workers, kp, false) })
	b.Run("tls", func(b *testing.B) { compare(b, bin, backend, workers, kp, true) })
}

// compare runs the alternating rounds against sluice (defaults and tuned)
// and nginx; with useTLS both client-facing listeners are TLS with kp.
func compare(b *testing.B, bin, backend string, workers int, kp *tlsio.KeyPair, useTLS bool) {
	rounds := envInt("SLUICE_BENCH_ROUNDS", 6)
	secs := envInt("SLUICE_BENCH_SECONDS", 3)
	const conns, size = 50, 1024
	scheme, listenOpt, tlsConf := "http", "", ""
	dir := b.TempDir()
	certFile, keyFile := testutil.WriteKeyPair(b, dir, kp)
	if useTLS {
		scheme, listenOpt = "https", " ssl"
		// Same offer as sluice: TLS 1.2 and 1.3 (nginx 1.22 defaults to 1.2 only).
		tlsConf = fmt.Sprintf(`
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3;`, certFile, keyFile)
	}

	// nginx as the proxy, configured to do what sluice does: keep-alive
	// to the backend, X-Forwarded-*, Host preserved.
	ngxAddr := testutil.FreePort(b)
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

	// sluice serves TLS on -listen and cleartext on -listen-plain.
	runSluice := func(name string, extra ...string) *target {
		tlsAddr, plainAddr := testutil.FreePort(b), testutil.FreePort(b)
		args := append([]string{"-listen", tlsAddr, "-listen-plain", plainAddr, "-admin", "", "-loops", strconv.Itoa(workers),
			"-cert", certFile, "-key", keyFile, "-upstream", "http://" + backend,
			"-access-log", filepath.Join(dir, name+"-access.log")}, extra...)
		addr := plainAddr
		if useTLS {
			addr = tlsAddr
		}
		p := startProc(b, name, addr, bin, args...)
		return &target{name: name, url: scheme + "://" + addr + "/1k", cpu: func() time.Duration { return cpuTime(p.Process.Pid) }}
	}
	targets := []*target{
		runSluice("sluice"),
		runSluice("sluice-tuned", "-access-log=off"),
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
	var ratios, tunedRatios, cpuRatios []float64
	for r := 0; r < rounds; r++ {
		for i := range targets {
			t := targets[(i+r)%len(targets)] // rotate who goes first
			c0 := t.cpu()
			res := runLoad(b, t.url, conns, time.Duration(secs)*time.Second)
			c1 := t.cpu()
			if res.errors > 0 {
				b.Fatalf("%s: %d errors or non-2xx responses", t.name, res.errors)
			}
			t.rps = append(t.rps, res.rps)
			t.cpr = append(t.cpr, float64((c1-c0).Microseconds())/(res.rps*float64(secs)))
		}
		s, st, n := targets[0], targets[1], targets[2]
		ratios = append(ratios, s.rps[r]/n.rps[r])
		tunedRatios = append(tunedRatios, st.rps[r]/n.rps[r])
		cpuRatios = append(cpuRatios, s.cpr[r]/n.cpr[r])
		b.Logf("round %d: sluice %.0f req/s %.1f µs CPU/req, sluice-tuned %.0f req/s %.1f µs, nginx %.0f req/s %.1f µs; ratios %.3f (tuned %.3f), CPU ratio %.3f",
			r+1, s.rps[r], s.cpr[r], st.rps[r], st.cpr[r], n.rps[r], n.cpr[r], ratios[r], tunedRatios[r], cpuRatios[r])
	}
	b.StopTimer()
	for _, t := range targets {
		b.ReportMetric(median(t.rps), t.name+"_req/s")
		b.ReportMetric(median(t.cpr), t.name+"_cpu_µs/req")
	}
	reportSpread(b, "ratio", ratios)
	reportSpread(b, "tuned_ratio", tunedRatios)
	reportSpread(b, "cpu_ratio", cpuRatios)
	b.ReportMetric(0, "ns/op") // one run of the whole comparison: ns/op means nothing
}
