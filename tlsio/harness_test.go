package tlsio

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// ---- test certificates ----

// testPEM is a generated certificate and key in PEM form.
type testPEM struct{ cert, key []byte }

// makePEM creates a self-signed certificate for names with the given key.
// keyFormat is "pkcs1", "sec1" or "pkcs8".
func makePEM(t testing.TB, key any, keyFormat string, names ...string) testPEM {
	t.Helper()
	var pub any
	switch k := key.(type) {
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	case ed25519.PrivateKey:
		pub = k.Public()
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(mrand.Int64N(1<<62) + 1),
		Subject:               pkix.Name{CommonName: names[0]},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	var kb []byte
	var typ string
	switch keyFormat {
	case "pkcs1":
		kb, typ = x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey)), "RSA PRIVATE KEY"
	case "sec1":
		kb, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
		typ = "EC PRIVATE KEY"
	default:
		kb, err = x509.MarshalPKCS8PrivateKey(key)
		typ = "PRIVATE KEY"
	}
	if err != nil {
		t.Fatal(err)
	}
	return testPEM{
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: kb}),
	}
}

var (
	rsaKeyOnce sync.Once
	rsaKey     *rsa.PrivateKey
)

func testRSAKey(t testing.TB) *rsa.PrivateKey {
	rsaKeyOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func testECKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustPair(t testing.TB, p testPEM) *KeyPair {
	t.Helper()
	k, err := ParseKeyPair(p.cert, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ecPair returns an ECDSA pair for names.
func ecPair(t testing.TB, names ...string) *KeyPair {
	return mustPair(t, makePEM(t, testECKey(t), "pkcs8", names...))
}

var (
	defaultPairOnce sync.Once
	defaultPair     *KeyPair
)

// localPair is a shared ECDSA pair for "localhost" and "example.test".
func localPair(t testing.TB) *KeyPair {
	defaultPairOnce.Do(func() {
		defaultPair = ecPair(t, "localhost", "example.test")
	})
	return defaultPair
}

// pool returns a root pool trusting the pairs' leaves.
func pool(pairs ...*KeyPair) *x509.CertPool {
	p := x509.NewCertPool()
	for _, k := range pairs {
		p.AddCert(k.Leaf())
	}
	return p
}

func newTestServer(t testing.TB, cfg ServerConfig, pairs ...*KeyPair) *Server {
	t.Helper()
	if len(pairs) == 0 {
		pairs = []*KeyPair{localPair(t)}
	}
	if cfg.Certs == nil {
		st, err := NewCertStore(pairs...)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certs = st
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func clientConfig(version uint16, roots ...*KeyPair) *tls.Config {
	if len(roots) == 0 {
		roots = []*KeyPair{defaultPair}
	}
	return &tls.Config{
		RootCAs:    pool(roots...),
		ServerName: "localhost",
		MinVersion: version,
		MaxVersion: version,
		NextProtos: []string{"h2", "http/1.1"},
	}
}

// ---- the client's in-memory transport ----

// clientConn is the client's end: its writes go to the harness loop as
// chunks, and its reads see what the loop delivers, at most readMax bytes
// per Read.
type clientConn struct {
	toServer chan []byte
	wmu      sync.Mutex // guards wclosed, capture and sends on toServer
	capture  *[]byte    // if set, writes append here instead (benchmarks)

	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte
	eof     bool
	closed  bool
	wclosed bool
	readMax func() int
}

func newClientConn(readMax func() int) *clientConn {
	cc := &clientConn{toServer: make(chan []byte, 256), readMax: readMax}
	cc.cond.L = &cc.mu
	return cc
}

func (cc *clientConn) Write(p []byte) (int, error) {
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	if cc.wclosed {
		return 0, net.ErrClosed
	}
	if cc.capture != nil {
		*cc.capture = append(*cc.capture, p...)
		return len(p), nil
	}
	cc.toServer <- append([]byte(nil), p...)
	return len(p), nil
}

func (cc *clientConn) Read(p []byte) (int, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for len(cc.buf) == 0 && !cc.eof && !cc.closed {
		cc.cond.Wait()
	}
	switch {
	case cc.closed:
		return 0, net.ErrClosed
	case len(cc.buf) == 0:
		return 0, io.EOF
	}
	n := len(p)
	if cc.readMax != nil {
		n = min(n, cc.readMax())
	}
	n = copy(p[:n], cc.buf)
	cc.buf = cc.buf[n:]
	return n, nil
}

// closeWrite ends the client's direction with a bare EOF (a FIN).
func (cc *clientConn) closeWrite() {
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	if !cc.wclosed {
		cc.wclosed = true
		close(cc.toServer)
	}
}

func (cc *clientConn) Close() error {
	cc.closeWrite()
	cc.mu.Lock()
	cc.closed = true
	cc.cond.Broadcast()
	cc.mu.Unlock()
	return nil
}

func (cc *clientConn) deliver(b []byte) {
	cc.mu.Lock()
	cc.buf = append(cc.buf, b...)
	cc.cond.Broadcast()
	cc.mu.Unlock()
}

func (cc *clientConn) deliverEOF() {
	cc.mu.Lock()
	cc.eof = true
	cc.cond.Broadcast()
	cc.mu.Unlock()
}

func (cc *clientConn) LocalAddr() net.Addr              { return memAddr{} }
func (cc *clientConn) RemoteAddr() net.Addr             { return memAddr{} }
func (cc *clientConn) SetDeadline(time.Time) error      { return nil }
func (cc *clientConn) SetReadDeadline(time.Time) error  { return nil }
func (cc *clientConn) SetWriteDeadline(time.Time) error { return nil }

// ---- fragmentation policies ----

func fragWhole() int { return 1 << 30 }
func fragOne() int   { return 1 }
func fragRandom(seed uint64) func() int {
	r := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var mu sync.Mutex
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return 1 + r.IntN(300)
	}
}

// ---- the harness: a goroutine that plays the event loop ----

type harness struct {
	t      testing.TB
	srv    *Server
	conn   Conn
	cc     *clientConn
	client *tls.Conn

	wake   chan struct{}
	cmds   chan func()
	stop   chan struct{}
	done   chan struct{}
	hsExit chan struct{} // closed when the handshake function returns

	// Loop-owned.
	frag     func() int
	now      time.Time
	plain    []byte
	readErr  error
	feedErr  error
	feeds    int
	holding  bool
	held     []byte
	heldEOF  bool
	hsRun    bool
	autoEOF  bool // tell the client EOF once the server is Closed
	sentEOF  bool
	outBytes int
}

type harnessOpt func(*harness)

func withFrag(f func() int) harnessOpt { return func(h *harness) { h.frag = f } }
func withNow(t time.Time) harnessOpt   { return func(h *harness) { h.now = t } }

// withHold holds client bytes from the start (see feedClientHello).
func withHold() harnessOpt { return func(h *harness) { h.holding = true } }

// feedClientHello starts the client's handshake in the background, feeds
// its first flight to the server and keeps holding what follows. The
// harness must have been made withHold. It returns the client's result.
func (h *harness) feedClientHello() <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- h.client.Handshake() }()
	h.waitFor("ClientHello", func() bool { return len(h.held) > 0 })
	h.do(func() {
		first := h.held
		h.held = nil
		h.feed(first)
	})
	return ch
}

// newHarness starts a loop for a new Conn of srv and a crypto/tls client
// (not yet handshaking) with cfg. readMax limits the client's reads.
func newHarness(t testing.TB, srv *Server, cfg *tls.Config, readMax func() int, opts ...harnessOpt) *harness {
	h := &harness{
		t:       t,
		srv:     srv,
		wake:    make(chan struct{}, 1),
		cmds:    make(chan func()),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		hsExit:  make(chan struct{}),
		frag:    fragWhole,
		now:     time.Now(),
		autoEOF: true,
	}
	for _, o := range opts {
		o(h)
	}
	h.conn = srv.NewConn(func() {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	})
	h.cc = newClientConn(readMax)
	h.client = tls.Client(h.cc, cfg)
	go h.loop()
	t.Cleanup(h.shutdown)
	return h
}

func (h *harness) shutdown() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
	h.conn.Close()
	h.cc.Close()
	if h.hsRun {
		select {
		case <-h.hsExit:
		case <-time.After(5 * time.Second):
			h.t.Errorf("handshake goroutine did not exit after Close")
		}
	}
}

func (h *harness) loop() {
	defer close(h.done)
	in := h.cc.toServer
	for {
		select {
		case b, ok := <-in:
			if !ok {
				in = nil
				if h.holding {
					h.heldEOF = true
				} else {
					h.conn.FeedEOF(h.now)
				}
			} else if h.holding {
				h.held = append(h.held, b...)
			} else {
				h.feed(b)
			}
		case <-h.wake:
		case f := <-h.cmds:
			f()
		case <-h.stop:
			return
		}
		h.pump()
	}
}

// feed gives b to the Conn in pieces chosen by frag, pumping after each.
func (h *harness) feed(b []byte) {
	for len(b) > 0 {
		n := min(len(b), h.frag())
		h.feeds++
		if err := h.conn.Feed(h.now, b[:n]); err != nil && h.feedErr == nil {
			h.feedErr = err
		}
		b = b[n:]
		h.pump()
	}
}

// afterEvent is what a loop does with a Conn after any event: output to
// send, plaintext to read. The state is read before the output is taken
// (as the engine does): everything the handshake function wrote before it
// ended (a failure's alert) is then in the output, so it goes out ahead of
// any EOF the caller sends once closed is true.
func afterEvent(c Conn, output func(), plain []byte) ([]byte, bool, error) {
	closed := c.State() == Closed
	output()
	plain, err := c.ReadPlaintext(plain)
	if !closed && c.State() == Closed {
		closed = true
		output()
	}
	return plain, closed, err
}

// pump does what an event loop does after any event on the Conn.
func (h *harness) pump() {
	if w := h.conn.HandshakeWork(); w != nil {
		h.hsRun = true
		go func() {
			defer close(h.hsExit)
			w()
		}()
	}
	var closed bool
	h.plain, closed, h.readErr = afterEvent(h.conn, h.output, h.plain)
	if h.autoEOF && !h.sentEOF && closed {
		h.sentEOF = true
		h.cc.deliverEOF()
	}
}

func (h *harness) output() {
	if out := h.conn.AppendOutput(nil); len(out) > 0 {
		h.outBytes += len(out)
		h.cc.deliver(out)
	}
}

// do runs f on the loop and waits for it.
func (h *harness) do(f func()) {
	done := make(chan struct{})
	select {
	case h.cmds <- func() { f(); close(done) }:
	case <-h.done:
		h.t.Fatal("harness loop has stopped")
	}
	<-done
}

// waitFor polls cond on the loop until it holds.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ok bool
		h.do(func() { ok = cond() })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var ev Events
			var err error
			h.do(func() { ev, err = h.conn.Events(), h.conn.Err() })
			h.t.Fatalf("timed out waiting for %s (events %v, err %v)", what, ev, err)
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) waitEvent(e Events) {
	h.t.Helper()
	h.waitFor(e.String(), func() bool { return h.conn.Events().Has(e) })
}

