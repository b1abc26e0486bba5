package testutil

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/tlsio"
)

// debianPkg names the Debian package of each external peer the tests
// drive (what .ci/run installs).
var debianPkg = map[string]string{
	"curl": "curl", "openssl": "openssl", "gnutls-cli": "gnutls-bin",
	"nghttp": "nghttp2-client", "h2load": "nghttp2-client",
	"haproxy": "haproxy", "nginx": "nginx", "wrk": "wrk",
}

// NeedTool returns the path of an external peer (curl, openssl, h2load,
// ...), looking in /usr/sbin too (haproxy and nginx live there, outside
// a user's PATH), or skips the test naming it and its Debian package.
// .ci/run installs every one, so CI never skips.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join("/usr/sbin", name); isExec(p) {
		return p
	}
	pkg := debianPkg[name]
	if pkg == "" {
		pkg = name
	}
	t.Skipf("%s is not installed (Debian: apt-get install %s)", name, pkg)
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// Serve accepts connections on a fresh loopback listener and runs fn on
// each in a goroutine of its own; the connection is closed when fn
// returns. At cleanup the listener and every connection still open are
// closed and the accept loop and every fn waited for (an fn still running
// 10 s later, stuck on something other than its connection, is an error).
func Serve(t testing.TB, fn func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ServeOn(t, ln, fn)
}

// ServeOn is Serve on a listener the caller made (a TLS one, say).
func ServeOn(t testing.TB, ln net.Listener, fn func(c net.Conn)) string {
	t.Helper()
	var (
		mu     sync.Mutex
		live   = map[net.Conn]bool{}
		closed bool
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				continue
			}
			live[c] = true
			wg.Add(1)
			mu.Unlock()
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(live, c)
					mu.Unlock()
					c.Close()
				}()
				fn(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range live {
			c.Close()
		}
		mu.Unlock()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("testutil.Serve %s: a connection's handler still runs 10s after its connection was closed", ln.Addr())
		}
	})
	return ln.Addr().String()
}

// Echo is a backend that writes back what it reads until the client
// closes.
func Echo(t testing.TB) string {
	t.Helper()
	return Serve(t, func(c net.Conn) { io.Copy(c, c) })
}

// SelfSigned is a fresh tlsio certificate for localhost, 127.0.0.1 and
// ::1.
func SelfSigned(t testing.TB) *tlsio.KeyPair {
	t.Helper()
	kp, err := tlsio.SelfSigned(time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// TLSServer is a tlsio.Server serving kp with the rest of cfg.
func TLSServer(t testing.TB, kp *tlsio.KeyPair, cfg tlsio.ServerConfig) *tlsio.Server {
	t.Helper()
	store, err := tlsio.NewCertStore(kp)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Certs = store
	srv, err := tlsio.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// CertPool trusts kp's leaf.
func CertPool(kp *tlsio.KeyPair) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(kp.Leaf())
	return pool
}

// StdCert is kp as a crypto/tls certificate (for a crypto/tls peer).
func StdCert(t testing.TB, kp *tlsio.KeyPair) tls.Certificate {
	t.Helper()
	keyPEM, err := kp.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(kp.CertPEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// WriteKeyPair writes kp as PEM files into dir (the certificate
// world-readable, for a peer running as another user) and returns their
// paths.
func WriteKeyPair(t testing.TB, dir string, kp *tlsio.KeyPair) (certFile, keyFile string) {
	t.Helper()
	keyPEM, err := kp.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, kp.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// Buffer is a bytes.Buffer that goroutines may write (a child's output,
// a logger several loops share) while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// WriteString appends s.
func (b *Buffer) WriteString(s string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.WriteString(s)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// JSONLines is every line so far that is a JSON object (slog's JSON
// handler writes one a record).
func (b *Buffer) JSONLines() []map[string]any {
	var out []map[string]any
	for _, ln := range strings.Split(b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(ln), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// Eventually polls cond every 5 ms until it holds, or fails the test
// naming what it waited for once d has passed.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
