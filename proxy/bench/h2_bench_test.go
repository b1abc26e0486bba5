package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// BenchmarkH2ProxyVsHAProxy: HTTP/2 over TLS (ALPN h2) from h2load
// (-c 50 -m 10 -n 20000) to an nginx backend serving 1 KiB, through the
// sluice binary and through HAProxy 2.6 configured to do the same job
// (TLS with ALPN h2, HTTP/1.1 keep-alive to the backend, X-Forwarded-For,
// -Proto and -Host), alternating round by round in one run. It reports
// the median and range of the req/s ratio sluice/HAProxy and the same
// for CPU time per request (utime+stime of the proxy process from
// /proc/PID/stat, before and after each run; sluice runs as its own
// binary so its CPU is its own).
//
// h2load resumes TLS sessions by default; each run opens its 50
// connections once and keeps them, so resumption changes nothing here
// (the figures are request handling and record encryption, not
// handshakes). Both proxies run one thread (sluice -loops 1, HAProxy
// nbthread 1); HAProxy's maxconn is set to 4096, under the fd limit.
// sluice runs with its defaults otherwise (the loop locked to its thread,
// GOMAXPROCS the CPUs plus one, the idle pool following demand, the
// access log on, to a file), beside "sluice-tuned" (-access-log=off).
//
// Knobs: SLUICE_BENCH_ROUNDS (default 6, even), SLUICE_BENCH_H2_REQUESTS
// (default 20000), SLUICE_BENCH_WORKERS (threads of each proxy, default 1).
// Skips when h2load, nginx or haproxy is missing (Debian: apt-get install
// nghttp2-client nginx haproxy).
func BenchmarkH2ProxyVsHAProxy(b *testing.B) { benchH2VsHAProxy(b, false) }

// BenchmarkH2ProxyTLSUpstreamVsHAProxy is the same with TLS to the
// backend too: nginx serves HTTP/1.1 over TLS, sluice reaches it as an
// https:// upstream (-upstream-ca), HAProxy with "ssl verify required
// ca-file". Both verify the chain, keep their upstream connections and
// resume sessions when they open new ones.
func BenchmarkH2ProxyTLSUpstreamVsHAProxy(b *testing.B) { benchH2VsHAProxy(b, true) }

