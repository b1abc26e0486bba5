package proxy

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// Interop with real HTTP/2 clients: curl (nghttp2 inside), nghttp and
// h2load, over TLS (ALPN h2) and over cleartext with prior knowledge.
// Each skips, saying why, when its tool is not installed (Debian:
// apt-get install curl nghttp2-client).

// interopBackend answers GET with a fixed body and POST with the
// request body's length and sha256.
func interopBackend(t *testing.T) *hpBackend {
	return hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("x", 1024))
	}))
}

func TestH2InteropCurl(t *testing.T) {
	curl := testutil.NeedTool(t, "curl")
	env := h2Start(t, HTTPConfig{}, interopBackend(t).addr())
	blob := make([]byte, 1<<20)
	rand.Read(blob)
	file := filepath.Join(t.TempDir(), "blob")
	os.WriteFile(file, blob, 0o644)
	want := fmt.Sprintf("%d %x", len(blob), sha256.Sum256(blob))
	for _, c := range []struct {
		name string
		args []string
		url  string
	}{
		{"tls", []string{"--http2", "-k"}, env.tlsURL("/")},
		{"prior-knowledge", []string{"--http2-prior-knowledge"}, env.h2cURL("/")},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := exec.Command(curl, append(c.args, "-sS", "-w", "\n%{http_version} %{http_code}", c.url)...).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			if !bytes.HasSuffix(out, []byte("\n2 200")) || !bytes.HasPrefix(out, bytes.Repeat([]byte("x"), 1024)) {
				t.Fatalf("curl GET: %q", out)
			}
			out, err = exec.Command(curl, append(c.args, "-sS", "--data-binary", "@"+file, c.url)...).CombinedOutput()
			if err != nil || string(out) != want {
				t.Fatalf("curl POST: %v %q, want %q", err, out, want)
			}
		})
	}
}

func TestH2InteropNghttp(t *testing.T) {
	nghttp := testutil.NeedTool(t, "nghttp")
	env := h2Start(t, HTTPConfig{}, interopBackend(t).addr())
	file := filepath.Join(t.TempDir(), "blob")
	blob := make([]byte, 256<<10)
	rand.Read(blob)
	os.WriteFile(file, blob, 0o644)
	for _, c := range []struct{ name, base string }{{"tls", env.tlsURL("")}, {"h2c", env.h2cURL("")}} {
		t.Run(c.name, func(t *testing.T) {
			// Three concurrent GETs on one connection, then a POST.
			out, err := exec.Command(nghttp, "-nv", c.base+"/a", c.base+"/b", c.base+"/c").CombinedOutput()
			if err != nil {
				t.Fatalf("nghttp: %v\n%s", err, out)
			}
			if n := strings.Count(string(out), ":status: 200"); n != 3 {
				t.Fatalf("nghttp: %d responses with :status 200, want 3\n%s", n, out)
			}
			if strings.Contains(string(out), "RST_STREAM") || strings.Contains(string(out), "error_code=") && !strings.Contains(string(out), "error_code=NO_ERROR") {
				t.Fatalf("nghttp saw an error:\n%s", out)
			}
			out, err = exec.Command(nghttp, "-d", file, c.base+"/up").Output() // stderr: the self-signed certificate warning
			want := fmt.Sprintf("%d %x", len(blob), sha256.Sum256(blob))
			if err != nil || string(out) != want {
				t.Fatalf("nghttp POST: %v %q, want %q", err, out, want)
			}
		})
	}
}

var h2loadDone = regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)

// A short h2load run (2,000 requests, 10 connections, 10 streams each)
// over TLS and h2c: every request succeeds.
func TestH2InteropH2load(t *testing.T) {
	h2load := testutil.NeedTool(t, "h2load")
	env := h2Start(t, HTTPConfig{}, interopBackend(t).addr())
	for _, c := range []struct{ name, url string }{{"tls", env.tlsURL("/")}, {"h2c", env.h2cURL("/")}} {
		t.Run(c.name, func(t *testing.T) {
			out, err := exec.Command(h2load, "-n", "2000", "-c", "10", "-m", "10", c.url).CombinedOutput()
			if err != nil {
				t.Fatalf("h2load: %v\n%s", err, out)
			}
			m := h2loadDone.FindStringSubmatch(string(out))
			if m == nil {
				t.Fatalf("h2load output:\n%s", out)
			}
			if m[4] != "2000" || m[5] != "0" || m[6] != "0" || m[7] != "0" {
				t.Fatalf("h2load: %s\n%s", m[0], out)
			}
			if !strings.Contains(string(out), "2000 2xx") {
				t.Fatalf("h2load status codes:\n%s", out)
			}
			t.Logf("h2load %s: %s", c.name, m[0])
		})
	}
	hpSettled(t, env.hpEnv)
}
