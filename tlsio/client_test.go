package tlsio

// Tests for the client role: a tlsio client Conn, driven by a small event
// loop (clientHarness), against a real crypto/tls server running over an
// in-memory link on goroutines of its own.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clientWait bounds every wait in these tests.
const clientWait = 5 * time.Second

// ---- certificates: a CA and leaves it issues ----

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool // trusts only this CA
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: p}
}

// leaf issues a server certificate for names, valid for 30 days.
func (ca *testCA) leaf(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// peerServerConfig is the crypto/tls server's configuration.
func peerServerConfig(cert tls.Certificate, maxVersion uint16) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   maxVersion,
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

func mustClient(t testing.TB, cfg ClientConfig) *Client {
	t.Helper()
	cl, err := NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return cl
}

// reasonLog records CountError calls (made on the loop goroutine).
type reasonLog struct {
	mu      sync.Mutex
	reasons []string
}

func (l *reasonLog) add(r string) {
	l.mu.Lock()
	l.reasons = append(l.reasons, r)
	l.mu.Unlock()
}

func (l *reasonLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.reasons)
}

// ---- the client-side harness ----

// clientHarness plays the event loop of a tlsio client Conn. The peer's end
// of the in-memory link is a clientConn (see harness_test.go): what the peer
// writes reaches the loop, which feeds it to the Conn; what the Conn
// outputs the loop delivers to the peer's reads.
type clientHarness struct {
	t    testing.TB
	conn Conn
	pc   *clientConn // the peer's end of the link
	peer *tls.Conn   // the crypto/tls server, once startPeer was called

	wake   chan struct{}
	cmds   chan func()
	stop   chan struct{}
	done   chan struct{}
	hsExit chan struct{} // closed when the handshake function returns
	peers  sync.WaitGroup
	closed atomic.Bool  // Close was called by the test
	wakes  atomic.Int32 // wake calls after closed was set

	// Loop-owned.
	frag    func() int
	now     time.Time
	filter  func([]byte) ([]byte, bool) // rewrites peer chunks; true means EOF after
	plain   []byte
	readErr error
	wire    []byte // everything the Conn output
	hsRun   bool
	sentEOF bool
	waiters []clientWaiter
}

type clientWaiter struct {
	cond func() bool
	ch   chan struct{}
}

type clientOpt func(*clientHarness)

// withClientFrag cuts what the peer sends into pieces of frag() bytes before
// Feed, and limits the peer's reads to frag() bytes too.
func withClientFrag(f func() int) clientOpt { return func(h *clientHarness) { h.frag = f } }

// withClientNow sets the time passed to Feed and FeedEOF.
func withClientNow(t time.Time) clientOpt { return func(h *clientHarness) { h.now = t } }

// withPeerFilter passes each chunk the peer writes through f before Feed;
// when f says so, the loop then reports EOF and ignores later chunks.
func withPeerFilter(f func([]byte) ([]byte, bool)) clientOpt {
	return func(h *clientHarness) { h.filter = f }
}

// newClientHarness makes a Conn of cl and starts its loop, which starts the
// handshake at once: the ClientHello is delivered to the peer's end.
func newClientHarness(t testing.TB, cl *Client, opts ...clientOpt) *clientHarness {
	h := &clientHarness{
		t:      t,
		wake:   make(chan struct{}, 1),
		cmds:   make(chan func()),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		hsExit: make(chan struct{}),
		frag:   fragWhole,
		now:    time.Now(),
	}
	for _, o := range opts {
		o(h)
	}
	h.conn = cl.NewConn(func() {
		if h.closed.Load() {
			h.wakes.Add(1)
		}
		select {
		case h.wake <- struct{}{}:
		default:
		}
	})
	h.pc = newClientConn(h.frag)
	go h.loop()
	t.Cleanup(h.shutdown)
	return h
}

func (h *clientHarness) shutdown() {
	close(h.stop)
	<-h.done
	h.conn.Close()
	h.pc.Close()
	if h.hsRun {
		select {
		case <-h.hsExit:
		case <-time.After(clientWait):
			h.t.Errorf("handshake goroutine did not exit after Close")
		}
	}
	peersDone := make(chan struct{})
	go func() { h.peers.Wait(); close(peersDone) }()
	select {
	case <-peersDone:
	case <-time.After(clientWait):
		h.t.Errorf("peer goroutines did not exit after the link closed")
	}
}

func (h *clientHarness) loop() {
	defer close(h.done)
	in := h.pc.toServer
	h.pump() // a client's handshake needs no input
	for {
		select {
		case b, ok := <-in:
			eof := !ok
			if ok && h.filter != nil {
				b, eof = h.filter(b)
			}
			if len(b) > 0 {
				h.feed(b)
			}
			if eof {
				in = nil
				h.conn.FeedEOF(h.now)
			}
		case <-h.wake:
		case f := <-h.cmds:
			f()
		case <-h.stop:
			return
		}
		h.pump()
		h.check()
	}
}

