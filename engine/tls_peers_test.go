package engine

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/internal/testutil"
)

// httpOnce answers one HTTP/1.1 request with a fixed body, then closes
// gracefully (the engine sends close_notify). Enough HTTP for real TLS
// clients; the proxy's real HTTP path lives in package proxy.
type httpOnce struct {
	BaseHandler
	cl   *closes
	body string
	buf  []byte
}

func (h *httpOnce) OnOpen(c *Conn) { c.Advance(diag.DataTransfer) }
func (h *httpOnce) OnData(c *Conn, b []byte) int {
	h.buf = append(h.buf, b...)
	if bytes.Contains(h.buf, []byte("\r\n\r\n")) {
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: " +
			itoa(len(h.body)) + "\r\n\r\n" + h.body))
		c.Close(diag.Clean)
	}
	return len(b)
}
func (h *httpOnce) OnClosed(c *Conn, t *diag.Trace) { h.cl.add(t) }

func (f *tlsFixture) certFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(p, f.srv.Certs().Pairs()[0].CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runTool(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s did not finish\n%s", name, out.String())
	}
	return out.String()
}

func TestCurlOverTLS(t *testing.T) {
	curl := testutil.NeedTool(t, "curl")
	f := newTLSFixture(t)
	cl := newCloses()
	_, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler { return &httpOnce{cl: cl, body: "hello curl\n"} })
	_, port, _ := strings.Cut(addr, ":")
	out := runTool(t, "", curl, "-sS", "-v", "--http1.1", "--cacert", f.certFile(t),
		"--resolve", "localhost:"+port+":127.0.0.1", "https://localhost:"+port+"/")
	if !strings.Contains(out, "hello curl") {
		t.Fatalf("curl output:\n%s", out)
	}
	if tr := cl.next(t, 5*time.Second); tr.Entered[diag.CloseNotifySent] == 0 {
		t.Fatalf("no close_notify sent: %q", tr.CloseSequence())
	}
}

// openssl s_client -msg shows the server's close_notify when sluice closes.
func TestOpenSSLSeesCloseNotify(t *testing.T) {
	openssl := testutil.NeedTool(t, "openssl")
	for _, v := range []string{"-tls1_2", "-tls1_3"} {
		f := newTLSFixture(t)
		cl := newCloses()
		_, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler { return &httpOnce{cl: cl, body: "hello openssl\n"} })
		out := runTool(t, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", openssl, "s_client", v, "-msg", "-ign_eof",
			"-connect", addr, "-servername", "localhost", "-CAfile", f.certFile(t), "-verify_return_error")
		if !strings.Contains(out, "hello openssl") {
			t.Fatalf("%s: no response:\n%s", v, out)
		}
		// s_client prints received messages with "<<<".
		if !strings.Contains(out, "<<< TLS 1.") || !strings.Contains(out, "close_notify") {
			t.Fatalf("%s: server close_notify not shown:\n%s", v, out)
		}
		var seen bool
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "<<<") && strings.Contains(line, "Alert") && strings.Contains(line, "close_notify") {
				seen = true
			}
		}
		if !seen {
			t.Fatalf("%s: no received close_notify alert line:\n%s", v, out)
		}
		if tr := cl.next(t, 5*time.Second); tr.Entered[diag.CloseNotifySent] == 0 {
			t.Fatalf("%s: trace %q", v, tr.CloseSequence())
		}
	}
}

func TestGnuTLSClient(t *testing.T) {
	gnutls := testutil.NeedTool(t, "gnutls-cli")
	f := newTLSFixture(t)
	cl := newCloses()
	_, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler { return &httpOnce{cl: cl, body: "hello gnutls\n"} })
	host, port, _ := strings.Cut(addr, ":")
	_ = host
	out := runTool(t, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", gnutls, "--x509cafile", f.certFile(t),
		"--port", port, "--sni-hostname", "localhost", "--verify-hostname", "localhost", "127.0.0.1")
	if !strings.Contains(out, "hello gnutls") {
		t.Fatalf("gnutls-cli output:\n%s", out)
	}
	if tr := cl.next(t, 5*time.Second); tr.Entered[diag.CloseNotifySent] == 0 {
		t.Fatalf("trace %q", tr.CloseSequence())
	}
}
