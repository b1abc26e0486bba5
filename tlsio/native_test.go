package tlsio

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Differential tests of the native engine against crypto/tls clients.

func nativeServer(t testing.TB, cfg ServerConfig, pairs ...*KeyPair) *Server {
	t.Helper()
	cfg.Engine = EngineNative
	return newTestServer(t, cfg, pairs...)
}

// native returns the harness's Conn as the native engine's, failing if
// the connection fell back to crypto/tls.
func (h *harness) native() *nativeConn {
	h.t.Helper()
	nc, ok := h.conn.(*nativeConn)
	if !ok || nc.fb != nil {
		h.t.Fatalf("not a native connection")
	}
	return nc
}

// roundTrip checks data both ways after a handshake.
func (h *harness) roundTrip(n int) {
	h.t.Helper()
	msg := strings.Repeat("p", n)
	if _, err := h.client.Write([]byte(msg)); err != nil {
		h.t.Fatal(err)
	}
	h.waitPlain(msg)
	h.seal(msg)
	got, err := h.clientRead(len(msg))
	if err != nil || string(got) != msg {
		h.t.Fatalf("client read %d bytes: %v", len(got), err)
	}
}

type testKey struct {
	name string
	pair func(t testing.TB) *KeyPair
}

var testKeys = []testKey{
	{"ecdsa-p256", func(t testing.TB) *KeyPair { return localPair(t) }},
	{"ecdsa-p384", func(t testing.TB) *KeyPair {
		k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		return mustPair(t, makePEM(t, k, "pkcs8", "localhost"))
	}},
	{"rsa-2048-pss", func(t testing.TB) *KeyPair { return mustPair(t, makePEM(t, testRSAKey(t), "pkcs1", "localhost")) }},
	{"ed25519", func(t testing.TB) *KeyPair {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		return mustPair(t, makePEM(t, k, "pkcs8", "localhost"))
	}},
}

var testGroups = []struct {
	name  string
	curve tls.CurveID
	group uint16
}{
	{"X25519MLKEM768", tls.X25519MLKEM768, groupX25519MLKEM768},
	{"X25519", tls.X25519, groupX25519},
	{"P256", tls.CurveP256, groupP256},
	{"P384", tls.CurveP384, groupP384},
}

var testSuites = []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256}

// TestNativeMatrix: every cipher suite, group and signature key against a
// crypto/tls client, each checked from both ends.
func TestNativeMatrix(t *testing.T) {
	for _, k := range testKeys {
		pair := k.pair(t)
		for _, g := range testGroups {
			for _, suite := range testSuites {
				t.Run(fmt.Sprintf("%s/%s/%04x", k.name, g.name, suite), func(t *testing.T) {
					srv := nativeServer(t, ServerConfig{}, pair)
					srv.onlySuite = suite
					cfg := clientConfig(tls.VersionTLS13, pair)
					cfg.CurvePreferences = []tls.CurveID{g.curve}
					h := newHarness(t, srv, cfg, nil)
					h.handshake()
					h.native()
					h.roundTrip(100)
					var in Info
					h.do(func() { in = h.conn.Info() })
					cs := h.client.ConnectionState()
					want := Info{Version: VersionTLS13, CipherSuite: suite, Group: g.group, ALPN: "h2",
						ServerName: "localhost", Engine: EngineNative}
					if in != want || cs.CipherSuite != suite || uint16(cs.CurveID) != g.group || cs.NegotiatedProtocol != "h2" {
						t.Fatalf("server %+v, client suite %#x group %v alpn %q", in, cs.CipherSuite, cs.CurveID, cs.NegotiatedProtocol)
					}
				})
			}
		}
	}
}

// TestNativeFragmented runs handshakes and data with 1-byte and random
// fragmentation in both directions, per group.
func TestNativeFragmented(t *testing.T) {
	frags := []struct {
		name string
		f    func() int
	}{{"1byte", fragOne}, {"random", fragRandom(7)}}
	for _, g := range testGroups {
		for _, fr := range frags {
			t.Run(g.name+"/"+fr.name, func(t *testing.T) {
				srv := nativeServer(t, ServerConfig{})
				cfg := clientConfig(tls.VersionTLS13)
				cfg.CurvePreferences = []tls.CurveID{g.curve}
				h := newHarness(t, srv, cfg, fr.f, withFrag(fr.f))
				h.handshake()
				h.native()
				h.roundTrip(40000) // more than two full records
			})
		}
	}
}