// feed gives b to the Conn in pieces chosen by frag, pumping after each.
func (h *clientHarness) feed(b []byte) {
	for len(b) > 0 {
		n := min(len(b), h.frag())
		h.conn.Feed(h.now, b[:n]) // failures are checked through Err
		b = b[n:]
		h.pump()
	}
}

// pump does what an event loop does after any event on the Conn.
func (h *clientHarness) pump() {
	if w := h.conn.HandshakeWork(); w != nil {
		if h.hsRun {
			h.t.Errorf("HandshakeWork returned a function twice")
			return
		}
		h.hsRun = true
		go func() {
			defer close(h.hsExit)
			w()
		}()
	}
	var closed bool
	h.plain, closed, h.readErr = afterEvent(h.conn, h.output, h.plain)
	if closed && !h.sentEOF {
		h.sentEOF = true
		h.pc.deliverEOF()
	}
}

// output delivers the Conn's pending output to the peer.
func (h *clientHarness) output() {
	if out := h.conn.AppendOutput(nil); len(out) > 0 {
		h.wire = append(h.wire, out...)
		h.pc.deliver(out)
	}
}

// check wakes the waiters whose condition now holds.
func (h *clientHarness) check() {
	kept := h.waiters[:0]
	for _, w := range h.waiters {
		if w.cond() {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	h.waiters = kept
}

// do runs f on the loop and waits for it.
func (h *clientHarness) do(f func()) {
	h.t.Helper()
	done := make(chan struct{})
	select {
	case h.cmds <- func() { f(); close(done) }:
	case <-h.done:
		h.t.Fatal("client loop has stopped")
	}
	<-done
}

// waitFor waits until cond, evaluated on the loop after every event, holds.
func (h *clientHarness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	ch := make(chan struct{})
	h.do(func() { h.waiters = append(h.waiters, clientWaiter{cond, ch}) })
	select {
	case <-ch:
	case <-time.After(clientWait):
		var ev Events
		var err error
		h.do(func() { ev, err = h.conn.Events(), h.conn.Err() })
		h.t.Fatalf("timed out waiting for %s (events %v, err %v)", what, ev, err)
	}
}

func (h *clientHarness) waitEvent(e Events) {
	h.t.Helper()
	h.waitFor(e.String(), func() bool { return h.conn.Events().Has(e) })
}

// goPeer runs f on a goroutine that shutdown waits for.
func (h *clientHarness) goPeer(f func() error) <-chan error {
	ch := make(chan error, 1)
	h.peers.Add(1)
	go func() {
		defer h.peers.Done()
		ch <- f()
	}()
	return ch
}

// await returns the result from ch, failing the test after clientWait.
func (h *clientHarness) await(what string, ch <-chan error) error {
	h.t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(clientWait):
		h.t.Fatalf("%s: timed out", what)
		return nil
	}
}

// startPeer starts a crypto/tls server handshake on the peer's end.
func (h *clientHarness) startPeer(cfg *tls.Config) <-chan error {
	h.peer = tls.Server(h.pc, cfg)
	return h.goPeer(h.peer.Handshake)
}

// handshake runs a peer with cfg and waits until both sides are done.
func (h *clientHarness) handshake(cfg *tls.Config) {
	h.t.Helper()
	if err := h.await("peer handshake", h.startPeer(cfg)); err != nil {
		var ev Events
		var cerr error
		h.do(func() { ev, cerr = h.conn.Events(), h.conn.Err() })
		h.t.Fatalf("peer handshake: %v (client events %v, err %v)", err, ev, cerr)
	}
	h.waitEvent(HandshakeDone)
}

// seal encrypts p on the loop and delivers it to the peer.
func (h *clientHarness) seal(p string) {
	h.t.Helper()
	var err error
	h.do(func() {
		var out []byte
		out, err = h.conn.Seal(nil, []byte(p))
		h.wire = append(h.wire, out...)
		h.pc.deliver(out)
	})
	if err != nil {
		h.t.Fatalf("Seal: %v", err)
	}
}

// closeNotify sends the client's close_notify to the peer.
func (h *clientHarness) closeNotify() bool {
	var ok bool
	h.do(func() {
		var out []byte
		out, ok = h.conn.CloseNotify(nil)
		h.wire = append(h.wire, out...)
		h.pc.deliver(out)
	})
	return ok
}

// peerRead reads exactly n bytes on the peer.
func (h *clientHarness) peerRead(n int) ([]byte, error) {
	h.t.Helper()
	buf := make([]byte, n)
	var got int
	err := h.await("peer read", h.goPeer(func() error {
		var err error
		got, err = io.ReadFull(h.peer, buf)
		return err
	}))
	return buf[:got], err
}

// peerWrite writes p on the peer.
func (h *clientHarness) peerWrite(p string) {
	h.t.Helper()
	if err := h.await("peer write", h.goPeer(func() error {
		_, err := h.peer.Write([]byte(p))
		return err
	})); err != nil {
		h.t.Fatalf("peer write: %v", err)
	}
}

// waitPlain waits until the client has decrypted len(want) bytes, checks
// them and clears them.
func (h *clientHarness) waitPlain(want string) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("%d bytes of plaintext", len(want)), func() bool { return len(h.plain) >= len(want) })
	var got []byte
	h.do(func() { got, h.plain = h.plain, nil })
	if string(got) != want {
		h.t.Fatalf("client got %d bytes %.40q..., want %d bytes %.40q...", len(got), got, len(want), want)
	}
}

