package tlsio

// crypto/tls has no API to make a client send KeyUpdate, and never sends one
// on its own (it only answers). So the test plays the client's record layer
// itself after a real crypto/tls handshake: it learns the client's
// application traffic secret from Config.KeyLogWriter and seals records per
// RFC 8446, Section 5.2-5.3 and 7.1-7.2.

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// hkdfExpandLabel is HKDF-Expand-Label (RFC 8446, Section 7.1).
func hkdfExpandLabel(h func() hash.Hash, secret []byte, label string, n int) []byte {
	full := "tls13 " + label
	info := []byte{byte(n >> 8), byte(n), byte(len(full))}
	info = append(info, full...)
	info = append(info, 0) // empty context
	out, err := hkdf.Expand(h, secret, string(info), n)
	if err != nil {
		panic(err)
	}
	return out
}

// sealer13 protects records with one TLS 1.3 traffic secret.
type sealer13 struct {
	suite  uint16
	h      func() hash.Hash
	secret []byte
	aead   cipher.AEAD
	iv     []byte
	seq    uint64
}

func newSealer13(t *testing.T, suite uint16, secret []byte) *sealer13 {
	s := &sealer13{suite: suite, secret: secret}
	keyLen := 16
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
		s.h = sha256.New
	case tls.TLS_AES_256_GCM_SHA384:
		s.h, keyLen = sha512.New384, 32
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		s.h, keyLen = sha256.New, 32
	default:
		t.Fatalf("suite %#x", suite)
	}
	key := hkdfExpandLabel(s.h, secret, "key", keyLen)
	s.iv = hkdfExpandLabel(s.h, secret, "iv", 12)
	var err error
	if suite == tls.TLS_CHACHA20_POLY1305_SHA256 {
		s.aead, err = chacha20poly1305.New(key)
	} else {
		var b cipher.Block
		if b, err = aes.NewCipher(key); err == nil {
			s.aead, err = cipher.NewGCM(b)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// next derives the following generation (RFC 8446, Section 7.2).
func (s *sealer13) next(t *testing.T) *sealer13 {
	return newSealer13(t, s.suite, hkdfExpandLabel(s.h, s.secret, "traffic upd", s.h().Size()))
}

// seal returns one protected record of content type typ.
func (s *sealer13) seal(typ byte, content []byte) []byte {
	inner := append(append([]byte(nil), content...), typ)
	n := len(inner) + s.aead.Overhead()
	hdr := []byte{recordTypeAppData, 3, 3, byte(n >> 8), byte(n)}
	nonce := append([]byte(nil), s.iv...)
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], s.seq)
	for i := range seq {
		nonce[4+i] ^= seq[i]
	}
	s.seq++
	return s.aead.Seal(hdr, nonce, inner, hdr)
}