// TestNativeHelloRetry: a client whose only key share is for a group the
// server does not take gets a HelloRetryRequest for the best group it
// supports, then completes; also with fragmentation and on resumption.
func TestNativeHelloRetry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		prefs []tls.CurveID
		want  uint16
	}{
		// crypto/tls sends one share, for its first group in a fixed
		// order; the native server takes neither SecP256r1MLKEM768 nor
		// SecP384r1MLKEM1024.
		{"to-X25519", []tls.CurveID{tls.SecP256r1MLKEM768, tls.X25519}, groupX25519},
		{"to-P256", []tls.CurveID{tls.SecP384r1MLKEM1024, tls.CurveP256}, groupP256},
		{"to-P384", []tls.CurveID{tls.SecP256r1MLKEM768, tls.CurveP384}, groupP384},
	} {
		for _, frag := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/frag=%v", tc.name, frag), func(t *testing.T) {
				srv := nativeServer(t, ServerConfig{})
				cfg := clientConfig(tls.VersionTLS13)
				cfg.CurvePreferences = tc.prefs
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(2)
				for i, resumed := range []bool{false, true} {
					var opts []harnessOpt
					var rm func() int
					if frag {
						rm = fragRandom(uint64(i + 1))
						opts = append(opts, withFrag(rm))
					}
					h := newHarness(t, srv, cfg, rm, opts...)
					h.handshake()
					nc := h.native()
					h.roundTrip(10)
					var in Info
					var hrr bool
					h.do(func() { in, hrr = h.conn.Info(), nc.hrr })
					if !hrr || in.Group != tc.want || in.Resumed != resumed || h.client.ConnectionState().DidResume != resumed {
						t.Fatalf("conn %d: hrr %v info %+v", i, hrr, in)
					}
				}
			})
		}
	}
}

// TestNativeResumption: tickets resume, under every suite; the ticket key
// rotates with the clock and old tickets are refused; another server's
// tickets are refused; SessionTicketsDisabled sends none.
func TestNativeResumption(t *testing.T) {
	t0 := time.Now()
	run := func(t *testing.T, srv *Server, cfg *tls.Config, now time.Time) (Info, bool) {
		cfg.Time = func() time.Time { return now }
		h := newHarness(t, srv, cfg, nil, withNow(now))
		h.handshake()
		h.native()
		h.roundTrip(1) // the client reads the ticket before the data
		var in Info
		h.do(func() { in = h.conn.Info() })
		return in, h.client.ConnectionState().DidResume
	}
	for _, suite := range testSuites {
		t.Run(fmt.Sprintf("%04x", suite), func(t *testing.T) {
			srv := nativeServer(t, ServerConfig{})
			srv.onlySuite = suite
			cfg := clientConfig(tls.VersionTLS13)
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			if in, _ := run(t, srv, cfg, t0); in.Resumed {
				t.Fatal("first connection resumed")
			}
			in, did := run(t, srv, cfg, t0.Add(time.Second))
			if !in.Resumed || !did || in.CipherSuite != suite {
				t.Fatalf("second connection: %+v, client resumed %v", in, did)
			}
		})
	}
	t.Run("rotation", func(t *testing.T) {
		srv := nativeServer(t, ServerConfig{})
		cfg := clientConfig(tls.VersionTLS13)
		cache := tls.NewLRUClientSessionCache(4)
		cfg.ClientSessionCache = cache
		run(t, srv, cfg, t0)
		// Three days on, the ticket's key is two epochs old: still taken.
		if in, _ := run(t, srv, cfg, t0.Add(3*24*time.Hour)); !in.Resumed {
			t.Fatal("ticket of 3 days refused")
		}
		// That connection got a new ticket; 8 days after it, both its
		// lifetime and its key are gone. The client would not offer a
		// ticket past its lifetime, so give it a clock that thinks it is
		// fresh: the server must still refuse it.
		now := t0.Add(11 * 24 * time.Hour)
		cfg.Time = func() time.Time { return t0.Add(3*24*time.Hour + time.Hour) }
		h := newHarness(t, srv, cfg, nil, withNow(now))
		h.handshake()
		h.roundTrip(1)
		var in Info
		h.do(func() { in = h.conn.Info() })
		if in.Resumed {
			t.Fatal("ticket from an expired epoch accepted")
		}
	})
	t.Run("other-server", func(t *testing.T) {
		cfg := clientConfig(tls.VersionTLS13)
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		run(t, nativeServer(t, ServerConfig{}), cfg, t0)
		if in, did := run(t, nativeServer(t, ServerConfig{}), cfg, t0); in.Resumed || did {
			t.Fatal("another server's ticket accepted")
		}
	})
	t.Run("disabled", func(t *testing.T) {
		srv := nativeServer(t, ServerConfig{SessionTicketsDisabled: true})
		cfg := clientConfig(tls.VersionTLS13)
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		run(t, srv, cfg, t0)
		if in, did := run(t, srv, cfg, t0); in.Resumed || did {
			t.Fatal("resumed with tickets disabled")
		}
	})
}