// clientErr returns the Conn's terminal error as an *Error.
func (h *clientHarness) clientErr() *Error {
	h.t.Helper()
	var err error
	var ev Events
	h.do(func() { err, ev = h.conn.Err(), h.conn.Events() })
	var te *Error
	if !errors.As(err, &te) {
		h.t.Fatalf("Err() = %v (%T), want *Error; events %v", err, err, ev)
	}
	return te
}

// ---- tests ----

// TestClientHandshake: TLS 1.2 and 1.3 (and a 1.3 HelloRetryRequest)
// against a crypto/tls server, with the server's bytes fed whole, one byte
// at a time and in random pieces; then data both ways.
func TestClientHandshake(t *testing.T) {
	frags := []struct {
		name string
		f    func() int
	}{{"whole", fragWhole}, {"1byte", fragOne}, {"random", fragRandom(7)}}
	type variant struct {
		name string
		v    uint16
		hrr  bool
	}
	var variants []variant
	for _, v := range versions {
		variants = append(variants, variant{v.name, v.v, false})
	}
	variants = append(variants, variant{"tls13-hrr", tls.VersionTLS13, true})

	ca := newTestCA(t, "test CA")
	cert := ca.leaf(t, "localhost", "example.test")
	for _, vr := range variants {
		for _, fr := range frags {
			t.Run(vr.name+"/"+fr.name, func(t *testing.T) {
				var log reasonLog
				protos := []string{"http/1.1"}
				cl := mustClient(t, ClientConfig{
					ServerName: "example.test",
					RootCAs:    ca.pool,
					NextProtos: protos,
					CountError: log.add,
				})
				// The Client must have copied the list: were it shared,
				// the client would offer h2, which the server prefers.
				protos[0] = "h2"

				h := newClientHarness(t, cl, withClientFrag(fr.f))
				var sealErr error
				var info Info
				h.do(func() {
					_, sealErr = h.conn.Seal(nil, []byte("early"))
					info = h.conn.Info()
				})
				if !errors.Is(sealErr, ErrHandshaking) || (info != Info{}) {
					t.Fatalf("before the handshake: Seal %v, Info %+v", sealErr, info)
				}

				scfg := peerServerConfig(cert, vr.v)
				if vr.hrr {
					scfg.CurvePreferences = []tls.CurveID{tls.CurveP256}
				}
				h.handshake(scfg)

				cs := h.peer.ConnectionState()
				var ev Events
				var st State
				var err error
				h.do(func() { info, ev, st, err = h.conn.Info(), h.conn.Events(), h.conn.State(), h.conn.Err() })
				if ev != HandshakeDone || st != Established || err != nil {
					t.Fatalf("events %v state %v err %v", ev, st, err)
				}
				if info.Version != vr.v || cs.Version != vr.v {
					t.Fatalf("version client %#x server %#x, want %#x", info.Version, cs.Version, vr.v)
				}
				if info.ALPN != "http/1.1" || cs.NegotiatedProtocol != "http/1.1" {
					t.Fatalf("ALPN client %q server %q, want http/1.1", info.ALPN, cs.NegotiatedProtocol)
				}
				if info.ServerName != "example.test" || cs.ServerName != "example.test" {
					t.Fatalf("server name client %q, SNI seen by server %q", info.ServerName, cs.ServerName)
				}
				if info.CipherSuite != cs.CipherSuite || info.CipherSuite == 0 || info.Resumed || cs.DidResume {
					t.Fatalf("info %+v, server suite %#x resumed %v", info, cs.CipherSuite, cs.DidResume)
				}
				if tls.CurveID(info.Group) != cs.CurveID || info.Group == 0 {
					t.Fatalf("group client %v server %v", tls.CurveID(info.Group), cs.CurveID)
				}
				if vr.hrr && tls.CurveID(info.Group) != tls.CurveP256 {
					t.Fatalf("group %v, want P-256 after HelloRetryRequest", tls.CurveID(info.Group))
				}

				up := strings.Repeat("ping ", 4000) // two records
				h.seal(up)
				got, err := h.peerRead(len(up))
				if err != nil || string(got) != up {
					t.Fatalf("peer read %d bytes, %v", len(got), err)
				}
				down := strings.Repeat("pong ", 4000)
				h.peerWrite(down)
				h.waitPlain(down)

				h.do(func() { ev, err = h.conn.Events(), h.readErr })
				if ev != HandshakeDone || err != nil {
					t.Fatalf("after data: events %v, ReadPlaintext error %v", ev, err)
				}
				if s := log.String(); s != "[]" {
					t.Fatalf("CountError %s", s)
				}
			})
		}
	}
}

