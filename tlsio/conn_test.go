package tlsio

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var versions = []struct {
	name string
	v    uint16
}{{"tls12", tls.VersionTLS12}, {"tls13", tls.VersionTLS13}}

// TestHandshakeFragmented drives a crypto/tls client through tlsio with the
// bytes in both directions cut whole, into single bytes, and at random.
func TestHandshakeFragmented(t *testing.T) {
	frags := []struct {
		name string
		f    func() int
	}{
		{"whole", fragWhole},
		{"1byte", fragOne},
		{"random", fragRandom(1)},
	}
	for _, v := range versions {
		for _, fr := range frags {
			t.Run(v.name+"/"+fr.name, func(t *testing.T) {
				srv := newTestServer(t, ServerConfig{})
				h := newHarness(t, srv, clientConfig(v.v, localPair(t)), fr.f, withFrag(fr.f))
				h.handshake()

				cs := h.client.ConnectionState()
				var info Info
				h.do(func() { info = h.conn.Info() })
				if info.Version != v.v || cs.Version != v.v {
					t.Fatalf("version server %#x client %#x, want %#x", info.Version, cs.Version, v.v)
				}
				if info.ALPN != "h2" || cs.NegotiatedProtocol != "h2" {
					t.Fatalf("ALPN server %q client %q", info.ALPN, cs.NegotiatedProtocol)
				}
				if info.ServerName != "localhost" || info.CipherSuite != cs.CipherSuite || info.Resumed {
					t.Fatalf("info %+v, client suite %#x", info, cs.CipherSuite)
				}
				if v.v == tls.VersionTLS13 {
					// Go's default puts the hybrid post-quantum group first.
					if cs.CurveID != tls.X25519MLKEM768 || tls.CurveID(info.Group) != tls.X25519MLKEM768 {
						t.Fatalf("group client %v server %v, want X25519MLKEM768", cs.CurveID, tls.CurveID(info.Group))
					}
				}

				msg := strings.Repeat("ping ", 5000) // several records
				if _, err := h.client.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				h.waitPlain(msg)
				h.seal("pong")
				got, err := h.clientRead(4)
				if err != nil || string(got) != "pong" {
					t.Fatalf("client read %q, %v", got, err)
				}
				var ev Events
				h.do(func() { ev = h.conn.Events() })
				if ev != HandshakeDone {
					t.Fatalf("events %v", ev)
				}
			})
		}
	}
}

// TestAppDataWithFinished feeds the client's Finished and its first
// application data record in a single Feed call.
func TestAppDataWithFinished(t *testing.T) {
	srv := newTestServer(t, ServerConfig{})
	h := newHarness(t, srv, clientConfig(tls.VersionTLS13), nil, withHold())
	// Let the ClientHello through, then hold what follows.
	hs := h.feedClientHello()
	if err := timeout(t, "handshake", func() error { return <-hs }); err != nil {
		t.Fatal(err)
	}
	req := "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
	if _, err := h.client.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	// Both writes have reached the channel; move them into held.
	h.waitFor("client flight", func() bool {
		return len(h.cc.toServer) == 0 && len(h.held) > 0
	})
	var feedsBefore, feedsAfter int
	h.do(func() {
		if h.conn.Events().Has(HandshakeDone) {
			t.Fatal("handshake done before the client's Finished was fed")
		}
		h.holding = false
		feedsBefore = h.feeds
		h.feed(h.held)
		feedsAfter = h.feeds
	})
	if feedsAfter-feedsBefore != 1 {
		t.Fatalf("fed in %d calls, want 1", feedsAfter-feedsBefore)
	}
	h.waitEvent(HandshakeDone)
	h.waitPlain(req)
}

