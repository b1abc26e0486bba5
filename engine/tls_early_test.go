package engine

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// heldConn holds back what the TLS client writes once the server's first
// flight is in (its Finished, then application data), and sends it all
// in one write on flush: the server reads the Finished and a burst of
// data together, before its handshake goroutine has checked the Finished.
type heldConn struct {
	net.Conn
	mu   sync.Mutex
	read bool
	held []byte
}

func (h *heldConn) Read(b []byte) (int, error) {
	n, err := h.Conn.Read(b)
	h.mu.Lock()
	h.read = true
	h.mu.Unlock()
	return n, err
}

func (h *heldConn) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.read {
		h.held = append(h.held, b...)
		return len(b), nil
	}
	return h.Conn.Write(b)
}

func (h *heldConn) flush() error {
	h.mu.Lock()
	b := h.held
	h.held = nil
	h.mu.Unlock()
	_, err := h.Conn.Write(b)
	return err
}

// A TLS 1.3 client may send application data right after its Finished.
// 2 MiB arriving with the Finished, before the handshake is done on the
// server, is paused for, not cut as a handshake flood: every byte comes
// back. (A hyper/rustls client's 1 MiB upload was cut this way.)
func TestTLSDataRightAfterFinishedIsNotAFlood(t *testing.T) {
	f := newTLSFixture(t)
	cl := newCloses()
	_, addr := startTLSEngine(t, f, Config{}, func(c *Conn) Handler { return &echo{cl: cl} })
	msg := bytes.Repeat([]byte("0123456789abcdef"), 2<<20/16)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(20 * time.Second))
			h := &heldConn{Conn: nc}
			tc := tls.Client(h, &tls.Config{RootCAs: f.pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})
			if err := tc.Handshake(); err != nil {
				errs <- err
				return
			}
			if _, err := tc.Write(msg); err != nil {
				errs <- err
				return
			}
			go h.flush()
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(tc, got); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, msg) {
				errs <- io.ErrUnexpectedEOF
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
