package engine

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/diag"
)

// clientHello returns the first flight of a crypto/tls client: a real
// ClientHello record, as a partial-handshake attacker would start one.
func clientHello(t testing.TB) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		tc := tls.Client(a, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		_ = tc.Handshake() // fails when b closes
	}()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// needFDs makes sure the process may open n more descriptors (Go raises the
// soft limit to the hard one at start-up; this says so if it could not).
func needFDs(t testing.TB, n int) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	want := uint64(openFDs(t) + n)
	if lim.Cur < want && lim.Max >= want {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
	if lim.Cur < want {
		t.Fatalf("this test needs %d open files; RLIMIT_NOFILE is %d (hard %d)", want, lim.Cur, lim.Max)
	}
}

// Issue #9, attack 1: 1,100 connections that send nothing plus 1,100 that
// send half a ClientHello and stall, against the defaults (1,024
// handshakes, 5s first-byte timeout). Real TLS clients still complete a
// request within a second each; the silent sockets are reset at their
// first-byte deadline, not before; the partial handshakes over the cap are
// parked (no slot, still open). Before admission, every accepted socket
// took a handshake slot at once and the 1,025th was reset.
func TestSilentAndPartialHandshakeFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("2,200 connections held for 5s")
	}
	const silentN, partialN, goodN = 1100, 1100, 10
	needFDs(t, 2*(silentN+partialN+goodN)+100)
	f := newTLSFixture(t)
	closed := make(chan diag.Trace, 2*(silentN+partialN+goodN))
	e, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler {
		return &echo{cl: &closes{ch: closed}}
	})
	cfg := e.Config()
	hello := clientHello(t)
	partial := hello[:len(hello)/2]

	var silent, partials []net.Conn
	t.Cleanup(func() {
		for _, c := range append(silent, partials...) {
			c.Close()
		}
	})
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	silentStart := time.Now()
	for i := 0; i < silentN; i++ {
		silent = append(silent, dial())
	}
	for i := 0; i < partialN; i++ {
		c := dial()
		if _, err := c.Write(partial); err != nil {
			t.Fatal(err)
		}
		partials = append(partials, c)
	}
	over := uint64(partialN - cfg.MaxHandshakes)
	parked := f.set.GetOrCreateCounter(`sluice_tls_handshakes_parked_total`)
	if !waitFor(5*time.Second, func() bool {
		return e.LiveDownstream() == silentN+partialN && parked.Get() == over
	}) {
		t.Fatalf("%d connections, %d handshakes in flight, %d parked; want %d, %d, %d",
			e.LiveDownstream(), e.hsInFlight.Load(), parked.Get(), silentN+partialN, cfg.MaxHandshakes, over)
	}
	if n := e.hsInFlight.Load(); n != int64(cfg.MaxHandshakes) {
		t.Fatalf("%d handshakes in flight, want %d: silent sockets must hold none", n, cfg.MaxHandshakes)
	}
	if time.Since(silentStart) > cfg.FirstByteTimeout-time.Second {
		t.Fatalf("setting up the flood took %v: too slow to see the deadline", time.Since(silentStart))
	}

	for i := 0; i < goodN; i++ {
		start := time.Now()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{RootCAs: f.pool, ServerName: "localhost"})
		if err != nil {
			t.Fatalf("client %d during the flood: %v", i, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("ping"))
		buf := make([]byte, 4)
		_, err = io.ReadFull(c, buf)
		c.Close()
		if d := time.Since(start); err != nil || string(buf) != "ping" || d > time.Second {
			t.Fatalf("client %d during the flood: %q, %v after %v; want its echo within 1s", i, buf, err, d)
		}
	}
	// The first real client parked the stalest partial; the others found
	// the slot it freed. Nothing was reset to make room.
	if got := parked.Get(); got != over+1 {
		t.Errorf("%d handshakes parked, want %d", got, over+1)
	}
	if got := f.set.GetOrCreateCounter(`sluice_connections_evicted_total{reason="max_handshakes"}`).Get(); got != 0 {
		t.Errorf("%d handshakes evicted, want 0: partial ClientHellos are parked", got)
	}

	// Every silent socket is reset at its first-byte deadline.
	for i, c := range silent {
		c.SetReadDeadline(silentStart.Add(cfg.FirstByteTimeout + 3*time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("silent socket %d: read %v, want a reset at the first-byte deadline", i, err)
		}
	}
	var firstByte int
	for wait := time.After(5 * time.Second); firstByte < silentN; {
		var tr diag.Trace
		select {
		case tr = <-closed:
		case <-wait:
			t.Fatalf("%d first-byte timeouts, want %d", firstByte, silentN)
		}
		switch tr.Outcome {
		case diag.FirstByteTimeout:
			firstByte++
			// Scheduled at accept + FirstByteTimeout; a loop that fires
			// 1,100 of them at once resets them all within well under 1s.
			if d := time.Duration(tr.Entered[diag.SocketClosed] - tr.Entered[diag.Created]); d < cfg.FirstByteTimeout || d > cfg.FirstByteTimeout+time.Second {
				t.Errorf("%s reset after %v, want the %v deadline", diag.ConnID(tr.ID), d, cfg.FirstByteTimeout)
			}
		default: // the real clients' connections
			if tr.BytesIn == int64(len(partial)) {
				t.Errorf("%s, a partial ClientHello, closed (%v) before its handshake deadline", diag.ConnID(tr.ID), tr.Outcome)
			}
		}
	}
	if got := f.set.GetOrCreateCounter(`sluice_tls_handshakes_total{result="first_byte_timeout"}`).Get(); got != silentN {
		t.Errorf("tls first_byte_timeout %d, want %d", got, silentN)
	}
	// Every partial handshake is still open, in a slot or parked, until
	// its handshake deadline (10s from its first byte).
	if n := e.hsInFlight.Load(); n != int64(cfg.MaxHandshakes)-1 {
		t.Errorf("%d handshakes in flight after the silent resets, want %d", n, cfg.MaxHandshakes-1)
	}
	if n := e.LiveDownstream(); n != partialN {
		t.Errorf("%d connections open after the silent resets, want the %d partial handshakes", n, partialN)
	}
}