func TestCloseNotifyServerToClient(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			srv := newTestServer(t, ServerConfig{})
			h := newHarness(t, srv, clientConfig(v.v), nil)
			h.handshake()
			h.seal("last words")
			var ok1, ok2 bool
			var sealErr error
			h.do(func() {
				var out []byte
				out, ok1 = h.conn.CloseNotify(nil)
				h.cc.deliver(out)
				_, ok2 = h.conn.CloseNotify(nil)
				_, sealErr = h.conn.Seal(nil, []byte("x"))
			})
			if !ok1 || ok2 {
				t.Fatalf("CloseNotify: first %v, second %v", ok1, ok2)
			}
			if !errors.Is(sealErr, ErrWriteClosed) {
				t.Fatalf("Seal after close_notify: %v", sealErr)
			}
			got, err := h.clientRead(len("last words"))
			if err != nil || string(got) != "last words" {
				t.Fatalf("client read %q %v", got, err)
			}
			if _, err := h.clientRead(1); err != io.EOF {
				t.Fatalf("client read after close_notify: %v, want io.EOF", err)
			}
			// The read side stays open: the client can still send.
			if _, err := h.client.Write([]byte("late")); err != nil {
				t.Fatal(err)
			}
			h.waitPlain("late")
			var st State
			h.do(func() { st = h.conn.State() })
			if st != Established {
				t.Fatalf("state %v", st)
			}
		})
	}
}

func TestCloseNotifyClientToServer(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			srv := newTestServer(t, ServerConfig{})
			h := newHarness(t, srv, clientConfig(v.v), nil)
			h.handshake()
			if _, err := h.client.Write([]byte("request")); err != nil {
				t.Fatal(err)
			}
			if err := h.client.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			h.waitEvent(PeerCloseNotify)
			var readErr error
			var st State
			h.do(func() { readErr, st = h.readErr, h.conn.State() })
			if readErr != io.EOF || st != Established {
				t.Fatalf("after peer close_notify: ReadPlaintext err %v, state %v", readErr, st)
			}
			h.waitPlain("request")
			// Half-close: the response still goes out.
			h.seal("response")
			got, err := h.clientRead(len("response"))
			if err != nil || string(got) != "response" {
				t.Fatalf("client read %q %v", got, err)
			}
			var ok bool
			h.do(func() {
				var out []byte
				out, ok = h.conn.CloseNotify(nil)
				h.cc.deliver(out)
				st = h.conn.State()
			})
			if !ok || st != Closed {
				t.Fatalf("CloseNotify %v, state %v", ok, st)
			}
			if _, err := h.clientRead(1); err != io.EOF {
				t.Fatalf("client: %v, want io.EOF", err)
			}
			var ev Events
			h.do(func() { ev = h.conn.Events() })
			if want := HandshakeDone | PeerCloseNotify | CloseNotifySent; ev != want {
				t.Fatalf("events %v, want %v", ev, want)
			}
		})
	}
}

func TestEOFAtRecordBoundary(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			srv := newTestServer(t, ServerConfig{})
			h := newHarness(t, srv, clientConfig(v.v), nil)
			h.handshake()
			h.client.Write([]byte("abc"))
			h.cc.closeWrite()
			h.waitEvent(EOFAtRecordBoundary)
			h.waitPlain("abc")
			var ev Events
			var err, readErr, sealErr error
			h.do(func() {
				ev, err, readErr = h.conn.Events(), h.conn.Err(), h.readErr
				_, sealErr = h.conn.Seal(nil, []byte("still writable"))
			})
			if ev != HandshakeDone|EOFAtRecordBoundary || err != nil || readErr != io.EOF || sealErr != nil {
				t.Fatalf("events %v err %v read %v seal %v", ev, err, readErr, sealErr)
			}
		})
	}
}

func TestEOFMidRecord(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			var reasons []string
			var mu sync.Mutex
			srv := newTestServer(t, ServerConfig{CountError: func(r string) {
				mu.Lock()
				reasons = append(reasons, r)
				mu.Unlock()
			}})
			h := newHarness(t, srv, clientConfig(v.v), nil)
			h.handshake()
			h.do(func() { h.holding = true })
			h.client.Write([]byte("truncated record"))
			h.waitFor("record", func() bool { return len(h.held) > 0 })
			h.do(func() {
				h.feed(h.held[:len(h.held)-3])
				h.conn.FeedEOF(h.now)
			})
			var ev Events
			var err error
			h.do(func() { ev, err = h.conn.Events(), h.conn.Err() })
			if !ev.Has(EOFMidRecord|Fatal) || ev.Has(EOFAtRecordBoundary) {
				t.Fatalf("events %v", ev)
			}
			var te *Error
			if !errors.As(err, &te) || te.Reason != ReasonTruncated || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("err %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(reasons) != "[truncated]" {
				t.Fatalf("CountError %v", reasons)
			}
		})
	}
}

