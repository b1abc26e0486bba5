package engine

import (
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
)

// pattern is a deterministic 1 MiB block; stream byte i is pattern[i%len].
var pattern = func() []byte {
	b := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

func patternSum(n int) [32]byte {
	h := sha256.New()
	for n > 0 {
		m := min(n, len(pattern))
		h.Write(pattern[:m])
		n -= m
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// sender streams total pattern bytes with backpressure, then closes.
type sender struct {
	BaseHandler
	cl     *closes
	total  int
	sent   int
	chunk  int
	then   func(c *Conn)
	opened chan *Conn
}

func (s *sender) OnOpen(c *Conn) {
	c.Advance(diag.DataTransfer)
	if s.opened != nil {
		s.opened <- c
	}
	s.pump(c)
}

func (s *sender) pump(c *Conn) {
	chunk := s.chunk
	if chunk == 0 {
		chunk = 32 << 10
	}
	for s.sent < s.total && !c.OverHighWater() {
		off := s.sent % len(pattern)
		n := min(chunk, s.total-s.sent, len(pattern)-off)
		c.Write(pattern[off : off+n])
		s.sent += n
	}
	if s.sent < s.total {
		c.NotifyWritable()
		return
	}
	if s.then != nil {
		s.then(c)
		return
	}
	c.Close(diag.Clean)
}

func (s *sender) OnWritable(c *Conn) { s.pump(c) }

// OnDrain lets the transfer finish: it is work in progress.
func (s *sender) OnDrain(c *Conn)                 {}
func (s *sender) OnClosed(c *Conn, t *diag.Trace) { s.cl.add(t) }

// slowRead reads everything with a pause every chunk, returning the bytes'
// sha256, count and the final error.
func slowRead(nc net.Conn, chunk int, pause time.Duration, keep func([]byte)) ([32]byte, int, error) {
	h := sha256.New()
	buf := make([]byte, chunk)
	n := 0
	for {
		m, err := nc.Read(buf)
		if m > 0 {
			h.Write(buf[:m])
			if keep != nil {
				keep(buf[:m])
			}
			n += m
		}
		if err != nil {
			var s [32]byte
			copy(s[:], h.Sum(nil))
			if err == io.EOF {
				err = nil
			}
			return s, n, err
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
}

func mustState(t *testing.T, tr diag.Trace, states ...diag.State) {
	t.Helper()
	for _, st := range states {
		if tr.Entered[st] == 0 {
			t.Errorf("state %v not recorded; close=%q", st, tr.CloseSequence())
		}
	}
}
