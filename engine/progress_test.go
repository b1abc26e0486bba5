package engine

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Issue #12, defect 1: a slow reader that keeps reading must not be
// aborted as write_timeout. With a large kernel send buffer, writev takes
// nothing for longer than the write timeout while the peer steadily
// acknowledges bytes: EPOLLOUT comes only after a third of the buffer
// drains. Progress is what the peer acknowledged (SIOCOUTQ shrinking).
func TestSlowSteadyReaderIsNotWriteTimeout(t *testing.T) {
	for _, closing := range []bool{false, true} {
		name := "transfer"
		if closing {
			name = "flush"
		}
		t.Run(name, func(t *testing.T) {
			cl := newCloses()
			const total = 3 << 19 // 1.5 MiB, more than the send buffer holds
			const wt = 300 * time.Millisecond
			_, addr := startEngine(t, Config{WriteTimeout: wt, HighWater: 4 << 20}, func(c *Conn) Handler {
				// A large send buffer, as autotuning makes them (1 MiB with
				// the kernel's doubling; the issue saw 4 MiB): EPOLLOUT
				// needs about a third of it drained.
				_ = unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 512<<10)
				s := &sender{cl: cl, total: total}
				if !closing {
					// Stay in DataTransfer until the client has read all.
					s.then = func(*Conn) {}
				}
				return s
			})
			nc := dialT(t, addr)
			nc.SetReadBuffer(64 << 10)
			nc.SetDeadline(time.Now().Add(30 * time.Second))
			// 16 KiB every 40 ms, ~400 KiB/s: a third of the buffer takes
			// ~0.85 s, nearly three write timeouts, while bytes arrive all
			// the time.
			buf := make([]byte, 16<<10)
			h := &hashWriter{}
			n := 0
			for n < total {
				m, err := nc.Read(buf)
				h.Write(buf[:m])
				n += m
				if err != nil {
					t.Fatalf("read: %v after %d of %d bytes", err, n, total)
				}
				time.Sleep(40 * time.Millisecond)
			}
			if h.Sum() != patternSum(total) {
				t.Fatal("sha256 mismatch")
			}
			nc.Close()
			tr := cl.next(t, 10*time.Second)
			if tr.Outcome == WriteTimeout || tr.Outcome == FlushTimeout {
				t.Fatalf("outcome %v while the reader kept reading; discarded %d", tr.Outcome, tr.Discarded)
			}
			if tr.Discarded != 0 {
				t.Fatalf("outcome %v discarded %d bytes", tr.Outcome, tr.Discarded)
			}
		})
	}
}