func TestNotTLS(t *testing.T) {
	var count []string
	srv := newTestServer(t, ServerConfig{CountError: func(r string) { count = append(count, r) }})
	for _, frag := range []int{1, 3, 100} {
		c := srv.NewConn(nil)
		in := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		var err error
		for i := 0; i < len(in) && err == nil; i += frag {
			err = c.Feed(time.Now(), in[i:min(i+frag, len(in))])
		}
		if !errors.Is(err, ErrNotTLS) {
			t.Fatalf("frag %d: Feed error %v, want ErrNotTLS", frag, err)
		}
		if out := c.AppendOutput(nil); len(out) != 0 {
			t.Fatalf("output %x, want none (the caller answers in plaintext)", out)
		}
		if c.State() != Closed || !c.Events().Has(Fatal) || c.HandshakeWork() != nil {
			t.Fatalf("state %v events %v", c.State(), c.Events())
		}
	}
	if fmt.Sprint(count) != "[not_tls not_tls not_tls]" {
		t.Fatalf("CountError %v", count)
	}
}

// TestBadFirstRecord checks the alert sent for input that is not TLS.
func TestBadFirstRecord(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		alert Alert
	}{
		{"binary", []byte{0x00, 0x01, 0x02}, AlertUnexpectedMessage},
		{"appdata-first", []byte{23, 3, 3, 0, 1, 0}, AlertUnexpectedMessage},
		{"sslv2", []byte{0x80, 0x2e, 0x01, 0x03, 0x01}, AlertProtocolVersion},
		{"bad-major", []byte{22, 9, 1, 0, 5}, AlertProtocolVersion},
		{"oversized", []byte{22, 3, 1, 0x40, 0x01}, AlertRecordOverflow},
		{"lowercase-method", []byte("get / HTTP/1.1\r\n"), AlertUnexpectedMessage},
		{"upper-not-method", []byte("GE\x00"), AlertUnexpectedMessage},
	}
	srv := newTestServer(t, ServerConfig{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := srv.NewConn(nil)
			err := c.Feed(time.Now(), tt.in)
			var te *Error
			if !errors.As(err, &te) || te.Reason != ReasonNotTLS || !te.HasAlert || te.Alert != tt.alert || errors.Is(err, ErrNotTLS) {
				t.Fatalf("err %#v", err)
			}
			want := []byte{21, 3, 1, 0, 2, 2, byte(tt.alert)}
			if out := c.AppendOutput(nil); !bytes.Equal(out, want) {
				t.Fatalf("output %x, want %x", out, want)
			}
		})
	}
}

// TestBadRecordAfterHandshake sends garbage and oversized records after the
// handshake and checks the alert reaches the client.
func TestBadRecordAfterHandshake(t *testing.T) {
	tests := []struct {
		name   string
		record []byte
		alert  Alert
	}{
		{"garbage", append([]byte{23, 3, 3, 0, 40}, bytes.Repeat([]byte{0xAB}, 40)...), AlertBadRecordMAC},
		{"oversized", []byte{23, 3, 3, 0x48, 0x01}, AlertRecordOverflow},
		{"wrong-version", []byte{23, 3, 1, 0, 40}, AlertProtocolVersion},
	}
	for _, v := range versions {
		for _, tt := range tests {
			t.Run(v.name+"/"+tt.name, func(t *testing.T) {
				srv := newTestServer(t, ServerConfig{})
				h := newHarness(t, srv, clientConfig(v.v), nil)
				h.handshake()
				var err error
				h.do(func() { err = h.conn.Feed(h.now, tt.record) })
				var te *Error
				if !errors.As(err, &te) || te.Reason != ReasonBadRecord || !te.Local || !te.HasAlert || te.Alert != tt.alert {
					t.Fatalf("err %v", err)
				}
				// The alert went out through AppendOutput: the client sees it.
				_, rerr := h.clientRead(1)
				if rerr == nil || !strings.Contains(rerr.Error(), "remote error") {
					t.Fatalf("client read: %v", rerr)
				}
				var ev Events
				var st State
				var sealErr error
				h.do(func() {
					ev, st = h.conn.Events(), h.conn.State()
					_, sealErr = h.conn.Seal(nil, []byte("x"))
				})
				if ev != HandshakeDone|Fatal || st != Closed || sealErr != err {
					t.Fatalf("events %v state %v seal %v", ev, st, sealErr)
				}
			})
		}
	}
}

