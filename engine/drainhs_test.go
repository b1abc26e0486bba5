package engine

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
)

// heldFinished passes the client's first write (the ClientHello) and holds
// the second (a TLS 1.3 client's Finished) until release is closed: a
// handshake whose server flight is out when the drain begins.
type heldFinished struct {
	net.Conn
	writes  int
	release chan struct{}
}

func (h *heldFinished) Write(b []byte) (int, error) {
	h.writes++
	if h.writes == 2 {
		<-h.release
	}
	return h.Conn.Write(b)
}

// drainBye says goodbye at drain, the way HTTP/2 sends GOAWAY: only an
// opened connection can.
type drainBye struct {
	echo
	opened bool
}

func (h *drainBye) OnOpen(c *Conn) { h.opened = true; h.echo.OnOpen(c) }
func (h *drainBye) OnDrain(c *Conn) {
	if !h.opened {
		c.Close(diag.Clean) // what a handler can do before its OnOpen
		return
	}
	c.Write([]byte("bye"))
	c.Close(diag.Clean)
}

// A client whose TLS handshake is under way (our flight out) when the drain
// begins gets its handshake and then the handler's goodbye (GOAWAY), not a
// close mid-handshake: a TLS 1.3 client is done once it has our Finished and
// its first request would be lost (the 10,000-connection drain lost streams
// on such connections, ended with no GOAWAY).
func TestDrainWaitsForHandshakeInFlight(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	e, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler {
		return &drainBye{echo: echo{cl: cl}}
	})
	// A silent connection is closed by the drain at once: it sent nothing.
	silent := dialT(t, addr)
	nc := dialT(t, addr)
	hh := &heldFinished{Conn: nc, release: make(chan struct{})}
	c := tls.Client(hh, &tls.Config{RootCAs: f.pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})
	c.SetDeadline(time.Now().Add(20 * time.Second))
	hsErr := make(chan error, 1)
	go func() { hsErr <- c.Handshake() }()
	// Wait until the engine has sent its flight.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := e.Snapshot(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		got := false
		for _, ci := range s.Conns {
			if ci.BytesOut > 0 {
				got = true
			}
		}
		if got {
			break
		}
		if time.Now().After(deadline) {
			close(hh.release)
			t.Fatal("the server flight never went out")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := e.StopAccepting(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := e.DrainConnections(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := silent.Read(make([]byte, 1)); err == nil {
		t.Fatalf("silent connection: read %d bytes, want its close", n)
	}
	silent.Close() // ends the linger
	close(hh.release)
	if err := <-hsErr; err != nil {
		t.Fatalf("handshake under way at drain: %v (want it finished, then the drain's goodbye)", err)
	}
	b, err := io.ReadAll(c)
	c.Close()
	if string(b) != "bye" || err != nil {
		t.Fatalf("after the handshake: read %q, %v; want \"bye\" and a clean end", b, err)
	}
	select {
	case <-e.Idle():
	case <-time.After(10 * time.Second):
		t.Fatalf("engine not idle after the drain: %d left", e.Live())
	}
}