// TestNativeFallback: clients that do not offer TLS 1.3 are replayed into
// crypto/tls, however their ClientHello was cut; the API is the same.
func TestNativeFallback(t *testing.T) {
	for _, fr := range []struct {
		name string
		f    func() int
	}{{"whole", fragWhole}, {"1byte", fragOne}, {"random", fragRandom(3)}} {
		t.Run(fr.name, func(t *testing.T) {
			srv := nativeServer(t, ServerConfig{})
			cfg := clientConfig(tls.VersionTLS12)
			h := newHarness(t, srv, cfg, fr.f, withFrag(fr.f))
			h.handshake()
			h.roundTrip(20000)
			var in Info
			h.do(func() { in = h.conn.Info() })
			if in.Engine != EngineStdlib || in.Version != VersionTLS12 {
				t.Fatalf("info %+v", in)
			}
		})
	}
	// A server limited to TLS 1.3 refuses them through crypto/tls.
	srv := nativeServer(t, ServerConfig{MinVersion: VersionTLS13})
	h := newHarness(t, srv, clientConfig(tls.VersionTLS12), nil)
	if err := timeout(t, "handshake", h.client.Handshake); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("client: %v", err)
	}
}

// TestNativeKeyUpdateAfter: the server moves to new write keys after the
// configured byte count, and the client reads everything across them.
func TestNativeKeyUpdateAfter(t *testing.T) {
	srv := nativeServer(t, ServerConfig{KeyUpdateAfter: 1000})
	h := newHarness(t, srv, clientConfig(tls.VersionTLS13), nil)
	h.handshake()
	nc := h.native()
	var want bytes.Buffer
	for i := range 20 {
		chunk := strings.Repeat(string(rune('a'+i)), 300)
		want.WriteString(chunk)
		h.seal(chunk)
	}
	got, err := h.clientRead(want.Len())
	if err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("client read %d bytes: %v", len(got), err)
	}
	var n int
	h.do(func() { n = nc.keyUpdates })
	// A KeyUpdate before the record that starts with 1000 or more bytes
	// sealed under the current key: before chunks 5, 9, 13 and 17.
	if n != 4 {
		t.Fatalf("%d KeyUpdates sent, want 4", n)
	}
	// Negative disables it.
	srv = nativeServer(t, ServerConfig{KeyUpdateAfter: -1})
	h = newHarness(t, srv, clientConfig(tls.VersionTLS13), nil)
	h.handshake()
	h.seal(strings.Repeat("x", 1<<16))
	if _, err := h.clientRead(1 << 16); err != nil {
		t.Fatal(err)
	}
	h.do(func() { n = h.native().keyUpdates })
	if n != 0 {
		t.Fatalf("%d KeyUpdates with KeyUpdateAfter < 0", n)
	}
}

// TestNativeSignatureOffLoop: a full handshake hands out exactly one
// function (the signature) and makes no progress until it has run; a
// resumed one hands out none.
func TestNativeSignatureOffLoop(t *testing.T) {
	srv := nativeServer(t, ServerConfig{})
	cfg := clientConfig(tls.VersionTLS13)
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(2)
	for i, wantWork := range []bool{true, false} {
		c := srv.NewConn(nil)
		cc := newClientConn(nil)
		cli := tls.Client(cc, cfg)
		done := make(chan error, 1)
		go func() { done <- cli.Handshake() }()
		var works int
		for hs := true; hs; {
			select {
			case b := <-cc.toServer:
				c.Feed(time.Now(), b)
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				hs = false
				continue
			case <-time.After(10 * time.Second):
				t.Fatal("timeout")
			}
			if w := c.HandshakeWork(); w != nil {
				works++
				// The ServerHello may go ahead; nothing encrypted may.
				out := c.AppendOutput(nil)
				for p := out; len(p) >= recordHeaderLen; p = p[recordHeaderLen+(int(p[3])<<8|int(p[4])):] {
					if p[0] == recordTypeAppData {
						t.Fatalf("conn %d: encrypted output before the signature", i)
					}
				}
				cc.deliver(out)
				w()
			}
			cc.deliver(c.AppendOutput(nil))
		}
		if (works == 1) != wantWork || works > 1 {
			t.Fatalf("conn %d: %d handshake functions", i, works)
		}
		// The client's Finished was fed; read the ticket on the client.
		out, _ := c.Seal(nil, []byte("x"))
		cc.deliver(out)
		buf := make([]byte, 1)
		if _, err := cli.Read(buf); err != nil {
			t.Fatal(err)
		}
		c.Close()
		cc.Close()
	}
}