func TestHandshakeFailures(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*tls.Config)
		reason string
		local  bool
		alert  Alert
	}{
		{"no-common-alpn", func(c *tls.Config) { c.NextProtos = []string{"spdy/3"} }, ReasonHandshake, true, AlertNoApplicationProtocol},
		{"old-version", func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }, ReasonHandshake, true, AlertProtocolVersion},
		{"client-rejects-cert", func(c *tls.Config) { c.RootCAs = nil; c.ServerName = "unknown.example" }, ReasonPeerAlert, false, AlertBadCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var count []string
			var mu sync.Mutex
			srv := newTestServer(t, ServerConfig{CountError: func(r string) { mu.Lock(); count = append(count, r); mu.Unlock() }})
			cfg := clientConfig(tls.VersionTLS13)
			cfg.MinVersion = tls.VersionTLS12
			tt.cfg(cfg)
			h := newHarness(t, srv, cfg, nil)
			cerr := timeout(t, "handshake", h.client.Handshake)
			if cerr == nil {
				t.Fatal("client handshake succeeded")
			}
			h.waitEvent(Fatal)
			var err error
			h.do(func() { err = h.conn.Err() })
			var te *Error
			if !errors.As(err, &te) || te.Reason != tt.reason || te.Local != tt.local || !te.HasAlert || te.Alert != tt.alert {
				t.Fatalf("server err %v (client %v)", err, cerr)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(count) != 1 || count[0] != tt.reason {
				t.Fatalf("CountError %v", count)
			}
		})
	}
}

// TestHandshakeEOF: the client goes away mid-handshake.
func TestHandshakeEOF(t *testing.T) {
	srv := newTestServer(t, ServerConfig{})
	c := srv.NewConn(nil)
	c.FeedEOF(time.Now())
	var te *Error
	if !c.Events().Has(EOFAtRecordBoundary|Fatal) || !errors.As(c.Err(), &te) || te.Reason != ReasonHandshakeEOF {
		t.Fatalf("events %v err %v", c.Events(), c.Err())
	}

	c = srv.NewConn(nil)
	c.Feed(time.Now(), []byte{22, 3, 1, 0, 100, 1})
	c.FeedEOF(time.Now())
	if !c.Events().Has(EOFMidRecord|Fatal) || !errors.Is(c.Err(), io.ErrUnexpectedEOF) {
		t.Fatalf("events %v err %v", c.Events(), c.Err())
	}

	// EOF after the ClientHello, while the handshake goroutine waits.
	h := newHarness(t, srv, clientConfig(tls.VersionTLS13), nil, withHold())
	h.feedClientHello()
	h.waitFor("server flight", func() bool { return h.outBytes > 0 })
	h.do(func() { h.conn.FeedEOF(h.now) })
	h.waitEvent(Fatal)
	h.do(func() {
		if !errors.As(h.conn.Err(), &te) || te.Reason != ReasonHandshakeEOF || !h.conn.Events().Has(EOFAtRecordBoundary) {
			t.Errorf("events %v err %v", h.conn.Events(), h.conn.Err())
		}
	})
	select {
	case <-h.hsExit:
	case <-time.After(5 * time.Second):
		t.Fatal("handshake goroutine still running")
	}
}

// handshakeGoroutines counts goroutines running a tlsio handshake function.
func handshakeGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Count(buf, []byte("tlsio.(*stdConn).handshake("))
}

// TestCloseStopsHandshake: Close mid-handshake makes the handshake
// goroutine exit promptly and leaves none behind.
func TestCloseStopsHandshake(t *testing.T) {
	srv := newTestServer(t, ServerConfig{})
	before := handshakeGoroutines()
	for i := 0; i < 20; i++ {
		h := newHarness(t, srv, clientConfig(tls.VersionTLS13), nil, withHold())
		h.feedClientHello()
		h.waitFor("server flight", func() bool { return h.outBytes > 0 })
		// The goroutine now waits for the client's Finished.
		closeFrom := make(chan struct{})
		go func() { h.conn.Close(); close(closeFrom) }() // Close from another goroutine
		<-closeFrom
		select {
		case <-h.hsExit:
		case <-time.After(2 * time.Second):
			t.Fatal("handshake goroutine did not exit after Close")
		}
		h.conn.Close() // idempotent
		h.do(func() {
			if h.conn.State() != Closed || h.conn.HandshakeWork() != nil {
				t.Errorf("state %v after Close", h.conn.State())
			}
			if err := h.conn.Feed(h.now, []byte{1}); !errors.Is(err, ErrClosed) {
				t.Errorf("Feed after Close: %v", err)
			}
		})
	}
	if n := handshakeGoroutines(); n > before {
		t.Fatalf("%d handshake goroutines left (before: %d)", n, before)
	}

	// Close before the handshake started: no work is ever handed out.
	c := srv.NewConn(nil)
	c.Feed(time.Now(), []byte{22, 3, 1, 0, 1})
	c.Close()
	c.Feed(time.Now(), []byte{1})
	if c.HandshakeWork() != nil || c.State() != Closed {
		t.Fatal("handshake work after Close")
	}
}

