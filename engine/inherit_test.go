package engine

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
)

// tagEcho answers every read with its tag and the bytes read.
type tagEcho struct {
	BaseHandler
	tag byte
}

func (h *tagEcho) OnOpen(c *Conn) { c.Advance(diag.DataTransfer) }
func (h *tagEcho) OnData(c *Conn, b []byte) int {
	c.Write(append([]byte{h.tag}, b...))
	return len(b)
}

// ask sends one byte on a new connection and returns the tag of the
// engine that answered.
func ask(t *testing.T, addr string) byte {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	if _, err := io.ReadFull(nc, b); err != nil || b[1] != 'x' {
		t.Fatalf("answer %q: %v", b, err)
	}
	return b[0]
}

// A successor engine accepts on the predecessor's listening sockets
// (ListenerFDs → Listener.Inherited); after HandOff the predecessor's
// StopAccepting leaves them working for the successor (no SHUT_RD, which
// would put a shared listening socket in CLOSE for every holder), and its
// Stop closes only its own fds.
func TestHandOffSharesListeningSockets(t *testing.T) {
	a, addr := startEngine(t, Config{}, func(c *Conn) Handler { return &tagEcho{tag: 'A'} })
	fds, err := a.ListenerFDs()
	if err != nil || len(fds) != 2 { // one SO_REUSEPORT socket per loop
		t.Fatalf("ListenerFDs %v %v", fds, err)
	}
	inh := make([]int, len(fds))
	for i, f := range fds {
		if f.Name != "test" {
			t.Fatalf("fd named %q", f.Name)
		}
		inh[i] = f.FD
	}
	b, err := New(Config{Loops: 2, Logger: testLogger(t), Listeners: []Listener{{Name: "test", Inherited: inh,
		Accept: func(c *Conn) Handler { return &tagEcho{tag: 'B'} }}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Stop(ctx)
	})
	if b.Addr("test") != addr {
		t.Fatalf("successor on %q, predecessor on %q", b.Addr("test"), addr)
	}
	seen := map[byte]int{}
	for i := 0; i < 40; i++ {
		seen[ask(t, addr)]++
	}
	a.HandOff()
	if err := a.StopAccepting(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		if tag := ask(t, addr); tag != 'B' {
			t.Fatalf("after the handoff connection %d served by %c", i, tag)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if tag := ask(t, addr); tag != 'B' {
			t.Fatalf("after the predecessor stopped: served by %c", tag)
		}
	}
	t.Logf("while both accepted: %v", seen)
}
