package tlsio

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// stdConn is the Conn implementation backed by crypto/tls. The handshake
// runs tls.Conn.Handshake on the caller's goroutine over transport; after
// it the loop calls tls.Conn.Read and Write directly, and transport never
// blocks.
type stdConn struct {
	ep *endpoint
	t  transport // shared state, see transport

	// ran guards the handshake function against a second call.
	ran atomic.Bool

	// Loop-only. tc is also used by the handshake goroutine, but only while
	// the loop does not touch it (between started and the handshake result
	// being observed in sync).
	tc        *tls.Conn
	state     State
	events    Events
	err       *Error // the terminal failure
	plain     []byte // decrypted, waiting for ReadPlaintext (see plain.go)
	plainBox  *[]byte
	probe     [1]byte
	ready     bool // the first record is complete
	started   bool // HandshakeWork returned the function
	readEnded bool // no more ciphertext will be decrypted
	closed    bool // Close has been observed by the loop
}

// Feed implements Conn.
func (c *stdConn) Feed(now time.Time, b []byte) error {
	if c.state == Handshaking {
		c.ep.setNow(now)
	}
	c.sync()
	if c.state == Closed || c.readEnded || len(b) == 0 {
		return c.termErr()
	}
	switch {
	case !c.started:
		c.feedFirst(b)
	case c.state == Handshaking:
		c.t.push(b)
		// The handshake may have finished just before the push: if so,
		// decrypt now rather than at the next call.
		c.sync()
	default:
		c.t.mu.Lock()
		if !c.t.closed {
			// Lend the caller's bytes: drain reads until the transport is
			// empty or the read side ends, and in is dropped below either
			// way, so b is never retained.
			c.t.in = b
		}
		c.t.mu.Unlock()
		c.drain()
		c.t.mu.Lock()
		c.t.in = nil
		c.t.mu.Unlock()
	}
	return c.termErr()
}

// feedFirst buffers bytes before the handshake and judges the first record.
func (c *stdConn) feedFirst(b []byte) {
	c.t.mu.Lock()
	c.t.in = append(c.t.in, b...)
	p := c.t.in
	c.t.mu.Unlock()
	if c.ready {
		return
	}
	switch v, a := sniffFirstRecord(p); v {
	case sniffReady:
		c.ready = true
	case sniffHTTP:
		c.fail(&Error{Reason: ReasonNotTLS, Local: true, Err: ErrNotTLS})
	case sniffBad:
		c.t.mu.Lock()
		c.t.out = appendPlainAlert(c.t.out, a)
		c.t.mu.Unlock()
		c.fail(&Error{Reason: ReasonNotTLS, Local: true, HasAlert: true, Alert: a, Err: errBadFirstRecord})
	}
}

// FeedEOF implements Conn.
func (c *stdConn) FeedEOF(now time.Time) {
	if c.state == Handshaking {
		c.ep.setNow(now)
	}
	c.sync()
	if c.state == Closed || c.readEnded {
		return
	}
	c.t.setEOF()
	switch {
	case !c.started:
		c.t.mu.Lock()
		boundary := atRecordBoundary(c.t.in)
		c.t.mu.Unlock()
		cause := io.EOF
		if boundary {
			c.events |= EOFAtRecordBoundary
		} else {
			c.events |= EOFMidRecord
			cause = io.ErrUnexpectedEOF
		}
		c.fail(&Error{Reason: ReasonHandshakeEOF, Local: true, Err: cause})
	case c.state == Established:
		c.drain()
	}
	// Handshaking: the handshake goroutine sees EOF and fails; sync reports it.
}

// atRecordBoundary reports whether p is a sequence of complete records.
func atRecordBoundary(p []byte) bool {
	for len(p) >= recordHeaderLen {
		n := recordHeaderLen + (int(p[3])<<8 | int(p[4]))
		if len(p) < n {
			return false
		}
		p = p[n:]
	}
	return len(p) == 0
}

// HandshakeWork implements Conn. A server's handshake starts once the
// client's first record is complete, a client's at once.
func (c *stdConn) HandshakeWork() func() {
	c.sync()
	if c.started || !c.ready || c.state != Handshaking {
		return nil
	}
	c.started = true
	if c.ep.client {
		c.tc = tls.Client(&c.t, c.ep.config)
	} else {
		c.tc = tls.Server(&c.t, c.ep.config)
	}
	return c.handshake
}

// handshake is the function HandshakeWork hands out.
func (c *stdConn) handshake() {
	if !c.ran.CompareAndSwap(false, true) {
		return
	}
	c.t.finish(c.tc.Handshake())
}

// sync moves the loop's view forward: it notices Close and the end of the
// handshake. Every loop method calls it first.
func (c *stdConn) sync() {
	if c.closed {
		return
	}
	if c.t.closedFlag.Load() {
		c.closed = true
		c.state = Closed
		c.readEnded = true
		c.releasePlain()
		return
	}
	if c.state != Handshaking || !c.started {
		return
	}
	c.t.mu.Lock()
	done, hsErr, alert, sawAlert := c.t.inline, c.t.hsErr, c.t.lastAlert, c.t.sawAlert
	c.t.mu.Unlock()
	if !done {
		return
	}
	if hsErr != nil {
		e := classify(hsErr, true, alert, sawAlert)
		switch {
		case errors.Is(hsErr, io.ErrUnexpectedEOF):
			c.events |= EOFMidRecord
		case errors.Is(hsErr, io.EOF):
			c.events |= EOFAtRecordBoundary
		case errors.Is(hsErr, net.ErrClosed):
			// Close raced with the handshake; the next sync reports it.
			c.state = Closed
			return
		}
		c.fail(e)
		return
	}
	c.state = Established
	c.events |= HandshakeDone
	// Application data may have arrived with the client's Finished.
	c.drain()
}