// TestClientVerifyFailure: a certificate from an unknown authority, for
// another name, or expired at the time fed to the Conn fails the handshake
// with ReasonCertificate, and the server is told with an alert.
func TestClientVerifyFailure(t *testing.T) {
	ca := newTestCA(t, "test CA")
	other := newTestCA(t, "other CA")
	cert := ca.leaf(t, "localhost", "example.test")
	tests := []struct {
		name  string
		cfg   ClientConfig
		now   time.Time
		cause func(error) bool
	}{
		{
			"unknown-authority",
			ClientConfig{ServerName: "localhost", RootCAs: other.pool},
			time.Now(),
			func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) },
		},
		{
			"self-signed-not-trusted",
			ClientConfig{ServerName: "localhost", RootCAs: pool(localPair(t))},
			time.Now(),
			func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) },
		},
		{
			"wrong-name",
			ClientConfig{ServerName: "other.example", RootCAs: ca.pool},
			time.Now(),
			func(err error) bool { var e x509.HostnameError; return errors.As(err, &e) },
		},
		{
			// The leaf is valid for 30 days of real time; the Client
			// verifies at the time passed to Feed.
			"expired-at-fed-time",
			ClientConfig{ServerName: "localhost", RootCAs: ca.pool},
			time.Now().Add(60 * 24 * time.Hour),
			func(err error) bool {
				var e x509.CertificateInvalidError
				return errors.As(err, &e) && e.Reason == x509.Expired
			},
		},
	}
	for _, v := range versions {
		for _, tt := range tests {
			t.Run(v.name+"/"+tt.name, func(t *testing.T) {
				var log reasonLog
				cfg := tt.cfg
				cfg.CountError = log.add
				h := newClientHarness(t, mustClient(t, cfg), withClientNow(tt.now))
				peerErr := h.await("peer handshake", h.startPeer(peerServerConfig(cert, v.v)))
				h.waitEvent(Fatal)

				te := h.clientErr()
				var cve *tls.CertificateVerificationError
				if te.Reason != ReasonCertificate || !te.Local || !errors.As(te, &cve) || !tt.cause(te) {
					t.Fatalf("err %v (reason %q local %v)", te, te.Reason, te.Local)
				}
				// TLS 1.2 sends the alert in plaintext, so its code is
				// known; TLS 1.3 encrypts it.
				if (v.v == tls.VersionTLS12 && !te.HasAlert) || (te.HasAlert && te.Alert != AlertBadCertificate) {
					t.Fatalf("err %v: HasAlert %v Alert %v", te, te.HasAlert, te.Alert)
				}
				var ev Events
				var st State
				var feedErr, sealErr, readErr error
				h.do(func() {
					ev, st = h.conn.Events(), h.conn.State()
					feedErr = h.conn.Feed(h.now, []byte{23, 3, 3, 0, 1, 0})
					_, sealErr = h.conn.Seal(nil, []byte("x"))
					_, readErr = h.conn.ReadPlaintext(nil)
				})
				if !ev.Has(Fatal) || ev.Has(HandshakeDone) || st != Closed {
					t.Fatalf("events %v state %v", ev, st)
				}
				if feedErr != error(te) || sealErr != error(te) || readErr != error(te) {
					t.Fatalf("not sticky: Feed %v, Seal %v, ReadPlaintext %v", feedErr, sealErr, readErr)
				}
				// The server received the alert.
				if a, remote, ok := tlsAlert(peerErr); !ok || !remote || a != AlertBadCertificate {
					t.Fatalf("peer handshake error %v, want a received bad_certificate alert", peerErr)
				}
				if s := log.String(); s != "[bad_certificate]" {
					t.Fatalf("CountError %s", s)
				}
			})
		}
	}
}

// TestClientPeerRejects: handshakes the server refuses end with
// ReasonPeerAlert and the server's alert.
func TestClientPeerRejects(t *testing.T) {
	ca := newTestCA(t, "test CA")
	cert := ca.leaf(t, "localhost")
	tests := []struct {
		name  string
		cfg   ClientConfig
		srv   func(*tls.Config)
		alert Alert
	}{
		{
			"no-common-alpn",
			ClientConfig{NextProtos: []string{"http/1.1"}},
			// Not "h2": crypto/tls lets http/1.1 clients into h2-only
			// servers without ALPN.
			func(c *tls.Config) { c.NextProtos = []string{"spdy/3"} },
			AlertNoApplicationProtocol,
		},
		{
			"no-common-version",
			ClientConfig{MinVersion: VersionTLS13},
			func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 },
			AlertProtocolVersion,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log reasonLog
			cfg := tt.cfg
			cfg.ServerName, cfg.RootCAs, cfg.CountError = "localhost", ca.pool, log.add
			h := newClientHarness(t, mustClient(t, cfg))
			scfg := peerServerConfig(cert, tls.VersionTLS13)
			tt.srv(scfg)
			if err := h.await("peer handshake", h.startPeer(scfg)); err == nil {
				t.Fatal("peer handshake succeeded")
			}
			h.waitEvent(Fatal)
			te := h.clientErr()
			if te.Reason != ReasonPeerAlert || te.Local || !te.HasAlert || te.Alert != tt.alert {
				t.Fatalf("err %v (reason %q local %v alert %v)", te, te.Reason, te.Local, te.Alert)
			}
			if s := log.String(); s != "[peer_alert]" {
				t.Fatalf("CountError %s", s)
			}
		})
	}
}

