package proxy

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// h2specBin returns the pinned h2spec (go.mod tool), built on demand.
func h2specBin(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("H2SPEC"); bin != "" {
		return bin
	}
	out, err := exec.Command("go", "tool", "-n", "h2spec").Output()
	if err != nil {
		t.Fatalf("building the pinned h2spec (go tool -n h2spec): %v", err)
	}
	return strings.TrimSpace(string(out))
}

var h2specSummary = regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)

// TestH2SpecThroughProxy runs the whole h2spec suite against sluice's TLS
// port (ALPN h2) and its cleartext port (h2c with prior knowledge), with
// an HTTP/1.1 upstream answering every request with a small body. Every
// test must pass on both.
func TestH2SpecThroughProxy(t *testing.T) {
	bin := h2specBin(t)
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "hello from the upstream, a body long enough for window tests\n")
	}))
	env := h2Start(t, HTTPConfig{}, be.addr())
	for _, port := range []struct {
		name string
		addr string
		tls  bool
	}{{"tls", env.tlsAddr, true}, {"h2c", env.addr, false}} {
		t.Run(port.name, func(t *testing.T) {
			host, p, _ := net.SplitHostPort(port.addr)
			args := []string{"-h", host, "-p", p, "-o", "2"}
			if port.tls {
				args = append(args, "-t", "-k")
			}
			out, err := exec.Command(bin, args...).CombinedOutput()
			m := h2specSummary.FindSubmatch(out)
			if m == nil {
				t.Fatalf("h2spec: %v, no summary:\n%s", err, out)
			}
			t.Logf("h2spec %s: %s", port.name, m[0])
			if string(m[4]) != "0" || string(m[3]) != "0" || err != nil {
				t.Errorf("h2spec %s: %s (%v)\n%s", port.name, m[0], err, failures(out))
			}
		})
	}
}

// failures keeps h2spec's "Failures:" section (or everything, if absent).
func failures(out []byte) string {
	s := string(out)
	if i := strings.Index(s, "Failures:"); i >= 0 {
		return s[i:]
	}
	return s
}
