package engine

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// gatedConn holds every write after the first (the ClientHello) until
// open is closed, and says on flight when the first such write arrives:
// a TLS 1.3 client writes its Finished only after it has our whole flight.
type gatedConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
	flight chan struct{}
	open   chan struct{}
}

func (g *gatedConn) Write(b []byte) (int, error) {
	g.mu.Lock()
	g.writes++
	n := g.writes
	g.mu.Unlock()
	if n == 2 {
		close(g.flight)
	}
	if n >= 2 {
		<-g.open
	}
	return g.Conn.Write(b)
}

// At -max-handshakes a handshake whose client has sent its Finished (and
// a request after it) is not evicted while those bytes wait unread in the
// kernel: a busy loop has simply not read them yet, and a reset would lose
// a request the client thinks it sent on an established connection (the
// drain of 10,000 connections lost a few responses this way). The new
// client is refused instead, before it could send anything.
func TestMaxHandshakesSparesAHandshakeWithUnreadInput(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	e, addr := startTLSEngine(t, f, Config{Loops: 1, MaxHandshakes: 1}, func(c *Conn) Handler { return &echo{cl: cl} })

	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	g := &gatedConn{Conn: raw, flight: make(chan struct{}), open: make(chan struct{})}
	a := tls.Client(g, &tls.Config{RootCAs: f.pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})
	a.SetDeadline(time.Now().Add(20 * time.Second))
	hsErr := make(chan error, 1)
	go func() { hsErr <- a.Handshake() }()
	select {
	case <-g.flight: // a has our flight; its Finished is held
	case err := <-hsErr:
		t.Fatalf("handshake ended early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no server flight")
	}
	b := dialT(t, addr) // accepted while the loop runs: waiting, no slot
	if !waitFor(5*time.Second, func() bool { return e.Live() == 2 }) {
		t.Fatalf("%d connections live, want 2", e.Live())
	}

	// Hold the loop: what comes now waits in the kernel.
	release := make(chan struct{})
	held := make(chan struct{})
	if err := e.Loops()[0].Post(func() { close(held); <-release }); err != nil {
		t.Fatal(err)
	}
	<-held
	b.Write(clientHello(t)) // b becomes readable first: it asks for a's slot
	time.Sleep(20 * time.Millisecond)
	close(g.open)
	if err := <-hsErr; err != nil { // a's Finished is out
		close(release)
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("ping")); err != nil {
		close(release)
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)

	buf := make([]byte, 4)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("the handshake with unread input: echo %q, %v (want ping)", buf, err)
	}
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, b); err == nil {
		t.Fatal("the new handshake at the cap ended cleanly, want it refused")
	}
	for name, want := range map[string]uint64{
		`sluice_tls_handshakes_total{result="evicted"}`:  0,
		`sluice_tls_handshakes_total{result="rejected"}`: 1,
	} {
		if got := f.set.GetOrCreateCounter(name).Get(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

// At -max-handshakes a handshake whose client's answer to our flight the
// loop has read, but which the crypto/tls handshake goroutine has not taken
// yet, is not evicted either. A flood of loop tasks (a storm's thousands of
// wakes and posts: gnet runs 256 a round) makes the answer and the new
// ClientHello be read in the same round, the answer first.
func TestMaxHandshakesSparesAHandshakeWhoseAnswerWasRead(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	e, addr := startTLSEngine(t, f, Config{Loops: 1, MaxHandshakes: 1}, func(c *Conn) Handler { return &echo{cl: cl} })

	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	g := &gatedConn{Conn: raw, flight: make(chan struct{}), open: make(chan struct{})}
	a := tls.Client(g, &tls.Config{RootCAs: f.pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})
	a.SetDeadline(time.Now().Add(20 * time.Second))
	hsErr := make(chan error, 1)
	go func() { hsErr <- a.Handshake() }()
	select {
	case <-g.flight:
	case err := <-hsErr:
		t.Fatalf("handshake ended early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no server flight")
	}
	b := dialT(t, addr)
	if !waitFor(5*time.Second, func() bool { return e.Live() == 2 }) {
		t.Fatalf("%d connections live, want 2", e.Live())
	}
	l := e.Loops()[0]
	for i := 0; i < 8000; i++ { // about 2 s of loop work
		l.Post(func() {
			for t0 := time.Now(); time.Since(t0) < 250*time.Microsecond; {
			}
		})
	}
	close(g.open)
	if err := <-hsErr; err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	b.Write(clientHello(t)) // right behind a's answer: the same round

	buf := make([]byte, 4)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("the handshake whose answer was read: echo %q, %v (want ping)", buf, err)
	}
	if got := f.set.GetOrCreateCounter(`sluice_tls_handshakes_total{result="evicted"}`).Get(); got != 0 {
		t.Errorf("%d handshakes evicted, want 0", got)
	}
}
