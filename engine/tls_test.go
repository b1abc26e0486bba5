package engine

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/tlsio"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

type tlsFixture struct {
	srv  *tlsio.Server
	pool *x509.CertPool
	set  *metrics.Set
}

func newTLSFixture(t testing.TB) *tlsFixture {
	t.Helper()
	kp := testutil.SelfSigned(t)
	set := metrics.NewSet()
	srv := testutil.TLSServer(t, kp, tlsio.ServerConfig{CountError: TLSErrorCounter(set)})
	return &tlsFixture{srv: srv, pool: testutil.CertPool(kp), set: set}
}

func startTLSEngine(t testing.TB, f *tlsFixture, cfg Config, accept func(c *Conn) Handler) (*Engine, string) {
	t.Helper()
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	cfg.Metrics = f.set
	cfg.Listeners = []Listener{{Name: "tls", Addr: "127.0.0.1:0", Accept: accept, TLS: f.srv}}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(testCtx(t)) })
	return e, e.Addr("tls")
}

func (f *tlsFixture) dial(t testing.TB, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.RootCAs = f.pool
	cfg.ServerName = "localhost"
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// alpnEcho echoes and records what the handshake negotiated.
type alpnEcho struct {
	echo
	info chan tlsio.Info
}

func (h *alpnEcho) OnOpen(c *Conn) {
	in, ok := c.TLSInfo()
	if !ok || c.State() != diag.HandshakeDone {
		panic("OnOpen before the handshake completed")
	}
	h.info <- in
	h.echo.OnOpen(c)
}

func TestTLSEchoALPNAndCloseNotify(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		f := newTLSFixture(t)
		cl := newCloses()
		info := make(chan tlsio.Info, 1)
		e, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler {
			return &alpnEcho{echo: echo{cl: cl}, info: info}
		})
		c := f.dial(t, addr, &tls.Config{MinVersion: v, MaxVersion: v, NextProtos: []string{"h2", "http/1.1"}})
		c.Write([]byte("hello over tls"))
		buf := make([]byte, 14)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello over tls" {
			t.Fatalf("echo %q %v", buf, err)
		}
		in := <-info
		if in.Version != v || in.ALPN != "h2" || in.ServerName != "localhost" {
			t.Fatalf("info %+v", in)
		}
		snap, _ := e.Snapshot(testCtx(t))
		if len(snap.Conns) != 1 || snap.Conns[0].TLS == nil || snap.Conns[0].TLS.ALPN != "h2" || snap.Conns[0].TLS.Version != tls.VersionName(v) {
			t.Fatalf("snapshot TLS info %+v", snap.Conns)
		}
		if v == tls.VersionTLS13 && in.Group != uint16(tls.X25519MLKEM768) {
			t.Errorf("TLS 1.3 group %#x, want X25519MLKEM768", in.Group)
		}
		// The client half-closes with close_notify; the server closes with
		// its own close_notify, and the client reads a clean EOF.
		c.CloseWrite()
		if n, err := c.Read(buf); n != 0 || err != io.EOF {
			t.Fatalf("after close: %d %v", n, err)
		}
		c.Close()
		tr := cl.next(t, 5*time.Second)
		if tr.Outcome != diag.PeerClosed {
			t.Fatalf("outcome %v", tr.Outcome)
		}
		mustState(t, tr, diag.Handshake, diag.HandshakeDone, diag.DataTransfer, diag.ShutdownInitiated, diag.BufferFlushed, diag.CloseNotifySent, diag.WriteShut, diag.SocketClosed)
		if got := f.set.GetOrCreateCounter(`sluice_tls_handshakes_total{result="ok"}`).Get(); got != 1 {
			t.Fatalf("handshakes ok = %d", got)
		}
	}
}

// recordTap records the TLS record types the client receives.
type recordTap struct {
	net.Conn
	buf bytes.Buffer
}

func (r *recordTap) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.buf.Write(p[:n])
	return n, err
}

func (r *recordTap) types() []byte {
	b := r.buf.Bytes()
	var ts []byte
	for len(b) >= 5 {
		n := int(b[3])<<8 | int(b[4])
		if len(b) < 5+n {
			break
		}
		ts = append(ts, b[0])
		b = b[5+n:]
	}
	return ts
}

