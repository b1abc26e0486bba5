package engine

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/tlsio"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// TestTLSEnginePaths: on a native listener a TLS 1.3 client is served by
// the native engine with its signature on the sign pool, a TLS 1.2 client
// by the crypto/tls fallback, and the handshakes and failures are counted
// by path.
func TestTLSEnginePaths(t *testing.T) {
	f := newTLSFixture(t)
	f.set = metrics.NewSet()
	srv, err := tlsio.NewServer(tlsio.ServerConfig{Certs: f.srv.Certs(), CountError: TLSErrorCounter(f.set), Engine: tlsio.EngineNative})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	cl := newCloses()
	info := make(chan tlsio.Info, 2)
	e, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler {
		return &alpnEcho{echo: echo{cl: cl}, info: info}
	})
	for _, tc := range []struct {
		v    uint16
		path string
	}{{tls.VersionTLS13, tlsio.EngineNative}, {tls.VersionTLS12, tlsio.EngineStdlib}} {
		c := f.dial(t, addr, &tls.Config{MinVersion: tc.v, MaxVersion: tc.v})
		msg := strings.Repeat("x", 40000)
		go c.Write([]byte(msg))
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("%s: echo %v", tc.path, err)
		}
		if in := <-info; in.Engine != tc.path || in.Version != tc.v {
			t.Fatalf("info %+v, want engine %s", in, tc.path)
		}
		c.Close()
		cl.next(t, 5*time.Second)
	}
	// No application protocol in common: the native handshake fails
	// before any signature.
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(nc, &tls.Config{RootCAs: f.pool, ServerName: "localhost", NextProtos: []string{"h3"}})
	if err := tc.Handshake(); err == nil || !strings.Contains(err.Error(), "no application protocol") {
		t.Fatalf("handshake: %v", err)
	}
	tc.Close()
	cl.next(t, 5*time.Second)
	for name, want := range map[string]uint64{
		`sluice_tls_engine_handshakes_total{path="native",result="ok"}`:          1,
		`sluice_tls_engine_handshakes_total{path="stdlib",result="ok"}`:          1,
		`sluice_tls_engine_handshakes_total{path="native",result="error"}`:       1,
		`sluice_tls_engine_errors_total{path="native",reason="handshake_error"}`: 1,
		`sluice_tls_handshakes_total{result="ok"}`:                               2,
		`sluice_tls_engine_handshakes_total{path="stdlib",result="error"}`:       0,
		`sluice_tls_engine_errors_total{path="stdlib",reason="handshake_error"}`: 0,
		`sluice_tls_engine_handshakes_total{path="native",result="timeout"}`:     0,
		`sluice_tls_engine_errors_total{path="native",reason="peer_alert"}`:      0,
		`sluice_tls_errors_total{reason="handshake_error"}`:                      1,
		`sluice_tls_engine_errors_total{path="native",reason="handshake_eof"}`:   0,
		`sluice_tls_engine_handshakes_total{path="stdlib",result="timeout"}`:     0,
		`sluice_tls_engine_errors_total{path="stdlib",reason="peer_alert"}`:      0,
		`sluice_tls_engine_errors_total{path="native",reason="not_tls"}`:         0,
		`sluice_tls_engine_errors_total{path="stdlib",reason="not_tls"}`:         0,
		`sluice_tls_engine_errors_total{path="native",reason="truncated"}`:       0,
		`sluice_tls_engine_errors_total{path="native",reason="bad_record"}`:      0,
		`sluice_tls_engine_errors_total{path="stdlib",reason="bad_record"}`:      0,
		`sluice_tls_engine_errors_total{path="stdlib",reason="truncated"}`:       0,
		`sluice_tls_engine_errors_total{path="stdlib",reason="handshake_eof"}`:   0,
	} {
		if got := f.set.GetOrCreateCounter(name).Get(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	// One signature (the TLS 1.3 full handshake), run by the pool.
	if e.sign == nil || e.sign.ran.Load() != 1 {
		t.Fatalf("sign pool ran %d jobs, want 1", e.sign.ran.Load())
	}
}

// nativeFixture is a TLS fixture whose server runs the native engine.
func nativeFixture(t *testing.T, cfg tlsio.ServerConfig) *tlsFixture {
	t.Helper()
	f := newTLSFixture(t)
	f.set = metrics.NewSet()
	cfg.Certs, cfg.Engine = f.srv.Certs(), tlsio.EngineNative
	srv, err := tlsio.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	return f
}

// echoUntil echoes what it reads and closes cleanly after "bye".
type echoUntil struct {
	BaseHandler
	cl  *closes
	got []byte
}

func (h *echoUntil) OnOpen(c *Conn) { c.Advance(diag.DataTransfer) }
func (h *echoUntil) OnData(c *Conn, b []byte) int {
	h.got = append(h.got, b...)
	c.Write(b)
	if bytes.Contains(h.got, []byte("bye")) {
		c.Close(diag.Clean)
	}
	return len(b)
}
func (h *echoUntil) OnClosed(c *Conn, t *diag.Trace) { h.cl.add(t) }

// TestOpenSSLKeyUpdateNative: openssl s_client's "k" (KeyUpdate) and "K"
// (KeyUpdate, update_requested) commands against the native engine: data
// keeps flowing both ways across the new keys, and "K" gets the server's
// own KeyUpdate back.
func TestOpenSSLKeyUpdateNative(t *testing.T) {
	openssl := testutil.NeedTool(t, "openssl")
	f := nativeFixture(t, tlsio.ServerConfig{})
	cl := newCloses()
	_, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler { return &echoUntil{cl: cl} })
	// s_client runs its command letters only without -ign_eof, so stdin
	// stays open until the server has echoed the last line; each line is
	// written once the previous one came back.
	cmd := exec.Command(openssl, "s_client", "-tls1_3", "-msg", "-connect", addr, "-servername", "localhost",
		"-CAfile", f.certFile(t), "-verify_return_error")
	var buf testutil.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitOut := func(want string, n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(buf.String(), want) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no %q (x%d) in s_client output:\n%s", want, n, buf.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitOut("Verify return code", 1)
	for _, line := range []string{"first", "k", "second", "K", "third bye"} {
		io.WriteString(stdin, line+"\n")
		switch line {
		case "k", "K":
			waitOut("KEYUPDATE", map[string]int{"k": 1, "K": 2}[line])
		default:
			waitOut(line+"\n", 1)
		}
	}
	waitOut("closed", 1)
	stdin.Close()
	cmd.Wait()
	out := buf.String()
	for _, want := range []string{"first", "second", "third bye", "KEYUPDATE"} {
		if !strings.Contains(out, want) {
			t.Fatalf("no %q in s_client output:\n%s", want, out)
		}
	}
	var sent, got int
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "KeyUpdate") {
			switch {
			case strings.HasPrefix(line, ">>>"):
				sent++
			case strings.HasPrefix(line, "<<<"):
				got++
			}
		}
	}
	if sent != 2 || got != 1 {
		t.Fatalf("KeyUpdates sent %d (want 2), received %d (want 1):\n%s", sent, got, out)
	}
	if tr := cl.next(t, 5*time.Second); tr.Outcome != diag.Clean || tr.Entered[diag.CloseNotifySent] == 0 {
		t.Fatalf("trace %v %q", tr.Outcome, tr.CloseSequence())
	}
	if got := f.set.GetOrCreateCounter(`sluice_tls_engine_handshakes_total{path="native",result="ok"}`).Get(); got != 1 {
		t.Fatalf("native handshakes %d", got)
	}
}