// keyLogSecret finds label's secret in an NSS key log.
func keyLogSecret(t *testing.T, log []byte, label string) []byte {
	sc := bufio.NewScanner(bytes.NewReader(log))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == label {
			b, err := hex.DecodeString(f[2])
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("no %s in key log", label)
	return nil
}

// TestKeyUpdate: the client asks for a key update; the server switches its
// read keys, answers with its own KeyUpdate through AppendOutput and
// switches its write keys, which the crypto/tls client follows.
func TestKeyUpdate(t *testing.T) {
	for _, fr := range []struct {
		name string
		f    func() int
	}{{"whole", fragWhole}, {"1byte", fragOne}} {
		t.Run(fr.name, func(t *testing.T) {
			srv := newTestServer(t, ServerConfig{})
			var keylog bytes.Buffer
			cfg := clientConfig(tls.VersionTLS13)
			cfg.KeyLogWriter = &keylog
			h := newHarness(t, srv, cfg, nil, withFrag(fr.f))
			h.handshake()
			suite := h.client.ConnectionState().CipherSuite
			gen0 := newSealer13(t, suite, keyLogSecret(t, keylog.Bytes(), "CLIENT_TRAFFIC_SECRET_0"))
			gen1 := gen0.next(t)

			// A plain record under generation 0 first, to show the sealer works.
			var outLen int
			h.do(func() { h.feed(gen0.seal(recordTypeAppData, []byte("gen0"))) })
			h.waitPlain("gen0")

			// KeyUpdate(update_requested).
			h.do(func() {
				before := h.outBytes
				h.feed(gen0.seal(recordTypeHandshake, []byte{24, 0, 0, 1, 1}))
				outLen = h.outBytes - before
			})
			if outLen == 0 {
				t.Fatal("no KeyUpdate response in AppendOutput")
			}
			h.do(func() { h.feed(gen1.seal(recordTypeAppData, []byte("gen1"))) })
			h.waitPlain("gen1")

			// The client reads the server's KeyUpdate, then data under the
			// server's new keys.
			h.seal("server gen1")
			if got, err := h.clientRead(len("server gen1")); err != nil || string(got) != "server gen1" {
				t.Fatalf("client read %q, %v", got, err)
			}

			// The old generation is gone on the server's read side.
			var err error
			h.do(func() { err = h.conn.Feed(h.now, gen0.seal(recordTypeAppData, []byte("stale"))) })
			var te *Error
			if !errors.As(err, &te) || te.Alert != AlertBadRecordMAC {
				t.Fatalf("record under the old key: %v", err)
			}
		})
	}
}

// TestKeyUpdateNotRequested: update_not_requested switches the server's
// read keys only and produces no output.
func TestKeyUpdateNotRequested(t *testing.T) {
	srv := newTestServer(t, ServerConfig{})
	var keylog bytes.Buffer
	cfg := clientConfig(tls.VersionTLS13)
	cfg.KeyLogWriter = &keylog
	h := newHarness(t, srv, cfg, nil)
	h.handshake()
	gen0 := newSealer13(t, h.client.ConnectionState().CipherSuite, keyLogSecret(t, keylog.Bytes(), "CLIENT_TRAFFIC_SECRET_0"))
	gen1 := gen0.next(t)
	var out int
	h.do(func() {
		before := h.outBytes
		h.feed(append(gen0.seal(recordTypeHandshake, []byte{24, 0, 0, 1, 0}), gen1.seal(recordTypeAppData, []byte("x"))...))
		out = h.outBytes - before
	})
	h.waitPlain("x")
	if out != 0 {
		t.Fatalf("%d bytes of output for update_not_requested", out)
	}
	// The client's own keys are unchanged, so a server record still reads.
	h.seal("y")
	if got, err := h.clientRead(1); err != nil || string(got) != "y" {
		t.Fatalf("%q %v", got, err)
	}
}

// TestSealKeepsKeyUpdateFirst: a KeyUpdate response still pending when the
// loop seals goes out ahead of the new records; otherwise the client would
// get records under keys it has not switched to yet.
func TestSealKeepsKeyUpdateFirst(t *testing.T) {
	srv := newTestServer(t, ServerConfig{})
	var keylog bytes.Buffer
	cfg := clientConfig(tls.VersionTLS13)
	cfg.KeyLogWriter = &keylog
	h := newHarness(t, srv, cfg, nil)
	h.handshake()
	gen0 := newSealer13(t, h.client.ConnectionState().CipherSuite, keyLogSecret(t, keylog.Bytes(), "CLIENT_TRAFFIC_SECRET_0"))
	var err error
	h.do(func() {
		// Feed directly: no pump, so the response stays pending.
		if err = h.conn.Feed(h.now, gen0.seal(recordTypeHandshake, []byte{24, 0, 0, 1, 1})); err != nil {
			return
		}
		var out []byte
		out, err = h.conn.Seal(nil, []byte("after"))
		h.cc.deliver(out)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := h.clientRead(5); err != nil || string(got) != "after" {
		t.Fatalf("client read %q, %v", got, err)
	}
}
