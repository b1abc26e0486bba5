package engine

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
)

// closeCounter echoes, and on "close" starts the graceful close and
// reports how many SIOCOUTQ ioctls the close made in that callback.
type closeCounter struct {
	BaseHandler
	reads  chan int
	closed chan diag.Trace
}

func (h *closeCounter) OnOpen(c *Conn) { c.Advance(diag.DataTransfer) }

func (h *closeCounter) OnData(c *Conn, b []byte) int {
	if string(b) != "close" {
		c.Write(b)
		return len(b)
	}
	before := c.kqReads
	c.Close(diag.Clean)
	h.reads <- c.kqReads - before
	return len(b)
}

func (h *closeCounter) OnClosed(c *Conn, t *diag.Trace) { h.closed <- *t }

// A graceful close with nothing left to send runs ShutdownInitiated →
// BufferFlushed → WriteShut → Lingering in one callback. The trace's
// KernelAtShutdown, the delivered check at WriteShut, the linger's ACK
// baseline and the debug lines of WriteShut and Lingering all want the
// kernel send queue: one SIOCOUTQ serves them (it was five with debug on).
func TestCloseReadsKernelQueueOnce(t *testing.T) {
	h := &closeCounter{reads: make(chan int, 1), closed: make(chan diag.Trace, 1)}
	debug := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, addr := startEngine(t, Config{Logger: debug}, func(c *Conn) Handler { return h })
	nc := dialT(t, addr)
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := ioReadFull(nc, got); err != nil || string(got) != "hello" {
		t.Fatalf("echo %q %v", got, err)
	}
	if _, err := nc.Write([]byte("close")); err != nil {
		t.Fatal(err)
	}
	var n int
	select {
	case n = <-h.reads:
	case <-time.After(5 * time.Second):
		t.Fatal("the close did not start")
	}
	if n != 1 {
		t.Errorf("the close made %d SIOCOUTQ ioctls before lingering, want 1", n)
	}
	if _, err := io.Copy(io.Discard, nc); err != nil {
		t.Fatalf("reading to our FIN: %v", err)
	}
	nc.Close()
	select {
	case tr := <-h.closed:
		if tr.Outcome != diag.Clean || tr.Entered[diag.Lingering] == 0 {
			t.Errorf("outcome %v, close %s", tr.Outcome, tr.CloseSequence())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not closed")
	}
}
