package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testutil"
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
	curl := testutil.NeedTool(t, "curl")
	up := httpBackend(t)
	plain := testutil.FreePort(t)
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

	front := testutil.FreePort(t)
	startHAProxy(t, front, fmt.Sprintf(`defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind %s
  default_backend be
backend be
  server sluice %s send-proxy-v2
`, front, p.addr))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := exec.Command(curl, "-sk", "-o", "/dev/null", "https://"+front+"/warm").CombinedOutput(); err == nil || time.Now().After(deadline) {
			break
		}
	}
	localPort := testutil.FreePort(t)[len("127.0.0.1:"):]
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

// startHAProxy runs HAProxy with config (after a global section) until the
// test ends, once addr accepts connections; it skips the test when HAProxy
// is not installed (.ci/run installs it).
func startHAProxy(t *testing.T, addr, config string) {
	t.Helper()
	haproxy := testutil.NeedTool(t, "haproxy")
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	os.WriteFile(cfg, []byte("global\n  log stderr format raw local0 emerg\n"+config), 0o644)
	hp := exec.Command(haproxy, "-db", "-f", cfg)
	hp.Stderr = os.Stderr
	if err := hp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hp.Process.Kill(); hp.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy did not start: %v", err)
		}
	}
}

// tcp mode passes the client's address on with -upstream-proxy-protocol:
// curl sends a v1 header to sluice (-proxy-protocol), and HAProxy, with
// accept-proxy on its bind, reads the header sluice sends and answers
// with the source address it got from it: curl's own, for v1 and v2.
func TestUpstreamProxyProtocolTCPMode(t *testing.T) {
	curl := testutil.NeedTool(t, "curl")
	for _, v := range []string{"v1", "v2"} {
		up := testutil.FreePort(t)
		startHAProxy(t, up, fmt.Sprintf(`defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind %s accept-proxy
  http-request return status 200 content-type text/plain lf-string "src=%%[src]:%%[src_port]"
`, up))
		p := startSluice(t, "-mode", "tcp", "-upstream", "tcp://"+up, "-proxy-protocol", "-upstream-proxy-protocol", v)
		port := testutil.FreePort(t)[len("127.0.0.1:"):]
		out, err := exec.Command(curl, "-sS", "--haproxy-protocol", "--local-port", port, "http://"+p.addr+"/").CombinedOutput()
		if want := "src=127.0.0.1:" + port; err != nil || string(out) != want {
			t.Fatalf("%s: %v %q, want %q", v, err, out, want)
		}
	}
	var stdout, stderr strings.Builder
	if code := run([]string{"-upstream-proxy-protocol", "v2"}, &stdout, &stderr, nil); code != 2 ||
		!strings.Contains(stderr.String(), "-upstream-proxy-protocol") {
		t.Fatalf("http mode with -upstream-proxy-protocol: exit %d, %q", code, stderr.String())
	}
	if code := run([]string{"-mode", "tcp", "-upstream", "tcp://127.0.0.1:1", "-upstream-proxy-protocol", "v3"}, &stdout, &stderr, nil); code != 2 {
		t.Fatalf("v3: exit %d", code)
	}
}
