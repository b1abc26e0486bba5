package tlsio

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync/atomic"
	"time"
)

// CertError reports a certificate or key that cannot be used.
type CertError struct {
	// Op is what failed: "parse", "key", "store" or "generate".
	Op string
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *CertError) Error() string { return "tlsio: certificate " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *CertError) Unwrap() error { return e.Err }

// KeyPair is a parsed certificate chain and its private key. It is
// immutable and safe to share.
type KeyPair struct {
	cert  tls.Certificate
	names []string // lower-case DNS SANs of the leaf
	fp    [sha256.Size]byte
}

// ParseKeyPair parses a PEM certificate chain (leaf first) and a PEM private
// key (PKCS#1 or PKCS#8 RSA, SEC 1 or PKCS#8 ECDSA, PKCS#8 Ed25519) and
// checks that they belong together. It does no I/O.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, &CertError{"parse", err}
	}
	return newKeyPair(cert)
}

func newKeyPair(cert tls.Certificate) (*KeyPair, error) {
	switch cert.PrivateKey.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
	default:
		return nil, &CertError{"key", errors.New("unsupported private key type")}
	}
	if cert.Leaf == nil {
		// x509keypairleaf=0 leaves Leaf unset.
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, &CertError{"parse", err}
		}
		cert.Leaf = leaf
	}
	k := &KeyPair{cert: cert, fp: sha256.Sum256(cert.Certificate[0])}
	for _, n := range cert.Leaf.DNSNames {
		k.names = append(k.names, normalizeName(n))
	}
	return k, nil
}

// Leaf returns the parsed leaf certificate. Do not modify it.
func (k *KeyPair) Leaf() *x509.Certificate { return k.cert.Leaf }

// Names returns the leaf's DNS names, lower-cased.
func (k *KeyPair) Names() []string { return append([]string(nil), k.names...) }

// Fingerprint returns the SHA-256 of the leaf certificate's DER.
func (k *KeyPair) Fingerprint() [sha256.Size]byte { return k.fp }

// CertPEM returns the certificate chain, PEM-encoded.
func (k *KeyPair) CertPEM() []byte {
	var out []byte
	for _, der := range k.cert.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out
}

// Fingerprint returns the SHA-256 of a DER certificate, the form browsers
// and openssl x509 -fingerprint -sha256 show.
func Fingerprint(certDER []byte) [sha256.Size]byte { return sha256.Sum256(certDER) }

// FormatFingerprint renders a fingerprint as colon-separated upper-case hex.
func FormatFingerprint(fp [sha256.Size]byte) string {
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, 3*len(fp))
	for i, x := range fp {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hex[x>>4], hex[x&15])
	}
	return string(b)
}

// SelfSigned generates an ECDSA P-256 certificate valid from an hour before
// now for one year, for localhost, 127.0.0.1 and ::1. rand supplies the
// serial number and the signature nonce; since Go 1.26 key generation always
// uses the system's secure source.
func SelfSigned(now time.Time, rand io.Reader) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand)
	if err != nil {
		return nil, &CertError{"generate", err}
	}
	serial, err := randSerial(rand)
	if err != nil {
		return nil, &CertError{"generate", err}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"sluice self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, &CertError{"generate", err}
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, &CertError{"generate", err}
	}
	return newKeyPair(tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf})
}

// randSerial returns a positive 128-bit serial number.
func randSerial(rand io.Reader) (*big.Int, error) {
	var b [16]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, err
	}
	b[0] &= 0x7f
	b[0] |= 0x40 // never zero, never negative
	return new(big.Int).SetBytes(b[:]), nil
}

// KeyPEM returns the private key PEM-encoded as PKCS#8, e.g. to let a test
// client or an operator save a generated key.
func (k *KeyPair) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.cert.PrivateKey)
	if err != nil {
		return nil, &CertError{"key", err}
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// CertStore holds the key pairs of a listener and picks one per handshake
// by SNI: an exact DNS name first, then a wildcard one level up
// ("*.example.com" for "a.example.com"), then the first pair (the default).
// Among pairs with the same name, the first one the client can use (by
// signature algorithms and curves) wins, so RSA and ECDSA pairs can be
// offered side by side. Replace swaps the whole set atomically: handshakes
// already past certificate selection and established connections keep the
// pair they got. It is safe for concurrent use.
type CertStore struct {
	cur atomic.Pointer[certSet]
}

type certSet struct {
	pairs []*KeyPair
	exact map[string][]*KeyPair
	wild  map[string][]*KeyPair // keyed by the part after "*."
}

// NewCertStore returns a store holding pairs; the first is the default.
func NewCertStore(pairs ...*KeyPair) (*CertStore, error) {
	s := new(CertStore)
	if err := s.Replace(pairs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Replace atomically installs a new set of pairs; the first is the default.
// New handshakes see the new set; nothing else changes.
func (s *CertStore) Replace(pairs ...*KeyPair) error {
	if len(pairs) == 0 {
		return &CertError{"store", errors.New("no key pairs")}
	}
	set := &certSet{
		pairs: append([]*KeyPair(nil), pairs...),
		exact: make(map[string][]*KeyPair),
		wild:  make(map[string][]*KeyPair),
	}
	for _, k := range pairs {
		if k == nil {
			return &CertError{"store", errors.New("nil key pair")}
		}
		for _, n := range k.names {
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				set.wild[rest] = append(set.wild[rest], k)
			} else {
				set.exact[n] = append(set.exact[n], k)
			}
		}
	}
	s.cur.Store(set)
	return nil
}

// Pairs returns the current pairs, default first.
func (s *CertStore) Pairs() []*KeyPair {
	return append([]*KeyPair(nil), s.cur.Load().pairs...)
}

// Select returns the pair for serverName (SNI; "" for none).
func (s *CertStore) Select(serverName string) *KeyPair {
	cands, set := s.candidates(serverName)
	if len(cands) > 0 {
		return cands[0]
	}
	return set.pairs[0]
}

func (s *CertStore) candidates(serverName string) ([]*KeyPair, *certSet) {
	set := s.cur.Load()
	if serverName == "" {
		return nil, set
	}
	name := normalizeName(serverName)
	if c := set.exact[name]; len(c) > 0 {
		return c, set
	}
	if _, rest, ok := strings.Cut(name, "."); ok && rest != "" {
		if c := set.wild[rest]; len(c) > 0 {
			return c, set
		}
	}
	return nil, set
}

// forHello is crypto/tls's GetCertificate.
func (s *CertStore) forHello(chi *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cands, set := s.candidates(chi.ServerName)
	if len(cands) == 0 {
		cands = set.pairs[:1]
	}
	for _, k := range cands {
		if chi.SupportsCertificate(&k.cert) == nil {
			return &k.cert, nil
		}
	}
	// Let the handshake fail with crypto/tls's own alert.
	return &cands[0].cert, nil
}

// normalizeName lower-cases an ASCII host name and drops a trailing dot,
// without allocating when it is already normal.
func normalizeName(n string) string {
	n = strings.TrimSuffix(n, ".")
	for i := 0; i < len(n); i++ {
		if c := n[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(n)
		}
	}
	return n
}
