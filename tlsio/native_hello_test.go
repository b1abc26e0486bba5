package tlsio

import (
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// helloParts splits a recorded ClientHello record into its message body
// before the extensions and the extensions, to rebuild mutated ones.
type helloExt struct {
	typ  uint16
	data []byte
}

func splitHello(t testing.TB, rec []byte) (head []byte, exts []helloExt) {
	t.Helper()
	msg := rec[recordHeaderLen:]
	s := cryptobyte.String(msg[4:])
	var v uint16
	var random, sid, suites, comp, e cryptobyte.String
	if !s.ReadUint16(&v) || !s.ReadBytes((*[]byte)(&random), 32) || !s.ReadUint8LengthPrefixed(&sid) ||
		!s.ReadUint16LengthPrefixed(&suites) || !s.ReadUint8LengthPrefixed(&comp) || !s.ReadUint16LengthPrefixed(&e) {
		t.Fatal("bad recorded hello")
	}
	head = msg[4 : len(msg)-len(e)-2]
	for !e.Empty() {
		var x helloExt
		var d cryptobyte.String
		e.ReadUint16(&x.typ)
		e.ReadUint16LengthPrefixed(&d)
		x.data = d
		exts = append(exts, x)
	}
	return head, exts
}

// joinHello builds a ClientHello record from parts.
func joinHello(head []byte, exts []helloExt) []byte {
	var b cryptobyte.Builder
	b.AddUint8(recordTypeHandshake)
	b.AddUint16(0x0301)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint8(hsClientHello)
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
			b.AddBytes(head)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				for _, x := range exts {
					b.AddUint16(x.typ)
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(x.data) })
				}
			})
		})
	})
	return b.BytesOrPanic()
}

// feedHello gives one ClientHello record to a new native Conn and returns
// the alert it failed with (0 and ok=false if it did not fail).
func feedHello(t *testing.T, srv *Server, rec []byte) (Alert, bool) {
	t.Helper()
	c := srv.NewConn(nil)
	defer c.Close()
	c.Feed(time.Now(), rec)
	var te *Error
	if !errors.As(c.Err(), &te) {
		return 0, false
	}
	if !te.HasAlert || !te.Local || te.Reason != ReasonHandshake {
		t.Fatalf("error %v", te)
	}
	// The alert goes out in plaintext: no keys yet.
	out := c.AppendOutput(nil)
	if len(out) != 7 || out[0] != recordTypeAlert || Alert(out[6]) != te.Alert {
		t.Fatalf("alert record %x for %v", out, te.Alert)
	}
	return te.Alert, true
}

// TestNativeHelloChecks mutates a real crypto/tls ClientHello and checks
// each strict rule with its alert.
func TestNativeHelloChecks(t *testing.T) {
	srv := nativeServer(t, ServerConfig{})
	rec := recordClientHello(t, clientConfig(tls.VersionTLS13))
	head, exts := splitHello(t, rec)
	if _, failed := feedHello(t, srv, joinHello(head, exts)); failed {
		t.Fatal("the unmodified hello fails")
	}
	find := func(typ uint16) int {
		for i, x := range exts {
			if x.typ == typ {
				return i
			}
		}
		t.Fatalf("no extension %d", typ)
		return -1
	}
	without := func(typ uint16) []helloExt {
		var out []helloExt
		for _, x := range exts {
			if x.typ != typ {
				out = append(out, x)
			}
		}
		return out
	}
	grease := helloExt{0x1a1a, nil}
	greaseGroups := append([]byte{0, byte(len(exts[find(extSupportedGroups)].data))}, exts[find(extSupportedGroups)].data[2:]...)
	greaseGroups = append(greaseGroups, 0x2a, 0x2a)
	greaseGroups[1] = byte(len(greaseGroups) - 2)
	compHead := append([]byte(nil), head...)
	// legacy_compression_methods is the last field of head: <1> 00.
	compHead[len(compHead)-2], compHead[len(compHead)-1] = 2, 0
	compHead = append(compHead[:len(compHead)-1], 1, 0)
	pskLast := append(append([]helloExt(nil), exts...), helloExt{extPreSharedKey, append([]byte{0, 7, 0, 1, 'x', 0, 0, 0, 0, 0, 33, 32}, make([]byte, 32)...)})
	pskLast = append(pskLast, helloExt{0x5a5a, nil})
	pskModes := helloExt{extPSKModes, []byte{1, 1}} // psk_dhe_ke

	for _, tc := range []struct {
		name  string
		rec   []byte
		alert Alert // 0: must succeed
	}{
		{"grease-ignored", joinHello(head, append(append([]helloExt{grease}, exts[:find(extSupportedGroups)]...),
			append([]helloExt{{extSupportedGroups, greaseGroups}}, exts[find(extSupportedGroups)+1:]...)...)), 0},
		{"duplicate-extension", joinHello(head, append(append([]helloExt(nil), exts...), exts[find(extSupportedVersions)])), AlertDecodeError},
		// BoGo VersionTolerance-TLS13, MajorVersionTolerance: with
		// supported_versions, legacy_version is ignored.
		{"legacy-version-0x0400", joinHello(append([]byte{4, 0}, head[2:]...), exts), 0},
		// BoGo Resume-Server-TLS12-TLS13-TLS: an identity that is no ticket
		// of ours, with a 20-byte binder, is ignored (full handshake).
		{"unknown-psk-short-binder", joinHello(head, append(append([]helloExt(nil), exts...), pskModes,
			helloExt{extPreSharedKey, append([]byte{0, 7, 0, 1, 'x', 0, 0, 0, 0, 0, 21, 20}, make([]byte, 20)...)})), 0},
		// BoGo Resume-Server-ExtraPSKBinder: more binders than identities.
		{"extra-psk-binder", joinHello(head, append(append([]helloExt(nil), exts...), pskModes,
			helloExt{extPreSharedKey, append(append([]byte{0, 7, 0, 1, 'x', 0, 0, 0, 0, 0, 66, 32}, make([]byte, 32)...), append([]byte{32}, make([]byte, 32)...)...)})), AlertIllegalParameter},
		{"psk-not-last", joinHello(head, pskLast), AlertIllegalParameter},
		{"compression-methods", joinHello(compHead, exts), AlertIllegalParameter},
		{"no-key-share", joinHello(head, without(extKeyShare)), AlertMissingExtension},
		{"no-signature-algorithms", joinHello(head, without(extSignatureAlgorithms)), AlertMissingExtension},
		{"truncated-extension", joinHello(head, append(without(extServerName), helloExt{extServerName, []byte{0, 5, 0, 0, 9}})), AlertDecodeError},
		{"bad-key-share", joinHello(head, append(without(extKeyShare), helloExt{extKeyShare, []byte{0, 6, 0, 0x1d, 0, 2, 1, 2}})), AlertIllegalParameter},
		{"no-common-suite", func() []byte {
			h := append([]byte(nil), head...)
			// Replace the suites with one TLS 1.2 suite: 2+32+1+len(sid).
			off := 2 + 32 + 1 + int(h[34])
			n := int(h[off])<<8 | int(h[off+1])
			h = append(append(h[:off:off], 0, 2, 0xc0, 0x2f), h[off+2+n:]...)
			return joinHello(h, exts)
		}(), AlertHandshakeFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, failed := feedHello(t, srv, tc.rec)
			switch {
			case tc.alert == 0 && failed:
				t.Fatalf("failed with %v", a)
			case tc.alert != 0 && (!failed || a != tc.alert):
				t.Fatalf("alert %v (failed %v), want %v", a, failed, tc.alert)
			}
		})
	}
}

