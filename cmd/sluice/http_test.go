package main

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// httpBackend serves /bytes?n=N with a Content-Length body of a pattern,
// and / with a short text.
func httpBackend(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bytes" {
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			w.Header().Set("Content-Length", strconv.Itoa(n))
			w.Write(patternBytes(n))
			return
		}
		fmt.Fprintf(w, "backend saw %s %s via=%q xff=%q\n", r.Method, r.URL.Path, r.Header.Get("Via"), r.Header.Get("X-Forwarded-For"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func patternBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i/977)
	}
	return b
}

// insecureClient speaks HTTP/1.1 over TLS (ALPN http/1.1 only; sluice
// would pick h2 if it were offered).
func insecureClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}},
	}}
}

// The default mode: HTTPS with a self-signed certificate, proxying to the
// upstream; curl and net/http both get the backend's answer.
func TestHTTPModeOverTLS(t *testing.T) {
	up := httpBackend(t)
	p := startSluice(t, "-upstream", "http://"+up, "-listen-plain", "127.0.0.1:0")
	resp, err := insecureClient().Get("https://" + p.addr + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `backend saw GET /hello via="1.1 sluice" xff="127.0.0.1"`) {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if resp.TLS == nil || resp.TLS.NegotiatedProtocol != "http/1.1" {
		t.Fatalf("TLS state %+v", resp.TLS)
	}
	t.Run("curl", func(t *testing.T) {
		curl := testutil.NeedTool(t, "curl")
		out, err := exec.Command(curl, "-sSk", "https://"+p.addr+"/curl").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "backend saw GET /curl") {
			t.Fatalf("curl: %v %s", err, out)
		}
	})
	if !p.stderrHas("msg=request") {
		t.Fatal("no access log line")
	}
}

// -lock-loops=false serves the same, and GOMAXPROCS is raised by one per
// loop unless the environment sets it (the start-up line says which).
func TestLockLoopsOffAndProcs(t *testing.T) {
	up := httpBackend(t)
	p := startSluice(t, "-upstream", "http://"+up, "-lock-loops=false")
	resp, err := insecureClient().Get("https://" + p.addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	log := p.stderr.String()
	if !strings.Contains(log, "lock_loops=false") {
		t.Fatalf("start-up line lacks lock_loops=false:\n%s", log)
	}
	m := regexp.MustCompile(`gomaxprocs=(\d+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("start-up line lacks gomaxprocs:\n%s", log)
	}
	n, _ := strconv.Atoi(m[1])
	if env := os.Getenv("GOMAXPROCS"); env != "" {
		if m[1] != env {
			t.Fatalf("gomaxprocs=%s with GOMAXPROCS=%s set", m[1], env)
		}
	} else if n < 3 {
		t.Fatalf("gomaxprocs=%d with 2 loops, want the CPUs plus 2", n)
	}
}

// SIGTERM during a slow HTTPS download: the response in flight completes
// (every byte, sha256), it carries no cut, and sluice exits right after.
func TestHTTPModeSIGTERMCompletesInFlightResponse(t *testing.T) {
	const total = 8 << 20
	up := httpBackend(t)
	p := startSluice(t, "-upstream", "http://"+up, "-drain-timeout", "30s")
	c, err := tls.Dial("tcp", p.addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(c, "GET /bytes?n=%d HTTP/1.1\r\nHost: x\r\n\r\n", total)
	// Read the head, then the body slowly, signalling midway.
	head := make([]byte, 0, 1024)
	one := make([]byte, 1)
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		if _, err := c.Read(one); err != nil {
			t.Fatal(err)
		}
		head = append(head, one[0])
	}
	if !strings.HasPrefix(string(head), "HTTP/1.1 200") {
		t.Fatalf("head %q", head)
	}
	signaled := false
	sum, n, err := rateRead(c, 4<<20, func(n int) {
		if !signaled && n > 1<<20 {
			signaled = true
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
	})
	if err != nil || n != total {
		t.Fatalf("read %d of %d: %v\n%s", n, total, err, p.stderr)
	}
	if sum != sha256.Sum256(patternBytes(total)) {
		t.Fatal("sha256 mismatch")
	}
	if code, _ := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	log := p.stderr.String()
	if !strings.Contains(log, "forced=false") || !strings.Contains(log, "CloseNotifySent") {
		t.Fatalf("drain not clean or no close_notify\n%s", log)
	}
}