// TestPeersNative: curl, gnutls-cli and openssl s_client (resuming with
// -sess_out/-sess_in) complete handshakes with the native engine.
func TestPeersNative(t *testing.T) {
	f := nativeFixture(t, tlsio.ServerConfig{})
	cl := newCloses()
	_, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler { return &httpOnce{cl: cl, body: "hello native\n"} })
	_, port, _ := strings.Cut(addr, ":")
	req := "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
	t.Run("curl", func(t *testing.T) {
		curl := testutil.NeedTool(t, "curl")
		out := runTool(t, "", curl, "-sS", "-v", "--http1.1", "--tlsv1.3", "--cacert", f.certFile(t),
			"--resolve", "localhost:"+port+":127.0.0.1", "https://localhost:"+port+"/")
		if !strings.Contains(out, "hello native") || !strings.Contains(out, "TLSv1.3") {
			t.Fatalf("curl output:\n%s", out)
		}
		cl.next(t, 5*time.Second)
	})
	t.Run("gnutls", func(t *testing.T) {
		gnutls := testutil.NeedTool(t, "gnutls-cli")
		for _, prio := range []string{"NORMAL:-VERS-ALL:+VERS-TLS1.3", "NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-SECP256R1",
			"NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305"} {
			out := runTool(t, req, gnutls, "--priority", prio, "--x509cafile", f.certFile(t),
				"--port", port, "--sni-hostname", "localhost", "--verify-hostname", "localhost", "127.0.0.1")
			if !strings.Contains(out, "hello native") || !strings.Contains(out, "TLS1.3") {
				t.Fatalf("%s: gnutls-cli output:\n%s", prio, out)
			}
			cl.next(t, 5*time.Second)
		}
	})
	t.Run("openssl-resume", func(t *testing.T) {
		openssl := testutil.NeedTool(t, "openssl")
		sess := filepath.Join(t.TempDir(), "sess.pem")
		for i, flag := range []string{"-sess_out", "-sess_in"} {
			out := runTool(t, req, openssl, "s_client", "-tls1_3", "-ign_eof", flag, sess,
				"-connect", addr, "-servername", "localhost", "-CAfile", f.certFile(t), "-verify_return_error")
			if !strings.Contains(out, "hello native") {
				t.Fatalf("%s: output:\n%s", flag, out)
			}
			if resumed := strings.Contains(out, "Reused, TLSv1.3"); resumed != (i == 1) {
				t.Fatalf("%s: resumed %v:\n%s", flag, resumed, out)
			}
			cl.next(t, 5*time.Second)
		}
	})
}