// TestHandshakeWorkOnce: the function is handed out once, only once the
// first record is complete, and a second run is harmless.
func TestHandshakeWorkOnce(t *testing.T) {
	srv := newTestServer(t, ServerConfig{})
	c := srv.NewConn(nil)
	defer c.Close()
	rec := []byte{22, 3, 1, 0, 4, 1, 0, 0, 0}
	for i := 0; i < len(rec)-1; i++ {
		c.Feed(time.Now(), rec[i:i+1])
		if c.HandshakeWork() != nil {
			t.Fatalf("work before the first record is complete (%d bytes)", i+1)
		}
	}
	c.Feed(time.Now(), rec[len(rec)-1:])
	if srv.Engine() == EngineNative {
		// The native engine's function is only the signature of a full
		// handshake: an empty ClientHello fails at once, on the loop.
		var te *Error
		if c.HandshakeWork() != nil || !errors.As(c.Err(), &te) || te.Alert != AlertDecodeError {
			t.Fatalf("native: err %v", c.Err())
		}
		return
	}
	w := c.HandshakeWork()
	if w == nil || c.HandshakeWork() != nil {
		t.Fatal("want the handshake function exactly once")
	}
	c.FeedEOF(time.Now())
	w()
	w() // no-op
	if !c.Events().Has(Fatal) {
		t.Fatalf("events %v", c.Events())
	}
}

func TestSealBeforeHandshake(t *testing.T) {
	srv := newTestServer(t, ServerConfig{})
	c := srv.NewConn(nil)
	if _, err := c.Seal(nil, []byte("x")); !errors.Is(err, ErrHandshaking) {
		t.Fatalf("Seal: %v", err)
	}
	if out, ok := c.CloseNotify(nil); ok || len(out) != 0 {
		t.Fatal("CloseNotify before handshake")
	}
	if (c.Info() != Info{}) {
		t.Fatal("Info before handshake")
	}
}

func TestResumption(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			srv := newTestServer(t, ServerConfig{})
			cfg := clientConfig(v.v)
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			for i, want := range []bool{false, true} {
				h := newHarness(t, srv, cfg, nil)
				h.handshake()
				h.seal("x") // the client reads the ticket before it
				if _, err := h.clientRead(1); err != nil {
					t.Fatal(err)
				}
				var info Info
				h.do(func() { info = h.conn.Info() })
				if info.Resumed != want || h.client.ConnectionState().DidResume != want {
					t.Fatalf("conn %d: resumed %v, want %v", i, info.Resumed, want)
				}
			}
		})
	}
}