// In TLS 1.2 the record type of an alert is visible: the server's last
// record before its FIN must be close_notify's alert record (type 21).
func TestTLSCloseNotifyIsLastRecordBeforeFIN(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	_, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler {
		return &sender{cl: cl, total: 1 << 20}
	})
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tap := &recordTap{Conn: raw}
	c := tls.Client(tap, &tls.Config{RootCAs: f.pool, ServerName: "localhost", MaxVersion: tls.VersionTLS12})
	c.SetDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if err != nil || n != 1<<20 {
		t.Fatalf("read %d %v", n, err)
	}
	ts := tap.types()
	if len(ts) == 0 || ts[len(ts)-1] != 21 {
		t.Fatalf("last record type %v, want 21 (alert)", ts[max(0, len(ts)-3):])
	}
	c.Close()
	tr := cl.next(t, 5*time.Second)
	mustState(t, tr, diag.CloseNotifySent)
}

func TestTLSSlowReaderSHA256(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	const total = 8 << 20
	_, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler {
		return &sender{cl: cl, total: total, chunk: 5000}
	})
	c := f.dial(t, addr, nil)
	sum, n, err := slowRead(c, 32<<10, time.Millisecond, nil)
	if err != nil || n != total || sum != patternSum(total) {
		t.Fatalf("read %d, %v, sha ok=%v", n, err, sum == patternSum(total))
	}
	c.Close()
	if tr := cl.next(t, 5*time.Second); tr.Outcome != diag.Clean {
		t.Fatalf("outcome %v", tr.Outcome)
	}
}

// A handshake that starts (one byte of a ClientHello) and stalls is reset
// at the handshake timeout, counted from that byte.
func TestTLSHandshakeTimeout(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	_, addr := startTLSEngine(t, f, Config{HandshakeTimeout: 150 * time.Millisecond}, func(c *Conn) Handler {
		return &echo{cl: cl}
	})
	raw := dialT(t, addr)
	raw.Write([]byte{22}) // the start of a handshake record, then nothing
	tr := cl.next(t, 5*time.Second)
	if tr.Outcome != diag.HandshakeTimeout {
		t.Fatalf("outcome %v", tr.Outcome)
	}
	if d := time.Duration(tr.Entered[diag.SocketClosed] - tr.Entered[diag.Handshake]); d < 150*time.Millisecond {
		t.Fatalf("timed out after %v", d)
	}
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := raw.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read %v, want a reset", err)
	}
	if got := f.set.GetOrCreateCounter(`sluice_tls_handshakes_total{result="timeout"}`).Get(); got != 1 {
		t.Fatalf("timeouts %d", got)
	}
}

// A client that says nothing never enters Handshake, holds no handshake
// slot, and is reset at the first-byte timeout, counted as such.
func TestTLSFirstByteTimeout(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	e, addr := startTLSEngine(t, f, Config{FirstByteTimeout: 200 * time.Millisecond}, func(c *Conn) Handler {
		return &echo{cl: cl}
	})
	raw := dialT(t, addr) // never says hello
	if !waitFor(5*time.Second, func() bool { return e.LiveDownstream() == 1 }) {
		t.Fatal("connection never accepted")
	}
	if n := e.hsInFlight.Load(); n != 0 {
		t.Fatalf("a silent connection holds %d handshake slots", n)
	}
	snap, _ := e.Snapshot(testCtx(t))
	if len(snap.Conns) != 1 || snap.Conns[0].WaitingFor != "first_byte" || snap.Conns[0].State != "Created" {
		t.Fatalf("snapshot %+v, want one connection in Created waiting for its first byte", snap.Conns)
	}
	tr := cl.next(t, 5*time.Second)
	if tr.Outcome != diag.FirstByteTimeout || tr.Entered[diag.Handshake] != 0 {
		t.Fatalf("outcome %v, handshake at %d", tr.Outcome, tr.Entered[diag.Handshake])
	}
	if d := time.Duration(tr.Entered[diag.SocketClosed] - tr.Entered[diag.Created]); d < 200*time.Millisecond || d > 2*time.Second {
		t.Fatalf("closed after %v, want the 200ms first-byte timeout", d)
	}
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := raw.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read %v, want a reset", err)
	}
	if got := f.set.GetOrCreateCounter(`sluice_tls_handshakes_total{result="first_byte_timeout"}`).Get(); got != 1 {
		t.Fatalf("first_byte_timeout %d", got)
	}
	if got := f.set.GetOrCreateCounter(`sluice_connection_closes_total{outcome="first_byte_timeout"}`).Get(); got != 1 {
		t.Fatalf("closes first_byte_timeout %d", got)
	}
}

