package main

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/tlsio"
)

// The binary proxies to an https:// upstream: with -upstream-ca naming the
// upstream's CA it verifies and forwards; with -upstream-server-name the
// upstream sees that SNI; without the CA the certificate fails (502);
// with -upstream-insecure-skip-verify it is accepted and a warning says
// so at start-up.
func TestHTTPSUpstreamFlags(t *testing.T) {
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "tls backend saw "+r.URL.Path+" sni="+r.TLS.ServerName)
	}))
	be.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed verification is expected
	be.StartTLS()
	defer be.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: be.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	up := "https://" + be.Listener.Addr().String()
	get := func(p *proc, path string) (int, string) {
		t.Helper()
		resp, err := insecureClient().Get("https://" + p.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		args    []string
		status  int
		body    string
		warning bool
	}{
		{[]string{"-upstream-ca", ca}, 200, "tls backend saw /x sni=", false},
		{[]string{"-upstream-ca", ca, "-upstream-server-name", "example.com"}, 200, "tls backend saw /x sni=example.com", false},
		{nil, 502, "", false},
		{[]string{"-upstream-insecure-skip-verify"}, 200, "tls backend saw /x sni=", true},
	} {
		p := startSluice(t, append([]string{"-upstream", up}, c.args...)...)
		code, body := get(p, "/x")
		if code != c.status || c.body != "" && body != c.body {
			t.Errorf("%v: %d %q, want %d %q", c.args, code, body, c.status, c.body)
		}
		if w := strings.Contains(p.stderr.String(), "not verified"); w != c.warning {
			t.Errorf("%v: start-up warning %v, want %v", c.args, w, c.warning)
		}
		if c.status == 502 && !strings.Contains(p.stderr.String(), "reason=bad_certificate") {
			t.Errorf("%v: no log line with the TLS failure's reason:\n%s", c.args, p.stderr)
		}
	}
}

func TestHTTPSUpstreamFlagErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "x.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600)
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"-upstream-ca", filepath.Join(dir, "missing.pem")}, "-upstream-ca"},
		{[]string{"-upstream-ca", notPEM}, "-upstream-ca"},
		{[]string{"-upstream-server-name", "a b"}, "-upstream-server-name"},
		{[]string{"-upstream", "https://x:1/path"}, "-upstream"},
		{[]string{"-upstream-client-cert", notPEM}, "-upstream-client-cert"},
		{[]string{"-upstream-client-cert", filepath.Join(dir, "missing.pem"), "-upstream-client-key", notPEM}, "-upstream-client-cert"},
		{[]string{"-upstream-client-cert", notPEM, "-upstream-client-key", notPEM}, "-upstream-client-cert"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr, nil); code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if out := stderr.String(); strings.Count(out, "\n") != 1 || !strings.Contains(out, tc.flag) {
			t.Errorf("%v: %q", tc.args, out)
		}
	}
	var stdout, stderr bytes.Buffer
	run([]string{"-h"}, &stdout, &stderr, nil)
	for _, want := range []string{"-upstream-ca", "-upstream-insecure-skip-verify", "-upstream-server-name", "https://",
		"-upstream-client-cert", "-upstream-client-key", "h2://"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("-h output lacks %q", want)
		}
	}
}

// -upstream-client-cert/-key: the binary presents the certificate to an
// upstream that requires one.
func TestUpstreamClientCertFlag(t *testing.T) {
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "client cert "+r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	be.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	be.StartTLS()
	defer be.Close()
	dir := t.TempDir()
	kp, err := tlsio.SelfSigned(time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := kp.KeyPEM()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, kp.CertPEM(), 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)
	p := startSluice(t, "-upstream", "https://"+be.Listener.Addr().String(), "-upstream-insecure-skip-verify",
		"-upstream-client-cert", certFile, "-upstream-client-key", keyFile)
	resp, err := insecureClient().Get("https://" + p.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "client cert " + kp.Leaf().Subject.CommonName; resp.StatusCode != 200 || string(b) != want {
		t.Fatalf("%d %q, want 200 %q", resp.StatusCode, b, want)
	}
}
