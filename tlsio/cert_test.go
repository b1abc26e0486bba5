package tlsio

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestParseKeyPair(t *testing.T) {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pem  testPEM
	}{
		{"rsa-pkcs1", makePEM(t, testRSAKey(t), "pkcs1", "localhost")},
		{"rsa-pkcs8", makePEM(t, testRSAKey(t), "pkcs8", "localhost")},
		{"ecdsa-sec1", makePEM(t, testECKey(t), "sec1", "localhost")},
		{"ecdsa-pkcs8", makePEM(t, testECKey(t), "pkcs8", "localhost")},
		{"ed25519-pkcs8", makePEM(t, edKey, "pkcs8", "localhost")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKeyPair(tt.pem.cert, tt.pem.key)
			if err != nil {
				t.Fatal(err)
			}
			if got := k.Names(); len(got) != 1 || got[0] != "localhost" {
				t.Fatalf("names %v", got)
			}
			if k.Fingerprint() != sha256.Sum256(k.Leaf().Raw) || Fingerprint(k.Leaf().Raw) != k.Fingerprint() {
				t.Fatal("fingerprint")
			}
			if back, err := ParseKeyPair(k.CertPEM(), mustKeyPEM(t, k)); err != nil || back.Fingerprint() != k.Fingerprint() {
				t.Fatalf("PEM round trip: %v", err)
			}
			for _, v := range versions {
				srv := newTestServer(t, ServerConfig{}, k)
				h := newHarness(t, srv, clientConfig(v.v, k), nil)
				h.handshake()
				if fp := Fingerprint(h.client.ConnectionState().PeerCertificates[0].Raw); fp != k.Fingerprint() {
					t.Fatalf("%s: client saw another certificate", v.name)
				}
			}
		})
	}
}