func TestPlainHTTPOnTLSPortGets400(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	_, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler { return &echo{cl: cl} })
	c := dialT(t, addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	resp, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !strings.HasPrefix(string(resp), "HTTP/1.1 400 ") || !strings.Contains(string(resp), "HTTPS") {
		t.Fatalf("response %q", resp)
	}
	tr := cl.next(t, 5*time.Second)
	if tr.Outcome != diag.TLSError {
		t.Fatalf("outcome %v", tr.Outcome)
	}
	if got := f.set.GetOrCreateCounter(`sluice_tls_errors_total{reason="not_tls"}`).Get(); got != 1 {
		t.Fatalf("not_tls count %d", got)
	}
}

func TestTLSGarbageGetsAlertThenClose(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	_, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler { return &echo{cl: cl} })
	c := dialT(t, addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// A handshake record header announcing a 2^14+2048+1 byte record: oversized.
	c.Write([]byte{22, 3, 1, 0x48, 0x01})
	c.Write(bytes.Repeat([]byte{0}, 64))
	resp, _ := io.ReadAll(c)
	c.Close()
	if len(resp) < 7 || resp[0] != 21 {
		t.Fatalf("want an alert record, got % x", resp)
	}
	if tr := cl.next(t, 5*time.Second); tr.Outcome != diag.TLSError || tr.Entered[diag.CloseNotifySent] != 0 {
		t.Fatalf("outcome %v close=%q", tr.Outcome, tr.CloseSequence())
	}
}