// drain decrypts everything the transport and crypto/tls hold.
func (c *stdConn) drain() {
	for !c.readEnded {
		if len(c.plain) == cap(c.plain) && cap(c.plain) > 0 {
			// Full: probe for one more byte before growing, since most of
			// the time nothing more is buffered.
			n, err := c.tc.Read(c.probe[:])
			if n == 1 {
				c.growPlain()
				c.plain = append(c.plain, c.probe[0])
			}
			if err != nil && c.readErr(err) {
				break
			}
			continue
		}
		if cap(c.plain) == 0 {
			c.growPlain()
		}
		n, err := c.tc.Read(c.plain[len(c.plain):cap(c.plain)])
		c.plain = c.plain[:len(c.plain)+n]
		if err != nil && c.readErr(err) {
			break
		}
	}
	if len(c.plain) == 0 {
		c.releasePlain()
	}
}

// readErr handles an error from tls.Conn.Read and reports whether to stop.
func (c *stdConn) readErr(err error) bool {
	if err != errWouldBlock {
		c.endRead(err)
	}
	return true
}

// endRead handles a non-retryable error from tls.Conn.Read.
func (c *stdConn) endRead(err error) {
	c.readEnded = true
	switch {
	case errors.Is(err, net.ErrClosed):
		c.state = Closed
	case err == io.EOF:
		// crypto/tls says io.EOF both for close_notify and for a transport
		// EOF at a record boundary; only in the latter did it see our EOF.
		c.t.mu.Lock()
		gave := c.t.gaveEOF
		c.t.in = nil
		c.t.mu.Unlock()
		if gave {
			c.events |= EOFAtRecordBoundary
		} else {
			c.events |= PeerCloseNotify
		}
		if c.events.Has(CloseNotifySent) {
			c.state = Closed
		}
	default:
		if errors.Is(err, io.ErrUnexpectedEOF) {
			c.events |= EOFMidRecord
		}
		c.fail(classify(err, false, 0, false))
	}
}

// fail makes e the terminal error.
func (c *stdConn) fail(e *Error) {
	c.err = e
	c.events |= Fatal
	c.state = Closed
	c.readEnded = true
	c.t.mu.Lock()
	c.t.in = nil
	c.t.mu.Unlock()
	c.ep.count(e.Reason)
}

// termErr is what Feed and Seal return once nothing more can be done.
func (c *stdConn) termErr() error {
	switch {
	case c.err != nil:
		return c.err
	case c.closed:
		return ErrClosed
	}
	return nil
}

// ReadPlaintext implements Conn.
func (c *stdConn) ReadPlaintext(dst []byte) ([]byte, error) {
	c.sync()
	dst = c.takePlain(dst)
	switch {
	case c.err != nil:
		return dst, c.err
	case c.closed:
		return dst, ErrClosed
	case c.readEnded:
		return dst, io.EOF
	}
	return dst, nil
}

// Seal implements Conn.
func (c *stdConn) Seal(dst, plaintext []byte) ([]byte, error) {
	c.sync()
	if err := c.termErr(); err != nil {
		return dst, err
	}
	switch {
	case c.state == Handshaking:
		return dst, ErrHandshaking
	case c.events.Has(CloseNotifySent):
		return dst, ErrWriteClosed
	}
	dst = c.t.take(dst)
	c.t.sealing, c.t.sealDst = true, dst
	_, err := c.tc.Write(plaintext)
	dst = c.t.sealDst
	c.t.sealing, c.t.sealDst = false, nil
	if err != nil {
		// Write fails only after a read-side failure that sync has
		// already reported, or after Close.
		c.fail(classify(err, false, 0, false))
		return dst, c.err
	}
	return dst, nil
}

// AppendOutput implements Conn.
func (c *stdConn) AppendOutput(dst []byte) []byte {
	c.sync()
	return c.t.take(dst)
}

// CloseNotify implements Conn.
func (c *stdConn) CloseNotify(dst []byte) ([]byte, bool) {
	c.sync()
	dst = c.t.take(dst)
	if c.state != Established || c.err != nil || c.events.Has(CloseNotifySent) {
		return dst, false
	}
	c.t.sealing, c.t.sealDst = true, dst
	err := c.tc.CloseWrite()
	dst = c.t.sealDst
	c.t.sealing, c.t.sealDst = false, nil
	c.events |= CloseNotifySent
	if c.readEnded {
		c.state = Closed
	}
	return dst, err == nil
}

// State implements Conn.
func (c *stdConn) State() State {
	c.sync()
	return c.state
}

// Events implements Conn.
func (c *stdConn) Events() Events {
	c.sync()
	return c.events
}

// Err implements Conn.
func (c *stdConn) Err() error {
	c.sync()
	if c.err == nil {
		return nil
	}
	return c.err
}

// Info implements Conn.
func (c *stdConn) Info() Info {
	c.sync()
	if !c.events.Has(HandshakeDone) {
		return Info{}
	}
	cs := c.tc.ConnectionState()
	return Info{
		Version:     cs.Version,
		CipherSuite: cs.CipherSuite,
		Group:       uint16(cs.CurveID),
		ALPN:        cs.NegotiatedProtocol,
		ServerName:  cs.ServerName,
		Resumed:     cs.DidResume,
		Engine:      EngineStdlib,
	}
}

// Close implements Conn.
func (c *stdConn) Close() { c.t.shut() }

// InputPending implements Conn.
func (c *stdConn) InputPending() bool {
	if c.state != Handshaking || !c.started {
		return false
	}
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	return len(c.t.in) > 0
}
