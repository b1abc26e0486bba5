package tlsio

import (
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// Regressions found by BoringSSL's runner (BoGo, see cmd/sluice-bogo-shim);
// the hello-parsing ones are cases of TestNativeHelloChecks.

// withSessionID returns the ClientHello head with its legacy_session_id
// replaced.
func withSessionID(head, sid []byte) []byte {
	n := int(head[34])
	out := append(append([]byte(nil), head[:34]...), byte(len(sid)))
	out = append(out, sid...)
	return append(out, head[35+n:]...)
}

// TestNativeCCSWithoutSessionID: the dummy change_cipher_spec follows the
// ServerHello even when the client sent no session ID (BoGo
// EmptySessionID-TLS13, Server-JDK11-NoWorkaround-3 expected it, as
// crypto/tls and BoringSSL send it).
func TestNativeCCSWithoutSessionID(t *testing.T) {
	srv := nativeServer(t, ServerConfig{})
	head, exts := splitHello(t, recordClientHello(t, clientConfig(tls.VersionTLS13)))
	c := srv.NewConn(func() {})
	defer c.Close()
	c.Feed(time.Now(), joinHello(withSessionID(head, nil), exts))
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
	if w := c.HandshakeWork(); w != nil {
		w()
	}
	out := c.AppendOutput(nil)
	s := cryptobyte.String(out)
	var typ uint8
	var v uint16
	var body cryptobyte.String
	if !s.ReadUint8(&typ) || !s.ReadUint16(&v) || !s.ReadUint16LengthPrefixed(&body) || typ != recordTypeHandshake || body[0] != 2 {
		t.Fatalf("first record %x is no ServerHello", out)
	}
	if len(s) < 6 || string(s[:6]) != "\x14\x03\x03\x00\x01\x01" {
		t.Fatalf("after the ServerHello: %x, want change_cipher_spec", s[:min(len(s), 6)])
	}
}

// TestNativeHelloRetryExcessData: handshake bytes behind a ClientHello
// answered with a HelloRetryRequest are unexpected_message: the second
// ClientHello may only follow the HelloRetryRequest (BoGo
// PartialSecondClientHelloAfterFirst).
func TestNativeHelloRetryExcessData(t *testing.T) {
	srv := nativeServer(t, ServerConfig{})
	head, exts := splitHello(t, recordClientHello(t, clientConfig(tls.VersionTLS13)))
	for i := range exts {
		if exts[i].typ == extKeyShare {
			exts[i].data = []byte{0, 0} // no shares: a retry
		}
	}
	rec := joinHello(head, exts)
	if a, failed := feedHello(t, srv, rec); failed {
		t.Fatalf("the retry hello fails alone: %v", a)
	}
	// The same record with the start of another ClientHello in it.
	rec = append(rec, 1, 0, 1, 0)
	n := int(rec[3])<<8 | int(rec[4]) + 4
	rec[3], rec[4] = byte(n>>8), byte(n)
	c := srv.NewConn(nil)
	defer c.Close()
	c.Feed(time.Now(), rec)
	var te *Error
	if !errors.As(c.Err(), &te) || !te.HasAlert || te.Alert != AlertUnexpectedMessage {
		t.Fatalf("error %v, want unexpected_message", c.Err())
	}
	// The HelloRetryRequest may have gone out; the alert is last.
	if out := c.AppendOutput(nil); len(out) < 7 || string(out[len(out)-7:]) != "\x15\x03\x03\x00\x02\x02\x0a" {
		t.Fatalf("output %x does not end with the alert", out)
	}
}

// TestNativeServerNameAck: a full handshake whose certificate was chosen
// by server_name acknowledges it in EncryptedExtensions (RFC 6066, Section
// 3; BoGo ServerNameExtensionServer-TLS-TLS13).
func TestNativeServerNameAck(t *testing.T) {
	srv := nativeServer(t, ServerConfig{NextProtos: []string{}})
	for _, sni := range []string{"localhost", ""} {
		cfg := clientConfig(tls.VersionTLS13)
		cfg.ServerName, cfg.InsecureSkipVerify, cfg.NextProtos = sni, true, nil
		c := srv.NewConn(func() {})
		c.Feed(time.Now(), recordClientHello(t, cfg))
		nc := c.(*nativeConn)
		if c.Err() != nil || nc.hs == nil || len(nc.hs.flight) < 4 || nc.hs.flight[0] != hsEncryptedExts {
			t.Fatalf("sni %q: no EncryptedExtensions in the flight (err %v)", sni, c.Err())
		}
		want := "\x00\x00" // no extensions
		if sni != "" {
			want = "\x00\x04\x00\x00\x00\x00" // server_name, empty
		}
		if got := string(nc.hs.flight[4 : 4+len(want)]); got != want || int(nc.hs.flight[3]) != len(want) {
			t.Errorf("sni %q: EncryptedExtensions %x, want body %x", sni, nc.hs.flight[:4+int(nc.hs.flight[3])], want)
		}
		c.Close()
	}
}

// finishWith runs a native handshake from the ClientHello rec to the
// client's Finished, which it seals under the client's handshake keys as
// the connection computed them (white-box: no client is needed to reach
// the server's Finished handling); fin maps the right verify_data to the
// Finished body to send. It returns the Conn and what it output after.
func finishWith(t *testing.T, srv *Server, rec []byte, fin func([]byte) []byte) (Conn, []byte) {
	t.Helper()
	c := srv.NewConn(func() {})
	c.Feed(time.Now(), rec)
	if w := c.HandshakeWork(); w != nil {
		w()
	}
	c.AppendOutput(nil)
	nc := c.(*nativeConn)
	if c.Err() != nil || nc.hs == nil || nc.hs.wantFinished == nil {
		t.Fatalf("no server flight: %v", c.Err())
	}
	body := fin(append([]byte(nil), nc.hs.wantFinished...))
	var k recordKeys
	if err := k.set(nc.suite, nc.hs.cHS); err != nil {
		t.Fatal(err)
	}
	msg := append([]byte{hsFinished, 0, 0, byte(len(body))}, body...)
	c.Feed(time.Now(), k.seal(nil, recordTypeHandshake, msg, 0))
	return c, c.AppendOutput(nil)
}

// TestNativeFinishedWrongLength: a client Finished of the wrong length is
// one that does not verify: decrypt_error (RFC 8446, Section 4.4.4; BoGo
// TrailingMessageData-TLS13-ClientFinished-TLS), not decode_error.
func TestNativeFinishedWrongLength(t *testing.T) {
	srv := nativeServer(t, ServerConfig{})
	rec := recordClientHello(t, clientConfig(tls.VersionTLS13))
	for _, tc := range []struct {
		name string
		fin  func([]byte) []byte
	}{
		{"trailing-byte", func(v []byte) []byte { return append(v, 0) }},
		{"short", func(v []byte) []byte { return v[:len(v)-1] }},
		{"wrong", func(v []byte) []byte { v[0] ^= 1; return v }},
	} {
		c, _ := finishWith(t, srv, rec, tc.fin)
		var te *Error
		if !errors.As(c.Err(), &te) || !te.HasAlert || te.Alert != AlertDecryptError {
			t.Errorf("%s: error %v, want decrypt_error", tc.name, c.Err())
		}
		c.Close()
	}
	c, _ := finishWith(t, srv, rec, func(v []byte) []byte { return v })
	if !c.Events().Has(HandshakeDone) || c.Err() != nil {
		t.Fatalf("the right Finished: events %v, error %v", c.Events(), c.Err())
	}
	c.Close()
}

// TestNativeNoTicketWithoutDHEMode: a client that offers psk_ke only
// cannot use a ticket of ours (we resume with psk_dhe_ke only), so none is
// sent (RFC 8446, Section 4.2.9; BoGo
// TLS13-ExpectNoSessionTicketOnBadKEMode-Server).
func TestNativeNoTicketWithoutDHEMode(t *testing.T) {
	srv := nativeServer(t, ServerConfig{})
	head, exts := splitHello(t, recordClientHello(t, clientConfig(tls.VersionTLS13)))
	pskKE := append([]helloExt(nil), exts...)
	found := false
	for i := range pskKE {
		if pskKE[i].typ == extPSKModes {
			pskKE[i].data, found = []byte{1, 0}, true
		}
	}
	if !found {
		pskKE = append(pskKE, helloExt{extPSKModes, []byte{1, 0}})
	}
	same := func(v []byte) []byte { return v }
	for _, tc := range []struct {
		name    string
		rec     []byte
		tickets bool
	}{
		{"psk_dhe_ke", joinHello(head, append(append([]helloExt(nil), exts...), helloExt{extPSKModes, []byte{1, 1}})), true},
		{"psk_ke", joinHello(head, pskKE), false},
	} {
		if tc.tickets && found {
			tc.rec = joinHello(head, exts)
		}
		c, out := finishWith(t, srv, tc.rec, same)
		if !c.Events().Has(HandshakeDone) || c.Err() != nil {
			t.Fatalf("%s: events %v, error %v", tc.name, c.Events(), c.Err())
		}
		if got := len(out) > 0; got != tc.tickets {
			t.Errorf("%s: %d bytes after the client's Finished, want a ticket: %v", tc.name, len(out), tc.tickets)
		}
		c.Close()
	}
}