// handshake runs the client's handshake and waits for the server's.
func (h *harness) handshake() {
	h.t.Helper()
	if err := timeout(h.t, "client handshake", h.client.Handshake); err != nil {
		h.t.Fatalf("client handshake: %v", err)
	}
	h.waitEvent(HandshakeDone)
}

// plainText returns and clears what the server has decrypted so far.
func (h *harness) takePlain() []byte {
	var p []byte
	h.do(func() { p, h.plain = h.plain, nil })
	return p
}

// waitPlain waits until the server has decrypted want, then clears it.
func (h *harness) waitPlain(want string) {
	h.t.Helper()
	h.waitFor("plaintext "+want, func() bool { return len(h.plain) >= len(want) })
	if got := string(h.takePlain()); got != want {
		h.t.Fatalf("server got %q, want %q", got, want)
	}
}

// seal encrypts p on the loop and delivers it to the client.
func (h *harness) seal(p string) {
	h.t.Helper()
	var err error
	h.do(func() {
		var out []byte
		out, err = h.conn.Seal(nil, []byte(p))
		h.cc.deliver(out)
	})
	if err != nil {
		h.t.Fatalf("Seal: %v", err)
	}
}

// clientRead reads exactly n bytes on the client.
func (h *harness) clientRead(n int) ([]byte, error) {
	buf := make([]byte, n)
	var got int
	err := timeout(h.t, "client read", func() error {
		var err error
		got, err = io.ReadFull(h.client, buf)
		return err
	})
	return buf[:got], err
}

// timeout runs f, failing the test if it takes more than 10 s.
func timeout(t testing.TB, what string, f func() error) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: timed out", what)
		return errors.New("unreachable")
	}
}