// At -max-handshakes the handshake that has gone longest without progress
// gives up its slot and the new client is served; silent connections hold
// no slot. One whose ClientHello is incomplete is parked, not closed, and
// gets a slot again when more bytes come.
func TestMaxHandshakesParksTheStalest(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	e, addr := startTLSEngine(t, f, Config{MaxHandshakes: 2}, func(c *Conn) Handler { return &echo{cl: cl} })
	for i := 0; i < 5; i++ {
		dialT(t, addr) // silent: no slot
	}
	stale := dialT(t, addr)
	stale.Write([]byte{22, 3, 1}) // a ClientHello starts, then stalls
	if !waitFor(5*time.Second, func() bool { return e.hsInFlight.Load() == 1 }) {
		t.Fatalf("%d handshakes in flight, want 1 (silent connections hold none)", e.hsInFlight.Load())
	}
	time.Sleep(50 * time.Millisecond)
	moving := dialT(t, addr)
	moving.Write([]byte{22})
	if !waitFor(5*time.Second, func() bool { return e.hsInFlight.Load() == 2 }) {
		t.Fatal("second handshake never started")
	}
	time.Sleep(50 * time.Millisecond)
	stale.Write([]byte{1}) // stale made progress last: moving is now the stalest
	time.Sleep(50 * time.Millisecond)
	good := f.dial(t, addr, nil) // needs a slot: the cap is reached
	good.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := good.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(good, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	waiting := func() map[string]string {
		snap, _ := e.Snapshot(testCtx(t))
		w := map[string]string{}
		for _, ci := range snap.Conns {
			w[ci.Remote] = ci.WaitingFor
		}
		return w
	}
	if w := waiting(); w[moving.LocalAddr().String()] != "handshake_slot" || w[stale.LocalAddr().String()] != "handshake" {
		t.Fatalf("moving waits for %q, stale for %q; want handshake_slot (parked) and handshake",
			w[moving.LocalAddr().String()], w[stale.LocalAddr().String()])
	}
	for _, c := range []net.Conn{moving, stale} {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: read %v, want it still open", c.LocalAddr(), err)
		}
	}
	// More bytes from the parked one: it takes the slot good's finished
	// handshake freed.
	moving.Write([]byte{3})
	if !waitFor(5*time.Second, func() bool { return waiting()[moving.LocalAddr().String()] == "handshake" }) {
		t.Fatal("the parked handshake did not get its slot back")
	}
	if n := e.hsInFlight.Load(); n != 2 {
		t.Fatalf("%d handshakes in flight, want 2", n)
	}
	for name, want := range map[string]uint64{
		`sluice_tls_handshakes_parked_total`:                        1,
		`sluice_tls_handshakes_total{result="evicted"}`:             0,
		`sluice_connections_evicted_total{reason="max_handshakes"}`: 0,
		`sluice_tls_handshakes_total{result="rejected"}`:            0,
	} {
		if got := f.set.GetOrCreateCounter(name).Get(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

// A handshake already under way (a whole ClientHello, answered, then
// nothing) that is the stalest at -max-handshakes is reset.
func TestMaxHandshakesEvictsAStalledHandshake(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	e, addr := startTLSEngine(t, f, Config{MaxHandshakes: 1}, func(c *Conn) Handler { return &echo{cl: cl} })
	stalled := dialT(t, addr)
	stalled.Write(clientHello(t))
	stalled.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := stalled.Read(make([]byte, 1)); err != nil { // the server's flight
		t.Fatal(err)
	}
	if n := e.hsInFlight.Load(); n != 1 {
		t.Fatalf("%d handshakes in flight, want 1", n)
	}
	good := f.dial(t, addr, nil)
	good.SetDeadline(time.Now().Add(5 * time.Second))
	good.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(good, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	if _, err := io.Copy(io.Discard, stalled); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("stalled handshake: %v, want a reset", err)
	}
	tr := cl.next(t, 5*time.Second)
	if tr.Outcome != diag.Evicted || tr.Entered[diag.Handshake] == 0 {
		t.Fatalf("outcome %v, want evicted after Handshake", tr.Outcome)
	}
	for name, want := range map[string]uint64{
		`sluice_tls_handshakes_total{result="evicted"}`:             1,
		`sluice_connections_evicted_total{reason="max_handshakes"}`: 1,
		`sluice_connection_closes_total{outcome="evicted"}`:         1,
		`sluice_tls_handshakes_parked_total`:                        0,
	} {
		if got := f.set.GetOrCreateCounter(name).Get(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

// At -max-conns the oldest connection that has sent nothing is evicted and
// the new client is served; with none waiting, a new one is rejected.
func TestMaxConnsEvictsTheOldestSilent(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	e, addr := startTLSEngine(t, f, Config{MaxConns: 3}, func(c *Conn) Handler { return &echo{cl: cl} })
	oldest := dialT(t, addr)
	if !waitFor(5*time.Second, func() bool { return e.Live() == 1 }) {
		t.Fatal("not accepted")
	}
	time.Sleep(20 * time.Millisecond)
	s1, s2 := dialT(t, addr), dialT(t, addr)
	if !waitFor(5*time.Second, func() bool { return e.Live() == 3 }) {
		t.Fatal("not accepted")
	}
	good := f.dial(t, addr, nil)
	good.SetDeadline(time.Now().Add(5 * time.Second))
	good.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(good, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	oldest.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := oldest.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("oldest silent connection: read %v, want a reset", err)
	}
	if tr := cl.next(t, 5*time.Second); tr.Outcome != diag.Evicted {
		t.Fatalf("outcome %v, want evicted", tr.Outcome)
	}
	// Fill the rest with connections past their handshakes: nothing is
	// left to evict, so a new client is refused.
	s1.Close()
	s2.Close()
	if !waitFor(5*time.Second, func() bool { return e.Live() == 1 }) {
		t.Fatal("silent connections not gone")
	}
	for e.Live() < 3 {
		c := f.dial(t, addr, nil)
		c.Write([]byte("x"))
		io.ReadFull(c, buf[:1])
	}
	if !waitFor(5*time.Second, func() bool {
		snap, _ := e.Snapshot(testCtx(t))
		for _, ci := range snap.Conns {
			if ci.WaitingFor != "" {
				return false
			}
		}
		return len(snap.Conns) == 3
	}) {
		t.Fatal("connections still waiting")
	}
	second, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		defer second.Close()
		second.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = second.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection over the cap: %v, want a reset", err)
	}
	if !waitFor(5*time.Second, func() bool {
		return f.set.GetOrCreateCounter(`sluice_connection_closes_total{outcome="rejected"}`).Get() == 1
	}) {
		t.Fatal("rejected close not counted")
	}
	for name, want := range map[string]uint64{
		`sluice_tls_handshakes_total{result="evicted"}`:         1,
		`sluice_connections_evicted_total{reason="max_conns"}`:  1,
		`sluice_connections_rejected_total{reason="max_conns"}`: 1,
	} {
		if got := f.set.GetOrCreateCounter(name).Get(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

// A client's close_notify is a half-close: the response owed still arrives.
func TestTLSPeerCloseNotifyIsHalfClose(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	const total = 2 << 20
	_, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler {
		return &lateResponder{cl: cl, total: total}
	})
	c := f.dial(t, addr, nil)
	c.Write([]byte("request"))
	c.CloseWrite() // sends close_notify, keeps the TCP connection
	sum, n, err := slowRead(c, 64<<10, 0, nil)
	if err != nil || n != total || sum != patternSum(total) {
		t.Fatalf("read %d %v", n, err)
	}
	c.Close()
	if tr := cl.next(t, 5*time.Second); tr.Outcome != diag.Clean {
		t.Fatalf("outcome %v close=%q", tr.Outcome, tr.CloseSequence())
	}
}

// Bad input on some connections never disturbs the others.
func TestTLSBadInputDoesNotDisturbOthers(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	_, addr := startTLSEngine(t, f, Config{MaxHandshakes: 8, HandshakeTimeout: 300 * time.Millisecond},
		func(c *Conn) Handler { return &echo{cl: cl} })
	good := f.dial(t, addr, nil)
	echoTLS := func(msg string) {
		t.Helper()
		good.Write([]byte(msg))
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(good, buf); err != nil || string(buf) != msg {
			t.Fatalf("good connection broken: %q %v", buf, err)
		}
	}
	echoTLS("before")
	var bad []net.Conn
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			continue // over the cap: reset at once
		}
		bad = append(bad, c)
		switch i % 3 {
		case 0:
			c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		case 1:
			c.Write([]byte{22, 3, 1, 0xff, 0xff, 1, 2, 3})
		case 2: // silent: holds no handshake slot
		}
		echoTLS("during")
	}
	time.Sleep(400 * time.Millisecond) // past the handshake timeout
	echoTLS("after")
	for _, c := range bad {
		c.Close()
	}
}

// Many round trips on one connection: plaintext delivered to the handler and
// records it seals while reading must never share a buffer.
func TestTLSEchoManyRoundTrips(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	_, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler { return &echo{cl: cl} })
	c := f.dial(t, addr, nil)
	for i := 0; i < 200; i++ {
		msg := bytes.Repeat([]byte{byte('a' + i%26)}, 1+i*97%20000)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("round trip %d corrupted", i)
		}
	}
}

// A client that floods bytes during its handshake is cut off, not buffered:
// crypto/tls rejects the records; while the handshake goroutine lags
// behind, reads pause at the engine's maxHandshakeInput until it does.
func TestTLSHandshakeInputIsBounded(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	_, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler { return &echo{cl: cl} })
	c := dialT(t, addr)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// A valid-looking handshake record header, then endless payload.
	hdr := []byte{22, 3, 1, 0x40, 0x00}
	junk := bytes.Repeat([]byte{0x01}, 0x4000)
	go func() {
		defer c.Close()
		for i := 0; i < 64; i++ {
			if _, err := c.Write(hdr); err != nil {
				return
			}
			if _, err := c.Write(junk); err != nil {
				return
			}
		}
	}()
	tr := cl.next(t, 5*time.Second)
	// The flooding client closes with our alert unread, so its RST may win.
	// (BytesIn goes on counting what the linger phase reads and discards.)
	if tr.Outcome != diag.TLSError && tr.Outcome != diag.ResetByPeer {
		t.Fatalf("outcome %v after %d bytes", tr.Outcome, tr.BytesIn)
	}
	if tr.Entered[diag.HandshakeDone] != 0 {
		t.Fatal("a flood completed a handshake")
	}
}

// splitEcho answers each read with three small writes.
type splitEcho struct{ echo }

func (h *splitEcho) OnData(c *Conn, b []byte) int {
	c.Write([]byte("HTTP/1.1 200 OK\r\n"))
	c.Write([]byte("Content-Length: 2\r\n\r\n"))
	c.Write([]byte("ok"))
	return len(b)
}

// Small writes of one callback are sealed together: one record, not three.
func TestTLSSmallWritesShareARecord(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	_, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler { return &splitEcho{echo{cl: cl}} })
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tap := &recordTap{Conn: raw}
	c := tls.Client(tap, &tls.Config{RootCAs: f.pool, ServerName: "localhost", MaxVersion: tls.VersionTLS12})
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	before := len(tap.types())
	c.Write([]byte("x"))
	want := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("%q %v", got, err)
	}
	if recs := tap.types()[before:]; len(recs) != 1 || recs[0] != 23 {
		t.Fatalf("response records %v, want one application_data record", recs)
	}
}