// TestClientInsecureSkipVerify: no ServerName and no roots, any certificate
// is accepted and no SNI is sent; a server without ALPN negotiates none.
func TestClientInsecureSkipVerify(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			var log reasonLog
			cl := mustClient(t, ClientConfig{
				InsecureSkipVerify: true,
				NextProtos:         []string{"http/1.1"},
				CountError:         log.add,
			})
			h := newClientHarness(t, cl)
			scfg := peerServerConfig(localPair(t).cert, v.v) // self-signed
			scfg.NextProtos = nil
			h.handshake(scfg)
			var info Info
			h.do(func() { info = h.conn.Info() })
			cs := h.peer.ConnectionState()
			if info.Version != v.v || info.ServerName != "" || cs.ServerName != "" || info.ALPN != "" {
				t.Fatalf("info %+v, SNI seen by server %q", info, cs.ServerName)
			}
			h.seal("hello")
			if got, err := h.peerRead(5); err != nil || string(got) != "hello" {
				t.Fatalf("peer read %q, %v", got, err)
			}
			if s := log.String(); s != "[]" {
				t.Fatalf("CountError %s", s)
			}
		})
	}
}

// TestClientConfigErrors: invalid ClientConfigs are refused with a
// *ConfigError naming the ClientConfig field.
func TestClientConfigErrors(t *testing.T) {
	tests := []struct {
		cfg  ClientConfig
		want string
	}{
		{ClientConfig{}, "ClientConfig.ServerName"},
		{ClientConfig{RootCAs: x509.NewCertPool()}, "ClientConfig.ServerName"},
		{ClientConfig{ServerName: "localhost", NextProtos: []string{""}}, "ClientConfig.NextProtos"},
		{ClientConfig{InsecureSkipVerify: true, NextProtos: []string{"http/1.1", strings.Repeat("x", 256)}}, "ClientConfig.NextProtos"},
		{ClientConfig{ServerName: "localhost", MinVersion: tls.VersionTLS11}, "ClientConfig.MinVersion"},
		{ClientConfig{ServerName: "localhost", MaxVersion: 0x0305}, "ClientConfig.MaxVersion"},
		{ClientConfig{ServerName: "localhost", MaxVersion: tls.VersionTLS11}, "ClientConfig.MaxVersion"},
		{ClientConfig{ServerName: "localhost", MinVersion: VersionTLS13, MaxVersion: VersionTLS12}, "ClientConfig.MinVersion"},
	}
	for i, tt := range tests {
		cl, err := NewClient(tt.cfg)
		var ce *ConfigError
		if cl != nil || !errors.As(err, &ce) || ce.Config != "ClientConfig" || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%d: NewClient = %v, %v; want a *ConfigError mentioning %s", i, cl, err, tt.want)
		}
	}
	for i, cfg := range []ClientConfig{
		{InsecureSkipVerify: true},
		{ServerName: "localhost"},
		{ServerName: "localhost", MinVersion: VersionTLS13, NextProtos: []string{strings.Repeat("x", 255)}, SessionCacheSize: -1},
	} {
		if cl, err := NewClient(cfg); cl == nil || err != nil {
			t.Errorf("valid %d: NewClient = %v, %v", i, cl, err)
		}
	}
	// The server's errors still name ServerConfig.
	if _, err := NewServer(ServerConfig{}); err == nil || !strings.Contains(err.Error(), "ServerConfig.Certs") {
		t.Errorf("NewServer: %v", err)
	}
}