// TestTimeWiring shows that crypto/tls sees the time passed to Feed: a
// ticket issued at t0 is refused when the next handshake is fed t0 + 8
// days (crypto/tls's ticket lifetime is 7 days), though the real clock has
// not moved.
func TestTimeWiring(t *testing.T) {
	t0 := time.Now()
	for _, tc := range []struct {
		later time.Duration
		want  bool
	}{{time.Hour, true}, {8 * 24 * time.Hour, false}} {
		srv := newTestServer(t, ServerConfig{})
		cfg := clientConfig(tls.VersionTLS13)
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		h := newHarness(t, srv, cfg, nil, withNow(t0))
		h.handshake()
		h.seal("x")
		h.clientRead(1)
		// The client checks ticket age with its own clock; move it too.
		cfg.Time = func() time.Time { return t0.Add(tc.later) }
		h2 := newHarness(t, srv, cfg, nil, withNow(t0.Add(tc.later)))
		h2.handshake()
		var info Info
		h2.do(func() { info = h2.conn.Info() })
		if info.Resumed != tc.want {
			t.Fatalf("fed t0+%v: resumed %v, want %v", tc.later, info.Resumed, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	st, _ := NewCertStore(localPair(t))
	bad := []ServerConfig{
		{},
		{Certs: st, MinVersion: tls.VersionTLS11},
		{Certs: st, MaxVersion: 0x0305},
		{Certs: st, MinVersion: VersionTLS13, MaxVersion: VersionTLS12},
		{Certs: st, NextProtos: []string{""}},
	}
	for i, cfg := range bad {
		var ce *ConfigError
		if _, err := NewServer(cfg); !errors.As(err, &ce) {
			t.Errorf("%d: err %v", i, err)
		}
	}
}

// TestVersionBounds: a TLS 1.3-only server refuses a TLS 1.2 client and a
// TLS 1.2-only server negotiates 1.2 with a 1.3-capable client.
func TestVersionBounds(t *testing.T) {
	srv := newTestServer(t, ServerConfig{MaxVersion: VersionTLS12})
	cfg := clientConfig(tls.VersionTLS13)
	cfg.MinVersion = tls.VersionTLS12
	h := newHarness(t, srv, cfg, nil)
	h.handshake()
	if v := h.client.ConnectionState().Version; v != tls.VersionTLS12 {
		t.Fatalf("version %#x", v)
	}
	srv = newTestServer(t, ServerConfig{MinVersion: VersionTLS13})
	h = newHarness(t, srv, clientConfig(tls.VersionTLS12), nil)
	if err := timeout(t, "handshake", h.client.Handshake); err == nil {
		t.Fatal("TLS 1.2 client accepted by a 1.3-only server")
	}
	h.waitEvent(Fatal)
}

// TestAllocs guards the established hot paths: Seal into a big enough
// buffer, and Feed plus ReadPlaintext.
func TestAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("AllocsPerRun")
	}
	srv := newTestServer(t, ServerConfig{})
	h := newHarness(t, srv, clientConfig(tls.VersionTLS13), nil)
	h.handshake()
	payload := make([]byte, 1024)
	dst := make([]byte, 0, 64<<10)
	h.do(func() {
		for range 200 { // past dynamic record sizing's warm-up
			h.conn.Seal(dst[:0], payload)
		}
		if n := testing.AllocsPerRun(100, func() { h.conn.Seal(dst[:0], payload) }); n != 0 {
			t.Errorf("Seal: %v allocs/op", n)
		}
	})
	// Feed + ReadPlaintext of one 1 KiB record. crypto/tls allocates a
	// 24-byte reader per transport read (readFromUntil's atLeastReader):
	// two per Feed, one of them for the read that finds nothing more.
	h.do(func() { h.holding = true })
	var cts [][]byte
	for range 102 {
		h.client.Write(payload)
		h.waitFor("record", func() bool { return len(h.held) > 0 })
		h.do(func() { cts = append(cts, h.held); h.held = nil })
	}
	h.do(func() {
		pt := make([]byte, 0, 64<<10)
		i := 0
		n := testing.AllocsPerRun(100, func() {
			h.conn.Feed(h.now, cts[i])
			i++
			pt, _ = h.conn.ReadPlaintext(pt[:0])
		})
		if len(pt) != len(payload) || n > 2 {
			t.Errorf("Feed+ReadPlaintext: %v allocs/op, %d bytes", n, len(pt))
		}
	})
}

// TestCloseNotifyThenEOFInOneFeed: close_notify followed by the transport's
// EOF is a clean close, not an EOF without close_notify.
func TestCloseNotifyThenEOFInOneFeed(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			srv := newTestServer(t, ServerConfig{})
			h := newHarness(t, srv, clientConfig(v.v), nil)
			h.handshake()
			h.do(func() { h.holding = true })
			h.client.Write([]byte("data"))
			h.client.Close() // close_notify, then EOF
			h.waitFor("close_notify and EOF", func() bool { return h.heldEOF })
			h.do(func() {
				h.conn.Feed(h.now, h.held)
				h.conn.FeedEOF(h.now)
				h.pump()
			})
			var ev Events
			h.do(func() { ev = h.conn.Events() })
			if ev != HandshakeDone|PeerCloseNotify {
				t.Fatalf("events %v", ev)
			}
			h.waitPlain("data")
		})
	}
}
