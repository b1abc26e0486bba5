package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// adminMetric reads one sample from the admin listener's /metrics.
func adminMetric(t *testing.T, p *proc, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// -proxy-protocol with real senders: curl --haproxy-protocol (v1) on the
// cleartext listener, and HAProxy 2.6 in TCP mode with send-proxy-v2 in
// front of the TLS listener. The client address sluice logs for the
// connection is the one the header names: curl's own source port through
// HAProxy, not HAProxy's. A connection without a header is closed.
func TestProxyProtocolFlag(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	up := httpBackend(t)
	plain := freePort(t)
	p := startSluice(t, "-upstream", "http://"+up, "-listen-plain", plain, "-proxy-protocol")

	out, err := exec.Command(curl, "-sS", "--haproxy-protocol", "http://"+plain+"/v1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "backend saw GET /v1") {
		t.Fatalf("curl --haproxy-protocol: %v %s", err, out)
	}
	if v := adminMetric(t, p, `sluice_proxy_protocol_headers_total{result="v1"}`); v != "1" {
		t.Fatalf("v1 headers: %q", v)
	}
	// Without a header: closed, nothing served.
	if out, err := exec.Command(curl, "-sS", "http://"+plain+"/none").CombinedOutput(); err == nil {
		t.Fatalf("a request without a PROXY header was served: %s", out)
	}
	if v := adminMetric(t, p, `sluice_proxy_protocol_headers_total{result="missing"}`); v != "1" {
		t.Fatalf("missing headers: %q", v)
	}

	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/haproxy"); e != nil {
			t.Skip("haproxy is not installed (Debian: apt-get install haproxy); .ci/run installs it")
		}
		haproxy = "/usr/sbin/haproxy"
	}
	front := freePort(t)
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`global
  log stderr format raw local0 emerg
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind %s
  default_backend be
backend be
  server sluice %s send-proxy-v2
`, front, p.addr)), 0o644)
	hp := exec.Command(haproxy, "-db", "-f", cfg)
	hp.Stderr = os.Stderr
	if err := hp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hp.Process.Kill(); hp.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := exec.Command(curl, "-sk", "-o", "/dev/null", "https://"+front+"/warm").CombinedOutput(); err == nil || time.Now().After(deadline) {
			_ = c
			break
		}
	}
	localPort := freePort(t)[len("127.0.0.1:"):]
	out, err = exec.Command(curl, "-sSk", "--local-port", localPort, "https://"+front+"/v2").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "backend saw GET /v2") {
		t.Fatalf("curl through HAProxy: %v %s", err, out)
	}
	if v := adminMetric(t, p, `sluice_proxy_protocol_headers_total{result="v2"}`); v < "1" {
		t.Fatalf("v2 headers: %q", v)
	}
	want := "remote=127.0.0.1:" + localPort
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.stderr.String(), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line with the client's own address %s (from the v2 header):\n%s", want, p.stderr)
		}
	}
}