// TestClientCloseNotify: close_notify in both orders, each direction
// staying usable after the other one closed.
func TestClientCloseNotify(t *testing.T) {
	ca := newTestCA(t, "test CA")
	cert := ca.leaf(t, "localhost")
	for _, v := range versions {
		t.Run(v.name+"/client-first", func(t *testing.T) {
			h := newClientHarness(t, mustClient(t, ClientConfig{ServerName: "localhost", RootCAs: ca.pool}))
			h.handshake(peerServerConfig(cert, v.v))
			h.seal("bye")
			if !h.closeNotify() {
				t.Fatal("CloseNotify did not send close_notify")
			}
			if h.closeNotify() {
				t.Fatal("second CloseNotify sent close_notify again")
			}
			var sealErr error
			var st State
			var sentEOF bool
			h.do(func() {
				_, sealErr = h.conn.Seal(nil, []byte("x"))
				st, sentEOF = h.conn.State(), h.sentEOF
			})
			if !errors.Is(sealErr, ErrWriteClosed) || st != Established || sentEOF {
				t.Fatalf("after CloseNotify: Seal %v, state %v, transport closed %v", sealErr, st, sentEOF)
			}
			if got, err := h.peerRead(3); err != nil || string(got) != "bye" {
				t.Fatalf("peer read %q, %v", got, err)
			}
			// The link is still open, so this EOF is the close_notify.
			if err := h.await("peer read", h.goPeer(func() error {
				_, err := h.peer.Read(make([]byte, 1))
				return err
			})); err != io.EOF {
				t.Fatalf("peer read after close_notify: %v, want io.EOF", err)
			}
			// Half-close: the peer can still write.
			h.peerWrite("still here")
			h.waitPlain("still here")
			if err := h.await("peer CloseWrite", h.goPeer(h.peer.CloseWrite)); err != nil {
				t.Fatal(err)
			}
			h.waitEvent(PeerCloseNotify)
			var ev Events
			var err, readErr error
			h.do(func() {
				ev, st, err = h.conn.Events(), h.conn.State(), h.conn.Err()
				_, readErr = h.conn.ReadPlaintext(nil)
			})
			if ev != HandshakeDone|CloseNotifySent|PeerCloseNotify || st != Closed || err != nil || readErr != io.EOF {
				t.Fatalf("events %v state %v err %v read %v", ev, st, err, readErr)
			}
		})
		t.Run(v.name+"/server-first", func(t *testing.T) {
			h := newClientHarness(t, mustClient(t, ClientConfig{ServerName: "localhost", RootCAs: ca.pool}))
			h.handshake(peerServerConfig(cert, v.v))
			h.peerWrite("last words")
			if err := h.await("peer CloseWrite", h.goPeer(h.peer.CloseWrite)); err != nil {
				t.Fatal(err)
			}
			h.waitEvent(PeerCloseNotify)
			var ev Events
			var st State
			var plain []byte
			var readErr error
			h.do(func() {
				plain, readErr = h.conn.ReadPlaintext(h.plain)
				h.plain = nil
				ev, st = h.conn.Events(), h.conn.State()
			})
			if string(plain) != "last words" || readErr != io.EOF {
				t.Fatalf("ReadPlaintext %q, %v; want the data and io.EOF", plain, readErr)
			}
			if ev != HandshakeDone|PeerCloseNotify || st != Established {
				t.Fatalf("events %v state %v", ev, st)
			}
			// Half-close: the client can still write.
			h.seal("reply")
			if got, err := h.peerRead(5); err != nil || string(got) != "reply" {
				t.Fatalf("peer read %q, %v", got, err)
			}
			if !h.closeNotify() {
				t.Fatal("CloseNotify did not send close_notify")
			}
			if err := h.await("peer read", h.goPeer(func() error {
				_, err := h.peer.Read(make([]byte, 1))
				return err
			})); err != io.EOF {
				t.Fatalf("peer read after close_notify: %v, want io.EOF", err)
			}
			h.do(func() { ev, st = h.conn.Events(), h.conn.State() })
			if ev != HandshakeDone|PeerCloseNotify|CloseNotifySent || st != Closed {
				t.Fatalf("events %v state %v", ev, st)
			}
		})
	}
}

// TestClientResumption: a second connection from the same Client resumes
// the first one's session, unless the session cache is disabled.
func TestClientResumption(t *testing.T) {
	ca := newTestCA(t, "test CA")
	cert := ca.leaf(t, "localhost")
	for _, v := range versions {
		for _, tc := range []struct {
			name      string
			cacheSize int
			want      bool
		}{{"default-cache", 0, true}, {"cache-1", 1, true}, {"no-cache", -1, false}} {
			t.Run(v.name+"/"+tc.name, func(t *testing.T) {
				cl := mustClient(t, ClientConfig{ServerName: "localhost", RootCAs: ca.pool, SessionCacheSize: tc.cacheSize})
				scfg := peerServerConfig(cert, v.v) // one ticket key for both
				for i, want := range []bool{false, tc.want} {
					h := newClientHarness(t, cl)
					h.handshake(scfg)
					// A TLS 1.3 ticket comes after the handshake; reading
					// data sent after it processes it.
					h.peerWrite("x")
					h.waitPlain("x")
					var info Info
					h.do(func() { info = h.conn.Info() })
					if info.Resumed != want || h.peer.ConnectionState().DidResume != want {
						t.Fatalf("conn %d: client resumed %v, server %v; want %v", i, info.Resumed, h.peer.ConnectionState().DidResume, want)
					}
					if info.Version != v.v {
						t.Fatalf("conn %d: version %#x", i, info.Version)
					}
				}
			})
		}
	}
}