func benchH2VsHAProxy(b *testing.B, upTLS bool) {
	h2load := testutil.NeedTool(b, "h2load")
	haproxy := testutil.NeedTool(b, "haproxy")
	workers := envInt("SLUICE_BENCH_WORKERS", 1)
	rounds := envInt("SLUICE_BENCH_ROUNDS", 6)
	requests := envInt("SLUICE_BENCH_H2_REQUESTS", 20000)
	const size = 1024

	dir := b.TempDir()
	kp := testutil.SelfSigned(b)
	certFile, keyFile := testutil.WriteKeyPair(b, dir, kp)
	keyPEM, _ := kp.KeyPEM()
	both := filepath.Join(dir, "both.pem") // HAProxy's crt: certificate and key in one file
	os.WriteFile(both, append(append([]byte(nil), kp.CertPEM()...), keyPEM...), 0o600)

	backend := testutil.FreePort(b)
	listen, upURL, hpServer := backend, "http://"+backend, backend
	if upTLS {
		listen = fmt.Sprintf("%s ssl;\n    ssl_certificate %s;\n    ssl_certificate_key %s", backend, certFile, keyFile)
		upURL = "https://" + backend
		hpServer = fmt.Sprintf("%s ssl verify required ca-file %s", backend, certFile)
	}
	startNginx(b, "backend", 1, fmt.Sprintf(`  server {
    listen %s;
    location / { default_type application/octet-stream; return 200 "%s"; }
  }`, listen, strings.Repeat("x", size)), backend)

	// sluice on its defaults: only -loops (one thread, as HAProxy), the
	// certificate, the upstream and its CA, -admin off (free ports), and
	// its access log to a file (HAProxy here logs nothing). The idle pool
	// follows demand by default (1024 per upstream per loop), as HAProxy
	// keeps every idle server connection. "sluice-tuned" is the same with
	// -access-log=off.
	bin := testutil.SluiceBinary(b, dir)
	runSluice := func(name string, extra ...string) *h2target {
		addr := testutil.FreePort(b)
		args := append([]string{"-listen", addr, "-admin", "", "-loops", strconv.Itoa(workers),
			"-upstream", upURL, "-upstream-ca", certFile, "-cert", certFile, "-key", keyFile,
			"-access-log", filepath.Join(dir, name+"-access.log")}, extra...)
		p := startProc(b, name, addr, bin, args...)
		return &h2target{name: name, url: "https://" + addr + "/1k", pid: p.Process.Pid}
	}

	hpAddr := testutil.FreePort(b)
	cfg := filepath.Join(dir, "haproxy.cfg")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`global
  maxconn 4096
  nbthread %d
  log stderr format raw local0 emerg
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend fe
  bind %s ssl crt %s alpn h2,http/1.1
  option forwardfor
  http-request set-header X-Forwarded-Proto https
  http-request set-header X-Forwarded-Host %%[req.hdr(host)]
  default_backend be
backend be
  server s1 %s
`, workers, hpAddr, both, hpServer)), 0o644)
	hp := startProc(b, "haproxy", hpAddr, haproxy, "-db", "-f", cfg)

	targets := []*h2target{
		runSluice("sluice"),
		runSluice("sluice-tuned", "-access-log=off"),
		{name: "haproxy", url: "https://" + hpAddr + "/1k", pid: hp.Process.Pid},
	}
	for _, t := range targets {
		if _, err := runH2load(h2load, t.url, 2000); err != nil { // warm up, and check it works
			b.Fatalf("%s: %v", t.name, err)
		}
	}
	b.ResetTimer()
	var rpsRatio, cpuRatio, tunedRps, tunedCPU []float64
	for r := 0; r < rounds; r++ {
		for i := range targets {
			t := targets[(i+r)%len(targets)] // rotate who goes first
			c0 := cpuTime(t.pid)
			rps, err := runH2load(h2load, t.url, requests)
			c1 := cpuTime(t.pid)
			if err != nil {
				b.Fatalf("%s: %v", t.name, err)
			}
			t.rps = append(t.rps, rps)
			t.cpr = append(t.cpr, float64((c1-c0).Microseconds())/float64(requests))
		}
		s, st, h := targets[0], targets[1], targets[2]
		rpsRatio = append(rpsRatio, s.rps[r]/h.rps[r])
		cpuRatio = append(cpuRatio, s.cpr[r]/h.cpr[r])
		tunedRps = append(tunedRps, st.rps[r]/h.rps[r])
		tunedCPU = append(tunedCPU, st.cpr[r]/h.cpr[r])
		b.Logf("round %d: sluice %.0f req/s %.1f µs CPU/req, sluice-tuned %.0f req/s %.1f µs, haproxy %.0f req/s %.1f µs; req/s ratio %.3f (tuned %.3f), CPU ratio %.3f (tuned %.3f)",
			r+1, s.rps[r], s.cpr[r], st.rps[r], st.cpr[r], h.rps[r], h.cpr[r], rpsRatio[r], tunedRps[r], cpuRatio[r], tunedCPU[r])
	}
	b.StopTimer()
	for _, t := range targets {
		b.ReportMetric(median(t.rps), t.name+"_req/s")
		b.ReportMetric(median(t.cpr), t.name+"_cpu_µs/req")
	}
	reportSpread(b, "rps_ratio", rpsRatio)
	reportSpread(b, "cpu_ratio", cpuRatio)
	reportSpread(b, "tuned_rps_ratio", tunedRps)
	reportSpread(b, "tuned_cpu_ratio", tunedCPU)
	b.ReportMetric(0, "ns/op")
}

type h2target struct {
	name string
	url  string
	pid  int
	rps  []float64
	cpr  []float64 // CPU µs per request, per run
}

var (
	h2loadRPS  = regexp.MustCompile(`finished in [^,]+, ([0-9.]+) req/s`)
	h2loadReqs = regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
)

// runH2load runs h2load -c 50 -m 10 -n n against url and returns req/s;
// any failed, errored or non-2xx request is an error.
func runH2load(h2load, url string, n int) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, h2load, "-c", "50", "-m", "10", "-n", strconv.Itoa(n), url).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("h2load: %v\n%s", err, out)
	}
	m := h2loadReqs.FindSubmatch(out)
	r := h2loadRPS.FindSubmatch(out)
	if m == nil || r == nil {
		return 0, fmt.Errorf("h2load output:\n%s", out)
	}
	if string(m[4]) != strconv.Itoa(n) || !bytes.Contains(out, []byte(strconv.Itoa(n)+" 2xx")) {
		return 0, fmt.Errorf("h2load: %s\n%s", m[0], out)
	}
	return strconv.ParseFloat(string(r[1]), 64)
}

// startProc runs a proxy in its own process group until the benchmark
// ends, and waits for addr to accept.
func startProc(tb testing.TB, name, addr, bin string, args ...string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not start: %v\n%s", name, err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