// TestNativeRecordLimits: records that carry nothing are bounded, and so
// are KeyUpdates without data; both end with unexpected_message.
func TestNativeRecordLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  func(s *sealer13) []byte
	}{
		{"empty-appdata", func(s *sealer13) []byte { return s.seal(recordTypeAppData, nil) }},
		{"keyupdate", func(s *sealer13) []byte { return s.seal(recordTypeHandshake, []byte{hsKeyUpdate, 0, 0, 1, 0}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var klog bytes.Buffer
			cfg := clientConfig(tls.VersionTLS13)
			cfg.KeyLogWriter = &klog
			h := newHarness(t, nativeServer(t, ServerConfig{}), cfg, nil)
			h.handshake()
			cs := h.client.ConnectionState()
			s := newSealer13(t, cs.CipherSuite, keyLogSecret(t, klog.Bytes(), "CLIENT_TRAFFIC_SECRET_0"))
			var err error
			for i := 0; i <= maxEmptyRun && err == nil; i++ {
				rec := tc.rec(s)
				if tc.name == "keyupdate" {
					s = s.next(t)
				}
				h.do(func() { err = h.conn.Feed(h.now, rec) })
				if err != nil && i < maxEmptyRun {
					t.Fatalf("record %d: %v", i, err)
				}
			}
			var te *Error
			if !errors.As(err, &te) || te.Alert != AlertUnexpectedMessage || te.Reason != ReasonBadRecord {
				t.Fatalf("after %d records: %v", maxEmptyRun+1, err)
			}
		})
	}
}

// TestHelloComplete: both engines report a complete ClientHello only once
// its last byte is in, the native one also after a fallback.
func TestHelloComplete(t *testing.T) {
	localPair(t)
	for _, tc := range []struct {
		engine  string
		version uint16
	}{{EngineNative, tls.VersionTLS13}, {EngineNative, tls.VersionTLS12}, {EngineStdlib, tls.VersionTLS13}} {
		srv := newTestServer(t, ServerConfig{Engine: tc.engine})
		rec := recordClientHello(t, clientConfig(tc.version))
		c := srv.NewConn(nil)
		for i := range rec {
			if HelloComplete(c) {
				t.Fatalf("%s/%x: complete after %d of %d bytes", tc.engine, tc.version, i, len(rec))
			}
			c.Feed(time.Now(), rec[i:i+1])
		}
		if !HelloComplete(c) {
			t.Fatalf("%s/%x: not complete after the whole hello", tc.engine, tc.version)
		}
		c.Close()
	}
}

// TestNativeIdleHoldsNoBuffers: after a handshake and a request and
// response, also with a record left half-read and then completed, an idle
// native Conn holds no buffer: only keys and sequence numbers.
func TestNativeIdleHoldsNoBuffers(t *testing.T) {
	h := newHarness(t, nativeServer(t, ServerConfig{}), clientConfig(tls.VersionTLS13), nil, withFrag(fragRandom(11)))
	h.handshake()
	nc := h.native()
	h.roundTrip(50000)
	h.do(func() {
		if nc.in != nil || nc.inBox != nil || nc.hsIn != nil || nc.out != nil || nc.pre != nil ||
			nc.plain != nil || nc.plainBox != nil || nc.hs != nil || nc.job != nil {
			t.Fatalf("idle conn holds: in %d hsIn %d out %d pre %d plain %d hs %v job %v",
				cap(nc.in), cap(nc.hsIn), cap(nc.out), cap(nc.pre), cap(nc.plain), nc.hs != nil, nc.job != nil)
		}
	})
}

// TestNativeSplitRecordAllocs: a record cut across two Feeds is completed
// in a pooled buffer, and the rest decrypted in place: no allocation per
// Feed once warm (the first version appended the whole next read to the
// partial record, allocating its size each time).
func TestNativeSplitRecordAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("AllocsPerRun")
	}
	h := newHarness(t, nativeServer(t, ServerConfig{}), clientConfig(tls.VersionTLS13), nil)
	h.handshake()
	h.do(func() { h.holding = true })
	payload := make([]byte, 3*maxPlaintext)
	var cts [][]byte
	for range 110 {
		h.client.Write(payload)
		h.waitFor("records", func() bool { return len(h.held) >= 3*(maxPlaintext+22) })
		h.do(func() { cts = append(cts, h.held); h.held = nil })
	}
	h.do(func() {
		pt := make([]byte, 0, 4*maxPlaintext)
		i := 0
		feed := func() {
			ct := cts[i]
			i++
			cut := len(ct)/2 + 7 // inside the second record
			h.conn.Feed(h.now, ct[:cut])
			h.conn.Feed(h.now, ct[cut:])
			pt, _ = h.conn.ReadPlaintext(pt[:0])
		}
		for range 5 {
			feed()
		}
		n := testing.AllocsPerRun(100, feed)
		if len(pt) != len(payload) || n != 0 {
			t.Errorf("%v allocs per split read, %d bytes", n, len(pt))
		}
	})
}