// TestClientBadPeer: a peer that goes away or sends nonsense mid-handshake
// fails the handshake with a fitting reason, without hanging.
func TestClientBadPeer(t *testing.T) {
	ca := newTestCA(t, "test CA")
	cert := ca.leaf(t, "localhost")

	// readHello reads the ClientHello record on the peer's end.
	readHello := func(h *clientHarness) {
		h.t.Helper()
		if err := h.await("ClientHello", h.goPeer(func() error {
			hdr := make([]byte, recordHeaderLen)
			if _, err := io.ReadFull(h.pc, hdr); err != nil {
				return err
			}
			if hdr[0] != 22 {
				return fmt.Errorf("first record type %d", hdr[0])
			}
			_, err := io.ReadFull(h.pc, make([]byte, int(hdr[3])<<8|int(hdr[4])))
			return err
		})); err != nil {
			h.t.Fatal(err)
		}
	}
	// rawPeer writes b to the client, then ends the link if eof.
	rawPeer := func(b []byte, eof bool) func(*clientHarness) {
		return func(h *clientHarness) {
			readHello(h)
			if len(b) > 0 {
				if _, err := h.pc.Write(b); err != nil {
					h.t.Fatal(err)
				}
			}
			if eof {
				h.pc.closeWrite()
			}
		}
	}
	// realPeer runs a crypto/tls server whose bytes pass through filter.
	realPeer := func(h *clientHarness) { h.startPeer(peerServerConfig(cert, tls.VersionTLS13)) }

	tests := []struct {
		name   string
		filter func([]byte) ([]byte, bool)
		peer   func(*clientHarness)
		reason string
		events Events // also expected, besides Fatal
		check  func(*testing.T, *Error, []byte)
	}{
		{
			name:   "eof-before-reply",
			peer:   rawPeer(nil, true),
			reason: ReasonHandshakeEOF,
			events: EOFAtRecordBoundary,
			check: func(t *testing.T, te *Error, _ []byte) {
				if !errors.Is(te, io.EOF) {
					t.Errorf("err %v, want io.EOF", te)
				}
			},
		},
		{
			name:   "eof-mid-record",
			peer:   rawPeer([]byte{22, 3, 3, 0, 50, 2, 0}, true),
			reason: ReasonHandshakeEOF,
			events: EOFMidRecord,
			check: func(t *testing.T, te *Error, _ []byte) {
				if !errors.Is(te, io.ErrUnexpectedEOF) {
					t.Errorf("err %v, want io.ErrUnexpectedEOF", te)
				}
			},
		},
		{
			// A real server's flight, cut short mid-record.
			name: "server-flight-truncated",
			filter: func(b []byte) ([]byte, bool) {
				return b[:min(len(b), 100)], true
			},
			peer:   realPeer,
			reason: ReasonHandshakeEOF,
			events: EOFMidRecord,
		},
		{
			// A handshake record carrying an unknown message type.
			name:   "garbage-handshake-message",
			peer:   rawPeer([]byte{22, 3, 3, 0, 4, 0xfe, 0, 0, 0}, false),
			reason: ReasonHandshake,
			check: func(t *testing.T, te *Error, wire []byte) {
				if !te.Local || !te.HasAlert || te.Alert != AlertUnexpectedMessage {
					t.Errorf("err %v: local %v alert %v %v", te, te.Local, te.HasAlert, te.Alert)
				}
				// The alert went out after the ClientHello.
				if n := len(wire); n < 7 || wire[n-7] != 21 || !bytes.Equal(wire[n-4:], []byte{0, 2, 2, byte(AlertUnexpectedMessage)}) {
					t.Errorf("client output ends %x, want an unexpected_message alert", wire[max(0, len(wire)-7):])
				}
			},
		},
		{
			// A real server's flight with a byte of its first encrypted
			// record flipped.
			name: "server-flight-corrupted",
			filter: func() func([]byte) ([]byte, bool) {
				done := false
				return func(b []byte) ([]byte, bool) {
					if done {
						return b, false
					}
					b = bytes.Clone(b)
					for p := b; len(p) >= recordHeaderLen; {
						n := recordHeaderLen + (int(p[3])<<8 | int(p[4]))
						if p[0] == 23 && len(p) >= n {
							p[recordHeaderLen+1] ^= 0x40
							done = true
							break
						}
						if len(p) < n {
							break
						}
						p = p[n:]
					}
					return b, false
				}
			}(),
			peer:   realPeer,
			reason: ReasonHandshake,
			check: func(t *testing.T, te *Error, _ []byte) {
				if !te.Local || !te.HasAlert || te.Alert != AlertBadRecordMAC {
					t.Errorf("err %v: local %v alert %v %v", te, te.Local, te.HasAlert, te.Alert)
				}
			},
		},
		{
			// A plaintext HTTP answer instead of a ServerHello.
			name:   "http-reply",
			peer:   rawPeer([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"), false),
			reason: ReasonNotTLS,
			check: func(t *testing.T, te *Error, _ []byte) {
				var rhe tls.RecordHeaderError
				if !te.Local || !errors.As(te, &rhe) {
					t.Errorf("err %v, want a tls.RecordHeaderError", te)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log reasonLog
			cl := mustClient(t, ClientConfig{ServerName: "localhost", RootCAs: ca.pool, CountError: log.add})
			var opts []clientOpt
			if tt.filter != nil {
				opts = append(opts, withPeerFilter(tt.filter))
			}
			h := newClientHarness(t, cl, opts...)
			tt.peer(h)
			h.waitEvent(Fatal)
			te := h.clientErr()
			var ev Events
			var st State
			var wire []byte
			h.do(func() { ev, st, wire = h.conn.Events(), h.conn.State(), bytes.Clone(h.wire) })
			if te.Reason != tt.reason || !ev.Has(Fatal|tt.events) || ev.Has(HandshakeDone) || st != Closed {
				t.Fatalf("err %v (reason %q), events %v, state %v; want reason %q and events %v", te, te.Reason, ev, st, tt.reason, Fatal|tt.events)
			}
			if tt.check != nil {
				tt.check(t, te, wire)
			}
			if s := log.String(); s != "["+tt.reason+"]" {
				t.Fatalf("CountError %s", s)
			}
			// The handshake goroutine is gone.
			select {
			case <-h.hsExit:
			case <-time.After(clientWait):
				t.Fatal("handshake goroutine still running")
			}
		})
	}
}

// TestClientCloseMidHandshake: Close while the handshake function waits
// for the server makes it return promptly, without calling wake again.
func TestClientCloseMidHandshake(t *testing.T) {
	h := newClientHarness(t, mustClient(t, ClientConfig{InsecureSkipVerify: true}))
	// The ClientHello went out: the handshake function now waits for input.
	if err := h.await("ClientHello", h.goPeer(func() error {
		_, err := io.ReadFull(h.pc, make([]byte, recordHeaderLen))
		return err
	})); err != nil {
		t.Fatal(err)
	}
	h.closed.Store(true)
	closeDone := make(chan struct{})
	go func() { h.conn.Close(); close(closeDone) }() // from another goroutine
	<-closeDone
	select {
	case <-h.hsExit:
	case <-time.After(clientWait):
		t.Fatal("handshake goroutine did not exit after Close")
	}
	var st State
	var feedErr error
	var work func()
	var ev Events
	h.do(func() {
		feedErr = h.conn.Feed(h.now, []byte{22, 3, 3, 0, 1, 0})
		st, work, ev = h.conn.State(), h.conn.HandshakeWork(), h.conn.Events()
	})
	if st != Closed || !errors.Is(feedErr, ErrClosed) || work != nil || ev.Has(Fatal) {
		t.Fatalf("after Close: state %v, Feed %v, work %v, events %v", st, feedErr, work != nil, ev)
	}
	if n := h.wakes.Load(); n != 0 {
		t.Fatalf("wake called %d times after Close", n)
	}
	h.conn.Close() // idempotent
}

// clientPair issues a client-auth certificate from ca as a KeyPair.
func (ca *testCA) clientPair(t testing.TB, cn string) *KeyPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ParseKeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// TestClientCertificate: a server that requires a client certificate
// gets the configured one (and verifies it against its CA); without one
// configured, the server's handshake fails.
func TestClientCertificate(t *testing.T) {
	ca := newTestCA(t, "test CA")
	clientCA := newTestCA(t, "client CA")
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			scfg := peerServerConfig(ca.leaf(t, "localhost"), v.v)
			scfg.ClientAuth = tls.RequireAndVerifyClientCert
			scfg.ClientCAs = clientCA.pool
			h := newClientHarness(t, mustClient(t, ClientConfig{ServerName: "localhost", RootCAs: ca.pool,
				Certificate: clientCA.clientPair(t, "sluice-client")}))
			h.handshake(scfg)
			if pc := h.peer.ConnectionState().PeerCertificates; len(pc) == 0 || pc[0].Subject.CommonName != "sluice-client" {
				t.Fatalf("server saw client certificates %v", pc)
			}
			h.seal("mutual")
			if got, err := h.peerRead(6); err != nil || string(got) != "mutual" {
				t.Fatalf("peer read %q, %v", got, err)
			}

			h2 := newClientHarness(t, mustClient(t, ClientConfig{ServerName: "localhost", RootCAs: ca.pool}))
			scfg2 := peerServerConfig(ca.leaf(t, "localhost"), v.v)
			scfg2.ClientAuth = tls.RequireAndVerifyClientCert
			scfg2.ClientCAs = clientCA.pool
			if err := h2.await("peer handshake", h2.startPeer(scfg2)); err == nil {
				t.Fatal("the server accepted a client without a certificate")
			}
		})
	}
}