func mustKeyPEM(t *testing.T, k *KeyPair) []byte {
	b, err := k.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseKeyPairErrors(t *testing.T) {
	a := makePEM(t, testECKey(t), "pkcs8", "a.test")
	b := makePEM(t, testECKey(t), "pkcs8", "b.test")
	for name, in := range map[string]testPEM{
		"mismatch":  {a.cert, b.key},
		"garbage":   {[]byte("not pem"), a.key},
		"no-key":    {a.cert, nil},
		"key-first": {a.key, a.cert},
	} {
		var ce *CertError
		if _, err := ParseKeyPair(in.cert, in.key); !errors.As(err, &ce) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	var ce *CertError
	if _, err := NewCertStore(); !errors.As(err, &ce) {
		t.Errorf("empty store: %v", err)
	}
	if _, err := NewCertStore(nil); !errors.As(err, &ce) {
		t.Errorf("nil pair: %v", err)
	}
}

func TestCertStoreSelect(t *testing.T) {
	def := ecPair(t, "default.test")
	exact := ecPair(t, "a.example.com", "Other.Example.Com")
	wild := ecPair(t, "*.example.com")
	st, err := NewCertStore(def, exact, wild)
	if err != nil {
		t.Fatal(err)
	}
	for sni, want := range map[string]*KeyPair{
		"a.example.com":     exact,
		"A.EXAMPLE.COM.":    exact,
		"other.example.com": exact,
		"b.example.com":     wild,
		"x.y.example.com":   def, // a wildcard covers one label only
		"example.com":       def,
		"":                  def,
		"default.test":      def,
		"unknown.test":      def,
	} {
		if got := st.Select(sni); got != want {
			t.Errorf("Select(%q) = %v, want %v", sni, got.Names(), want.Names())
		}
	}
	if p := st.Pairs(); len(p) != 3 || p[0] != def {
		t.Fatal("Pairs")
	}
}

// TestSNIHandshake: the certificate a real client receives follows its SNI.
func TestSNIHandshake(t *testing.T) {
	def := ecPair(t, "default.test")
	exact := ecPair(t, "a.example.com")
	wild := ecPair(t, "*.example.com")
	srv := newTestServer(t, ServerConfig{}, def, exact, wild)
	for sni, want := range map[string]*KeyPair{
		"a.example.com": exact,
		"b.example.com": wild,
		"default.test":  def,
	} {
		cfg := clientConfig(tls.VersionTLS13, def, exact, wild)
		cfg.ServerName = sni
		h := newHarness(t, srv, cfg, nil)
		h.handshake()
		if fp := Fingerprint(h.client.ConnectionState().PeerCertificates[0].Raw); fp != want.Fingerprint() {
			t.Errorf("SNI %q: wrong certificate", sni)
		}
		var info Info
		h.do(func() { info = h.conn.Info() })
		if info.ServerName != sni {
			t.Errorf("Info.ServerName %q, want %q", info.ServerName, sni)
		}
	}
}

// TestCertStoreKeyTypeChoice: with an RSA and an ECDSA pair for the same
// name, a client that can only take ECDSA gets the ECDSA one.
func TestCertStoreKeyTypeChoice(t *testing.T) {
	rsaPair := mustPair(t, makePEM(t, testRSAKey(t), "pkcs8", "localhost"))
	ecP := ecPair(t, "localhost")
	srv := newTestServer(t, ServerConfig{}, rsaPair, ecP)
	cfg := clientConfig(tls.VersionTLS12, rsaPair, ecP)
	cfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	h := newHarness(t, srv, cfg, nil)
	h.handshake()
	if fp := Fingerprint(h.client.ConnectionState().PeerCertificates[0].Raw); fp != ecP.Fingerprint() {
		t.Fatal("got the RSA certificate")
	}
	cfg = clientConfig(tls.VersionTLS12, rsaPair, ecP)
	h = newHarness(t, srv, cfg, nil)
	h.handshake()
	if fp := Fingerprint(h.client.ConnectionState().PeerCertificates[0].Raw); fp != rsaPair.Fingerprint() {
		t.Fatal("first pair not preferred")
	}
}

// TestCertReplaceMidSession: Replace does not disturb an established
// connection, and the next handshake sees the new set.
func TestCertReplaceMidSession(t *testing.T) {
	oldPair := ecPair(t, "localhost")
	newPair := ecPair(t, "localhost")
	st, _ := NewCertStore(oldPair)
	srv := newTestServer(t, ServerConfig{Certs: st})
	cfg := clientConfig(tls.VersionTLS13, oldPair, newPair)

	h1 := newHarness(t, srv, cfg, nil)
	h1.handshake()
	if err := st.Replace(newPair); err != nil {
		t.Fatal(err)
	}
	h1.client.Write([]byte("still here"))
	h1.waitPlain("still here")
	h1.seal("and me")
	if got, err := h1.clientRead(6); err != nil || string(got) != "and me" {
		t.Fatalf("%q %v", got, err)
	}
	if fp := Fingerprint(h1.client.ConnectionState().PeerCertificates[0].Raw); fp != oldPair.Fingerprint() {
		t.Fatal("old conn changed certificate")
	}

	h2 := newHarness(t, srv, cfg, nil)
	h2.handshake()
	if fp := Fingerprint(h2.client.ConnectionState().PeerCertificates[0].Raw); fp != newPair.Fingerprint() {
		t.Fatal("new handshake did not see the replaced set")
	}

	// Replace racing with a handshake in progress: whichever set its
	// goroutine sees, the handshake completes.
	h3 := newHarness(t, srv, cfg, nil, withHold())
	done := h3.feedClientHello()
	st.Replace(oldPair)
	h3.do(func() { h3.holding = false; h3.feed(h3.held); h3.held = nil })
	if err := timeout(t, "handshake", func() error { return <-done }); err != nil {
		t.Fatal(err)
	}
	h3.waitEvent(HandshakeDone)
}

func TestSelfSigned(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	k, err := SelfSigned(now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := k.Leaf()
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("key %T", leaf.PublicKey)
	}
	if !leaf.NotBefore.Before(now) || !leaf.NotAfter.After(now.Add(300*24*time.Hour)) {
		t.Fatalf("validity %v - %v", leaf.NotBefore, leaf.NotAfter)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IPs %v", leaf.IPAddresses)
	}
	fp := FormatFingerprint(k.Fingerprint())
	if len(fp) != 95 || strings.Count(fp, ":") != 31 || fp != strings.ToUpper(fp) {
		t.Errorf("fingerprint %q", fp)
	}
	k2, _ := SelfSigned(now, rand.Reader)
	if k2.Fingerprint() == k.Fingerprint() || k2.Leaf().SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("two self-signed certificates are identical")
	}
	// Usable by a real handshake (the client's clock is real; regenerate).
	k3, _ := SelfSigned(time.Now(), rand.Reader)
	srv := newTestServer(t, ServerConfig{}, k3)
	cfg := clientConfig(tls.VersionTLS13, k3)
	cfg.ServerName = "127.0.0.1"
	newHarness(t, srv, cfg, nil).handshake()
}
