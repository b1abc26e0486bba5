package engine

import (
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
)

// closer closes from inside a redelivered OnData (after a pause) and says it
// consumed everything: the engine must not touch the dropped input buffer.
type closer struct {
	BaseHandler
	cl     *closes
	opened chan *Conn
}

func (h *closer) OnOpen(c *Conn) { c.PauseRead(); h.opened <- c }
func (h *closer) OnData(c *Conn, b []byte) int {
	c.Close(diag.Clean)
	return len(b)
}
func (h *closer) OnClosed(c *Conn, t *diag.Trace) { h.cl.add(t) }

func TestCloseInsideRedeliveredData(t *testing.T) {
	cl := newCloses()
	h := &closer{cl: cl, opened: make(chan *Conn, 1)}
	_, addr := startEngine(t, Config{}, func(c *Conn) Handler { return h })
	nc := dialT(t, addr)
	c := <-h.opened
	nc.Write([]byte("some bytes"))
	time.Sleep(20 * time.Millisecond)
	// Make the bytes land in the engine's kept input, then resume.
	c.Loop().Post(func() { c.registerRead() })
	time.Sleep(20 * time.Millisecond)
	c.Loop().Post(func() { c.ResumeRead() })
	go func() { var b [1]byte; nc.Read(b[:]); nc.Close() }()
	if tr := cl.next(t, 5*time.Second); tr.Outcome != diag.Clean {
		t.Fatalf("outcome %v", tr.Outcome)
	}
}

// wantsMore never consumes: it waits for a complete message that never
// comes. The peer's FIN must still reach it.
type wantsMore struct {
	BaseHandler
	eof chan []byte
	buf []byte
}

func (h *wantsMore) OnData(c *Conn, b []byte) int {
	h.buf = append(h.buf[:0], b...)
	return 0
}
func (h *wantsMore) OnReadEOF(c *Conn) { h.eof <- h.buf; c.Close(diag.PeerClosed) }

func TestEOFDeliveredWithKeptInput(t *testing.T) {
	h := &wantsMore{eof: make(chan []byte, 1)}
	_, addr := startEngine(t, Config{}, func(c *Conn) Handler { return h })
	nc := dialT(t, addr)
	nc.Write([]byte("partial head"))
	nc.CloseWrite()
	select {
	case got := <-h.eof:
		if string(got) != "partial head" {
			t.Fatalf("kept %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("EOF never delivered while input was kept")
	}
}
