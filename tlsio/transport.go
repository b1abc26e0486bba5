package tlsio

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// wouldBlock is what transport.Read returns after the handshake when it has
// no bytes. crypto/tls treats a net.Error whose Temporary() is true as
// retryable: it keeps the partial record it has buffered and does not make
// the error sticky (TestPinTemporaryReadRetry pins this).
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tlsio: no buffered ciphertext" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var errWouldBlock net.Error = wouldBlock{}

// transport is the in-memory net.Conn under crypto/tls. During the
// handshake its Read blocks (on cond) until Feed, FeedEOF or Close; once the
// handshake function has returned ("inline"), Read returns errWouldBlock
// instead of blocking, and crypto/tls is driven directly by the loop.
type transport struct {
	mu   sync.Mutex
	cond sync.Cond

	// Guarded by mu: written by the loop, the handshake goroutine and Close.
	in      []byte // ciphertext crypto/tls has not read yet
	out     []byte // ciphertext waiting for AppendOutput
	eof     bool   // FeedEOF was called
	gaveEOF bool   // Read returned io.EOF to crypto/tls
	closed  bool   // Close was called
	inline  bool   // the handshake function has returned
	hsErr   error  // the handshake's result, valid once inline
	// The last plaintext alert crypto/tls wrote during the handshake: it
	// names the alert when the returned error does not.
	lastAlert Alert
	sawAlert  bool

	// closedFlag mirrors closed so the loop can poll it without the lock.
	closedFlag atomic.Bool

	wake func() // immutable

	// Loop-only, used after the handshake: while sealing, Write appends to
	// sealDst so records land in the caller's buffer in order.
	sealing bool
	sealDst []byte
}

func (t *transport) init(wake func()) {
	t.cond.L = &t.mu
	t.wake = wake
}

// Read implements net.Conn for crypto/tls.
func (t *transport) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		switch {
		case t.closed:
			return 0, net.ErrClosed
		case len(t.in) > 0:
			n := copy(p, t.in)
			t.in = t.in[n:]
			if len(t.in) == 0 {
				t.in = nil
			}
			return n, nil
		case t.eof:
			t.gaveEOF = true
			return 0, io.EOF
		case t.inline:
			return 0, errWouldBlock
		}
		t.cond.Wait()
	}
}

// Write implements net.Conn for crypto/tls.
func (t *transport) Write(p []byte) (int, error) {
	if t.sealing {
		t.sealDst = append(t.sealDst, p...)
		return len(p), nil
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return 0, net.ErrClosed
	}
	wake := !t.inline
	if wake {
		t.noteAlerts(p)
	}
	t.out = append(t.out, p...)
	t.mu.Unlock()
	// Only the handshake goroutine needs to wake the loop; after it the
	// loop itself is the writer.
	if wake && t.wake != nil {
		t.wake()
	}
	return len(p), nil
}

// noteAlerts remembers a plaintext alert record in p (only plaintext ones
// have type 21 and length 2).
func (t *transport) noteAlerts(p []byte) {
	for len(p) >= recordHeaderLen {
		n := int(p[3])<<8 | int(p[4])
		if p[0] == recordTypeAlert && n == 2 && len(p) >= recordHeaderLen+2 {
			t.lastAlert, t.sawAlert = Alert(p[6]), true
		}
		if len(p) < recordHeaderLen+n {
			return
		}
		p = p[recordHeaderLen+n:]
	}
}

// push queues ciphertext for the handshake goroutine.
func (t *transport) push(b []byte) {
	t.mu.Lock()
	if !t.closed {
		t.in = append(t.in, b...)
		t.cond.Signal()
	}
	t.mu.Unlock()
}

// setEOF records the end of the transport.
func (t *transport) setEOF() {
	t.mu.Lock()
	t.eof = true
	t.cond.Signal()
	t.mu.Unlock()
}

// finish is called by the handshake goroutine when crypto/tls returns.
func (t *transport) finish(err error) {
	t.mu.Lock()
	t.inline, t.hsErr = true, err
	closed := t.closed
	t.mu.Unlock()
	if !closed && t.wake != nil {
		t.wake()
	}
}

// take appends and releases pending output.
func (t *transport) take(dst []byte) []byte {
	t.mu.Lock()
	dst = append(dst, t.out...)
	t.out = nil
	t.mu.Unlock()
	return dst
}

// shut implements Conn.Close.
func (t *transport) shut() {
	t.mu.Lock()
	t.closed = true
	t.closedFlag.Store(true)
	t.in, t.out = nil, nil
	t.cond.Broadcast()
	t.mu.Unlock()
}

// Close implements net.Conn. crypto/tls calls it only from tls.Conn.Close,
// which tlsio never calls.
func (t *transport) Close() error { t.shut(); return nil }

// LocalAddr implements net.Conn.
func (t *transport) LocalAddr() net.Addr { return memAddr{} }

// RemoteAddr implements net.Conn.
func (t *transport) RemoteAddr() net.Addr { return memAddr{} }

// SetDeadline implements net.Conn; deadlines are the caller's business.
func (t *transport) SetDeadline(time.Time) error { return nil }

// SetReadDeadline implements net.Conn.
func (t *transport) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline implements net.Conn. crypto/tls sets one around
// close_notify; writes here never block, so it is ignored.
func (t *transport) SetWriteDeadline(time.Time) error { return nil }

// memAddr is the address of the in-memory transport.
type memAddr struct{}

func (memAddr) Network() string { return "tlsio" }
func (memAddr) String() string  { return "tlsio" }