// TestHelloRetryRandom pins the HelloRetryRequest random of RFC 8446,
// Section 4.1.3.
func TestHelloRetryRandom(t *testing.T) {
	eqHex(t, "HRR random", helloRetryRandom[:], "CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
}

// FuzzClientHello parses arbitrary ClientHello messages: no panic, and
// whatever parses satisfies the invariants the handshake relies on.
func FuzzClientHello(f *testing.F) {
	for _, rec := range recordedHellos(f) {
		f.Add(rec[recordHeaderLen:])
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		ch, err := parseClientHello(msg)
		if err != nil {
			var he *helloError
			if !errors.As(err, &he) || he.alert == 0 {
				t.Fatalf("error without alert: %v", err)
			}
			return
		}
		if len(ch.random) != 32 || len(ch.sessionID) > 32 || len(ch.suites) == 0 {
			t.Fatal("fixed fields")
		}
		seen := map[uint16]bool{}
		for i, e := range ch.extOrder {
			if seen[e] {
				t.Fatal("duplicate extension accepted")
			}
			seen[e] = true
			if e == extPreSharedKey && i != len(ch.extOrder)-1 {
				t.Fatal("pre_shared_key not last")
			}
		}
		for _, p := range ch.psks {
			if len(p.binder) < 32 {
				t.Fatal("PSK without binder")
			}
		}
		if len(ch.truncated()) > len(msg) {
			t.Fatal("truncated longer than the message")
		}
		_ = ch.check13()
	})
}

// FuzzNativeHelloFragments cuts a real ClientHello into records and feed
// calls at fuzzer-chosen points: handshake-message reassembly must give
// the same outcome as the whole hello (the server's flight, waiting for
// its signature), whatever the cuts.
func FuzzNativeHelloFragments(f *testing.F) {
	localPair(f)
	hello := recordClientHello(f, clientConfig(tls.VersionTLS13))[recordHeaderLen:]
	f.Add([]byte{200, 3, 100}, []byte{7, 1})
	f.Add([]byte{1}, []byte{1})
	f.Add([]byte{255, 255, 255, 255, 255, 255, 255, 255}, []byte{0})
	srv := nativeServer(f, ServerConfig{})
	f.Fuzz(func(t *testing.T, recCuts, feedCuts []byte) {
		if len(recCuts) == 0 || len(feedCuts) == 0 {
			return
		}
		var wire []byte
		for i, p := 0, hello; len(p) > 0; i++ {
			n := min(len(p), 1+int(recCuts[i%len(recCuts)])*8)
			wire = append(wire, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
			wire = append(wire, p[:n]...)
			p = p[n:]
		}
		c := srv.NewConn(nil)
		defer c.Close()
		for i := 0; len(wire) > 0; i++ {
			n := min(len(wire), 1+int(feedCuts[i%len(feedCuts)]))
			if err := c.Feed(time.Now(), wire[:n]); err != nil {
				t.Fatalf("feed: %v", err)
			}
			wire = wire[n:]
		}
		if c.HandshakeWork() == nil {
			t.Fatalf("no signature to run (err %v)", c.Err())
		}
		if out := c.AppendOutput(nil); len(out) == 0 || out[0] != recordTypeHandshake {
			t.Fatal("no ServerHello")
		}
	})
}
