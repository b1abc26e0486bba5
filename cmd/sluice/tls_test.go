package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// writeCert writes a self-signed certificate for names and returns the
// cert and key paths and the parsed certificate.
func writeCert(t *testing.T, dir, base string, names ...string) (string, string, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	cp, kp := filepath.Join(dir, base+".pem"), filepath.Join(dir, base+".key")
	os.WriteFile(cp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(kp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	return cp, kp, cert
}

// peerCert handshakes with sni and returns the leaf the server presented.
func peerCert(t *testing.T, addr, sni string) (*x509.Certificate, *tls.Conn) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	return c.ConnectionState().PeerCertificates[0], c
}

// tcp mode with -cert terminates TLS; certificates are chosen by SNI and
// reloaded on SIGHUP without dropping connections; a bad file on reload
// keeps the old certificates.
func TestTLSTerminationSNIAndSIGHUPReload(t *testing.T) {
	dir := t.TempDir()
	aCert, aKey, a := writeCert(t, dir, "a", "a.example")
	bCert, bKey, b := writeCert(t, dir, "b", "b.example")
	up := testutil.Echo(t)
	p := startSluice(t, "-mode", "tcp", "-upstream", "tcp://"+up,
		"-cert", aCert, "-key", aKey, "-cert", bCert, "-key", bKey)

	if got, c := peerCert(t, p.addr, "b.example"); !got.Equal(b) {
		t.Fatalf("SNI b.example got %v", got.DNSNames)
	} else {
		c.Close()
	}
	if got, c := peerCert(t, p.addr, "unknown.example"); !got.Equal(a) {
		t.Fatalf("unknown SNI got %v, want the default (first) certificate", got.DNSNames)
	} else {
		c.Close()
	}

	// A connection open across the reload keeps working.
	_, old := peerCert(t, p.addr, "a.example")
	defer old.Close()
	old.SetDeadline(time.Now().Add(10 * time.Second))
	echoOnce(t, old, "before reload")

	// Replace a's files with a new certificate and reload.
	a2Cert, a2Key, a2 := writeCert(t, dir, "a2", "a.example")
	os.Rename(a2Cert, aCert)
	os.Rename(a2Key, aKey)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, "SIGHUP: certificate reloaded")
	if got, c := peerCert(t, p.addr, "a.example"); !got.Equal(a2) {
		t.Fatal("new handshakes do not see the reloaded certificate")
	} else {
		c.Close()
	}
	echoOnce(t, old, "after reload")

	// A broken file keeps the current certificates.
	os.WriteFile(aCert, []byte("not a certificate"), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, "SIGHUP: reload failed, keeping the current configuration")
	if got, c := peerCert(t, p.addr, "a.example"); !got.Equal(a2) {
		t.Fatal("a failed reload changed the certificates")
	} else {
		c.Close()
	}
	echoOnce(t, old, "after failed reload")
}

func echoOnce(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo %q: %q %v", msg, buf, err)
	}
}

func waitLog(t *testing.T, p *proc, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Count(p.stderr.String(), s) > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("log never said %q\n%s", s, p.stderr)
}

func TestBadCertFileIsAFlagError(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("junk"), 0o600)
	var out, errb strings.Builder
	code := run([]string{"-mode", "tcp", "-cert", bad, "-key", bad, "-admin", ""}, &out, &errb, nil)
	if code != 2 || strings.Count(errb.String(), "\n") != 1 || !strings.Contains(errb.String(), "-cert") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}