// Behind a balancer: the PROXY header ends the first wait, and the TLS
// client behind it gets its own first-byte deadline; at -max-conns a
// connection still owing its header is evicted first.
func TestProxyProtocolWaits(t *testing.T) {
	f := newTLSFixture(t)
	e, addr, _ := ppEngine(t, Config{FirstByteTimeout: 300 * time.Millisecond, MaxConns: 2, Metrics: f.set}, f.srv)
	hdr := ppV2TCP4([4]byte{198, 51, 100, 7}, [4]byte{10, 0, 0, 1}, 4000, 443, nil)

	quiet := dialT(t, addr)
	quiet.Write(hdr) // the header, then a client that says nothing
	start := time.Now()
	quiet.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := quiet.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("silent client behind the header: read %v, want a reset", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("reset after %v, before its own first-byte deadline", d)
	}
	if got := f.set.GetOrCreateCounter(`sluice_tls_handshakes_total{result="first_byte_timeout"}`).Get(); got != 1 {
		t.Fatalf("tls first_byte_timeout %d, want 1", got)
	}

	// MaxConns 2: a connection with half a header is evicted for a new one.
	half := dialT(t, addr)
	half.Write(hdr[:10])
	if !waitFor(5*time.Second, func() bool { return e.LiveDownstream() == 1 }) {
		t.Fatal("not accepted")
	}
	busy := dialT(t, addr)
	busy.Write(hdr)
	tc := tls.Client(busy, &tls.Config{InsecureSkipVerify: true})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	next := dialT(t, addr) // the third: over MaxConns
	next.Write(hdr)
	tn := tls.Client(next, &tls.Config{InsecureSkipVerify: true})
	tn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tn.Handshake(); err != nil {
		t.Fatalf("new connection at -max-conns: %v", err)
	}
	half.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := half.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("half a header: read %v, want a reset (evicted)", err)
	}
	for name, want := range map[string]uint64{
		`sluice_proxy_protocol_headers_total{result="evicted"}`: 1,
		`sluice_connections_evicted_total{reason="max_conns"}`:  1,
		`sluice_connections_rejected_total{reason="max_conns"}`: 0,
	} {
		if got := f.set.GetOrCreateCounter(name).Get(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

// A cleartext ClientFirst listener: a silent connection has no first-byte
// deadline (the handler's own apply) but is evicted first at -max-conns.
func TestClientFirstPlainEvictsSilent(t *testing.T) {
	cl := newCloses()
	set := metrics.NewSet()
	e, err := New(Config{Loops: 2, MaxConns: 2, FirstByteTimeout: 100 * time.Millisecond, Metrics: set, Logger: testLogger(t),
		Listeners: []Listener{{Name: "plain", Addr: "127.0.0.1:0", ClientFirst: true,
			Accept: func(c *Conn) Handler { return &echo{cl: cl} }}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(testCtx(t)) })
	addr := e.Addr("plain")
	silent := dialT(t, addr)
	talker := dialT(t, addr)
	talker.SetDeadline(time.Now().Add(5 * time.Second))
	talker.Write([]byte("a"))
	io.ReadFull(talker, make([]byte, 1))
	time.Sleep(300 * time.Millisecond) // past FirstByteTimeout: not for cleartext
	if n := e.LiveDownstream(); n != 2 {
		t.Fatalf("%d connections, want both: cleartext has no first-byte deadline", n)
	}
	third := dialT(t, addr)
	third.SetDeadline(time.Now().Add(5 * time.Second))
	third.Write([]byte("b"))
	if _, err := io.ReadFull(third, make([]byte, 1)); err != nil {
		t.Fatalf("new connection at -max-conns: %v", err)
	}
	silent.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("silent connection: read %v, want a reset (evicted)", err)
	}
	if tr := cl.next(t, 5*time.Second); tr.Outcome != diag.Evicted {
		t.Fatalf("outcome %v, want evicted", tr.Outcome)
	}
	talker.Write([]byte("c"))
	if _, err := io.ReadFull(talker, make([]byte, 1)); err != nil {
		t.Fatalf("the connection that had spoken: %v", err)
	}
}
