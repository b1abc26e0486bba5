package tlsio

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Limits on records that carry nothing useful. Each one costs a decrypt
// and gives no progress, so a peer may send only a few in a row.
const (
	// maxEmptyRun bounds consecutive records without application data or
	// handshake progress: empty application data, change_cipher_spec,
	// user_canceled warnings, declined 0-RTT records.
	maxEmptyRun = 32
	// maxKeyUpdateRun bounds KeyUpdates received without application data
	// between them.
	maxKeyUpdateRun = 32
	// maxHandshakeMsg bounds one handshake message during the handshake;
	// maxPostHandshakeMsg after it (only KeyUpdate is accepted then).
	maxHandshakeMsg     = 1 << 16
	maxPostHandshakeMsg = 1 << 10
	// maxEarlySkip is how much declined 0-RTT data is skipped (Section 4.2.10).
	maxEarlySkip = 1 << 14
)

// nativeConn is sluice's own TLS 1.3 server connection. It decides from the
// first ClientHello: a client that does not offer TLS 1.3 is handed,
// together with every byte it sent, to a crypto/tls connection (fb), and
// every method then forwards to it.
type nativeConn struct {
	srv  *Server
	wake func()

	// closed is set by Close, from any goroutine; the loop acts on it.
	closed atomic.Bool
	// fbp mirrors fb for Close.
	fbp atomic.Pointer[Conn]

	// Loop-only.
	fb        Conn
	now       time.Time
	state     State
	events    Events
	err       *Error
	readEnded bool
	shut      bool // Close has been observed

	pre     []byte // bytes received before the ClientHello was judged (for fb)
	decided bool   // native or fallback has been chosen
	sniffed bool   // the first record looked like TLS
	in      []byte // a partial record (copied), nil when none
	inBox   *[]byte
	hsIn    []byte // partial handshake messages, nil when none
	out     []byte // records waiting for AppendOutput or Seal

	plain    []byte
	plainBox *[]byte

	suite              *suite13
	rd, wr             recordKeys
	rdSecret, wrSecret []byte

	hs   *hsData // handshake-only state; nil once established
	st   hsState
	job  *signJob
	gave bool // HandshakeWork handed job.run out

	info      Info
	sealed    int64 // plaintext bytes sealed under the current write key
	emptyRun  int
	kuRun     int
	earlySkip int

	// For tests: a HelloRetryRequest was sent; KeyUpdates sent.
	hrr        bool
	keyUpdates int
}

func (s *Server) newNativeConn(wake func()) *nativeConn {
	c := &nativeConn{srv: s, wake: wake}
	c.st = expectClientHello{}
	return c
}

// sync notices Close and a finished signature. Every method calls it.
func (c *nativeConn) sync() {
	if c.shut {
		return
	}
	if c.closed.Load() {
		c.shut = true
		c.state = Closed
		c.readEnded = true
		c.release()
		return
	}
	if c.job != nil && c.job.done.Load() {
		j := c.job
		c.job = nil
		if c.state == Handshaking && c.err == nil {
			c.finishFlight(j)
		}
	}
}

// release drops every buffer and the handshake state.
func (c *nativeConn) release() {
	c.pre, c.hsIn, c.out = nil, nil, nil
	c.releaseIn()
	c.hs = nil
	c.releasePlain()
}

// Feed implements Conn. Complete records are decrypted in place in
// ciphertext (the caller's bytes are overwritten); only a partial record
// is copied and kept.
func (c *nativeConn) Feed(now time.Time, b []byte) error {
	c.sync()
	if c.fb != nil {
		return c.fb.Feed(now, b)
	}
	c.now = now
	if c.state == Closed || c.readEnded || len(b) == 0 {
		return c.termErr()
	}
	if !c.decided {
		c.pre = append(c.pre, b...)
		if !c.sniffed {
			switch v, a := sniffFirstRecord(c.pre); v {
			case sniffMore:
				return nil
			case sniffHTTP:
				c.fail(&Error{Reason: ReasonNotTLS, Local: true, Err: ErrNotTLS})
				return c.termErr()
			case sniffBad:
				c.out = appendPlainAlert(c.out, a)
				c.fail(&Error{Reason: ReasonNotTLS, Local: true, HasAlert: true, Alert: a, Err: errBadFirstRecord})
				return c.termErr()
			}
			c.sniffed = true
			b = c.pre // everything so far, the first record included
		}
		// Plaintext records are not modified while parsed, so pre stays
		// intact for a fallback.
		c.records(b)
		if c.fb != nil {
			return c.fb.Err()
		}
		return c.termErr()
	}
	c.records(b)
	return c.termErr()
}

// records parses and handles every complete record of c.in followed by b.
// A pending partial record is completed from the front of b in its own
// (pooled) buffer; the rest of b is decrypted in place.
func (c *nativeConn) records(b []byte) {
	for len(c.in) > 0 && len(b) > 0 {
		want := recordHeaderLen
		if len(c.in) >= recordHeaderLen {
			want += int(c.in[3])<<8 | int(c.in[4])
		}
		take := min(want-len(c.in), len(b))
		c.in = append(c.in, b[:take]...)
		b = b[take:]
		if len(c.in) == recordHeaderLen {
			n := int(c.in[3])<<8 | int(c.in[4])
			if a, err := c.checkHeader(c.in[0], c.in[1], c.in[2], n); err != nil {
				c.releaseIn()
				c.failAlert(a, err)
				return
			}
			if n > 0 {
				continue
			}
		}
		if len(c.in) < recordHeaderLen || len(c.in) < recordHeaderLen+(int(c.in[3])<<8|int(c.in[4])) {
			return // b is used up
		}
		rec := c.in
		c.record(rec)
		c.releaseIn()
		if c.err != nil || c.readEnded || c.fb != nil {
			return
		}
	}
	if len(c.in) > 0 {
		return // still partial: b is used up
	}
	for c.err == nil && !c.readEnded && c.fb == nil {
		if len(b) < recordHeaderLen {
			break
		}
		n := int(b[3])<<8 | int(b[4])
		if a, err := c.checkHeader(b[0], b[1], b[2], n); err != nil {
			c.failAlert(a, err)
			return
		}
		if len(b) < recordHeaderLen+n {
			break
		}
		rec := b[:recordHeaderLen+n]
		b = b[recordHeaderLen+n:]
		c.record(rec)
	}
	if c.err != nil || c.readEnded || c.fb != nil || len(b) == 0 {
		c.releaseIn()
		return
	}
	// Keep the partial record.
	box := inPool.Get().(*[]byte)
	c.in, c.inBox = append((*box)[:0], b...), box
}

// inPool holds buffers for one partial record: they live from the Feed
// that leaves a record incomplete to the one that completes it.
var inPool = sync.Pool{New: func() any { b := make([]byte, 0, recordHeaderLen+maxCiphertext13); return &b }}

// releaseIn drops the partial-record buffer.
func (c *nativeConn) releaseIn() {
	if c.inBox != nil {
		*c.inBox = (*c.inBox)[:0]
		inPool.Put(c.inBox)
		c.inBox = nil
	}
	c.in = nil
}

// checkHeader judges a record header before its body has arrived.
func (c *nativeConn) checkHeader(typ, major, minor byte, n int) (Alert, error) {
	if major != 3 {
		return AlertProtocolVersion, errBadRecordVersion
	}
	switch typ {
	case recordTypeAppData:
		if minor != 3 {
			// Protected records carry 0x0303 (Section 5.1); crypto/tls
			// checks it too.
			return AlertProtocolVersion, errBadRecordVersion
		}
		if n > maxCiphertext13 {
			return AlertRecordOverflow, errRecordOverflow
		}
	case recordTypeHandshake, recordTypeAlert, recordTypeCCS:
		if n > maxPlaintext {
			return AlertRecordOverflow, errRecordOverflow
		}
	default:
		// Section 5: "If a TLS implementation receives an unexpected record
		// type, it MUST terminate the connection with an
		// "unexpected_message" alert."
		return AlertUnexpectedMessage, errUnexpectedRecord
	}
	return 0, nil
}

// record handles one complete record.
func (c *nativeConn) record(rec []byte) {
	typ, body := rec[0], rec[recordHeaderLen:]
	switch typ {
	case recordTypeCCS:
		// Section 5: a change_cipher_spec of one byte 0x01 between the first
		// ClientHello and the client's Finished is dropped; anything else
		// is an unexpected_message.
		if c.hs == nil || c.st == nil || len(body) != 1 || body[0] != 1 || !c.hs.sawHello {
			c.failAlert(AlertUnexpectedMessage, errUnexpectedRecord)
			return
		}
		c.idle()
		return
	case recordTypeHandshake:
		if c.rd.aead != nil {
			c.failAlert(AlertUnexpectedMessage, errPlaintextHandshake)
			return
		}
		c.handshakeBytes(body)
		return
	case recordTypeAlert:
		if c.rd.aead != nil && c.hs == nil {
			c.failAlert(AlertUnexpectedMessage, errUnexpectedRecord)
			return
		}
		c.alert(body)
		return
	}
	// Application data: protected.
	if c.rd.aead == nil {
		c.failAlert(AlertUnexpectedMessage, errUnexpectedRecord)
		return
	}
	inner, pt, a, err := c.rd.open(rec)
	if err != nil {
		if a == AlertBadRecordMAC && c.earlySkip > 0 && len(body) <= c.earlySkip {
			// Declined 0-RTT data under keys we never derived.
			c.earlySkip -= len(body)
			c.idle()
			return
		}
		c.failAlert(a, err)
		return
	}
	c.earlySkip = 0 // the first record that opens ends the 0-RTT data
	switch inner {
	case recordTypeAppData:
		if c.hs != nil {
			c.failAlert(AlertUnexpectedMessage, errEarlyAppData)
			return
		}
		if len(pt) == 0 {
			c.idle()
			return
		}
		c.emptyRun, c.kuRun = 0, 0
		c.appendPlain(pt)
	case recordTypeHandshake:
		if len(pt) == 0 {
			// Section 5.1: "Implementations MUST NOT send zero-length
			// fragments of Handshake types."
			c.failAlert(AlertUnexpectedMessage, errEmptyHandshake)
			return
		}
		c.handshakeBytes(pt)
	case recordTypeAlert:
		c.alert(pt)
	default:
		c.failAlert(AlertUnexpectedMessage, errUnexpectedRecord)
	}
}

// idle counts a record that carried nothing.
func (c *nativeConn) idle() {
	c.emptyRun++
	if c.emptyRun > maxEmptyRun {
		c.failAlert(AlertUnexpectedMessage, errTooManyEmpty)
	}
}

// alert handles a received alert.
func (c *nativeConn) alert(b []byte) {
	if len(b) != 2 {
		c.failAlert(AlertDecodeError, errBadAlert)
		return
	}
	a := Alert(b[1])
	switch a {
	case AlertCloseNotify:
		c.events |= PeerCloseNotify
		c.readEnded = true
		c.hsIn = nil
		c.releaseIn()
		if c.hs != nil {
			// The handshake cannot finish any more.
			c.fail(&Error{Reason: ReasonHandshakeEOF, Local: true, Err: io.EOF})
			return
		}
		if c.events.Has(CloseNotifySent) {
			c.state = Closed
		}
	case AlertUserCanceled:
		// Section 6.1: followed by close_notify; not an error in itself.
		c.idle()
	default:
		// Section 6: in TLS 1.3 every other alert is fatal, whatever its
		// level says.
		c.fail(&Error{Reason: ReasonPeerAlert, Local: false, HasAlert: true, Alert: a, Err: errPeerAlert})
	}
}

// handshakeBytes reassembles handshake messages and hands each to the
// current state.
func (c *nativeConn) handshakeBytes(b []byte) {
	if len(c.hsIn) == 0 {
		c.hsIn = nil
	}
	c.hsIn = append(c.hsIn, b...)
	limit := maxHandshakeMsg
	if c.state != Handshaking {
		limit = maxPostHandshakeMsg
	}
	for c.err == nil && c.fb == nil && len(c.hsIn) >= 4 {
		n := int(c.hsIn[1])<<16 | int(c.hsIn[2])<<8 | int(c.hsIn[3])
		if n > limit {
			c.failAlert(AlertUnexpectedMessage, errHandshakeTooLong)
			return
		}
		if len(c.hsIn) < 4+n {
			return
		}
		msg := c.hsIn[:4+n]
		rest := c.hsIn[4+n:]
		keyChange, err := c.handshakeMsg(msg)
		if err != nil {
			c.handshakeErr(err)
			return
		}
		if c.fb != nil {
			return
		}
		if len(rest) == 0 {
			c.hsIn = nil
			return
		}
		if keyChange {
			// Section 5.1: "Handshake messages MUST NOT span key changes ...
			// implementations MUST verify that all messages immediately
			// preceding a key change align with a record boundary; if not,
			// then they MUST terminate the connection with an
			// "unexpected_message" alert."
			c.failAlert(AlertUnexpectedMessage, errSpansKeyChange)
			return
		}
		c.hsIn = append(c.hsIn[:0], rest...)
	}
}

// handshakeErr ends the connection for an error a state returned.
func (c *nativeConn) handshakeErr(err error) {
	if he, ok := err.(*helloError); ok {
		c.failAlert(he.alert, he)
		return
	}
	if ae, ok := err.(*alertError); ok {
		c.failAlert(ae.alert, ae)
		return
	}
	c.failAlert(AlertInternalError, err)
}

// failAlert fails locally, sending alert a.
func (c *nativeConn) failAlert(a Alert, err error) {
	if c.err != nil {
		return
	}
	c.out = c.wr.seal(c.out, recordTypeAlert, []byte{alertLevelFatal, byte(a)}, 0)
	reason := ReasonBadRecord
	if c.state == Handshaking {
		reason = ReasonHandshake
	}
	c.fail(&Error{Reason: reason, Local: true, HasAlert: true, Alert: a, Err: err})
}

// fail makes e the terminal error.
func (c *nativeConn) fail(e *Error) {
	c.err = e
	c.events |= Fatal
	c.state = Closed
	c.readEnded = true
	c.pre, c.hsIn, c.hs = nil, nil, nil
	c.releaseIn()
	c.srv.count(e.Reason)
}

func (c *nativeConn) termErr() error {
	switch {
	case c.err != nil:
		return c.err
	case c.shut:
		return ErrClosed
	}
	return nil
}

// FeedEOF implements Conn.
func (c *nativeConn) FeedEOF(now time.Time) {
	c.sync()
	if c.fb != nil {
		c.fb.FeedEOF(now)
		return
	}
	if c.state == Closed || c.readEnded {
		return
	}
	partial := len(c.in) > 0 || len(c.hsIn) > 0 || (!c.decided && len(c.pre) > 0 && !atRecordBoundary(c.pre))
	cause := io.EOF
	if partial {
		c.events |= EOFMidRecord
		cause = io.ErrUnexpectedEOF
	} else {
		c.events |= EOFAtRecordBoundary
	}
	if c.state == Handshaking {
		c.fail(&Error{Reason: ReasonHandshakeEOF, Local: true, Err: cause})
		return
	}
	if partial {
		c.fail(&Error{Reason: ReasonTruncated, Local: true, Err: cause})
		return
	}
	c.readEnded = true
	c.hsIn = nil
	c.releaseIn()
	if c.events.Has(CloseNotifySent) {
		c.state = Closed
	}
}

// HandshakeWork implements Conn: for a native connection the function is
// the certificate's signature, handed out once the loop has everything
// else of the server's flight ready. It does not block; it calls wake when
// done (not after Close).
func (c *nativeConn) HandshakeWork() func() {
	c.sync()
	if c.fb != nil {
		return c.fb.HandshakeWork()
	}
	if c.job == nil || c.gave {
		return nil
	}
	c.gave = true
	return c.job.run
}

// ReadPlaintext implements Conn.
func (c *nativeConn) ReadPlaintext(dst []byte) ([]byte, error) {
	c.sync()
	if c.fb != nil {
		return c.fb.ReadPlaintext(dst)
	}
	dst = c.takePlain(dst)
	switch {
	case c.err != nil:
		return dst, c.err
	case c.shut:
		return dst, ErrClosed
	case c.readEnded && c.state != Handshaking:
		return dst, io.EOF
	}
	return dst, nil
}

// Seal implements Conn.
func (c *nativeConn) Seal(dst, plaintext []byte) ([]byte, error) {
	c.sync()
	if c.fb != nil {
		return c.fb.Seal(dst, plaintext)
	}
	if err := c.termErr(); err != nil {
		return dst, err
	}
	switch {
	case c.state == Handshaking:
		return dst, ErrHandshaking
	case c.events.Has(CloseNotifySent):
		return dst, ErrWriteClosed
	}
	dst = c.takeOut(dst)
	for len(plaintext) > 0 {
		if lim := c.srv.keyUpdateAfter; lim > 0 && c.sealed >= lim {
			dst = c.sendKeyUpdate(dst, false)
		}
		n := min(len(plaintext), maxPlaintext)
		dst = c.wr.seal(dst, recordTypeAppData, plaintext[:n], 0)
		c.sealed += int64(n)
		plaintext = plaintext[n:]
	}
	return dst, nil
}

// sendKeyUpdate appends a KeyUpdate under the current keys and moves the
// write side to the next traffic secret.
func (c *nativeConn) sendKeyUpdate(dst []byte, request bool) []byte {
	var r byte
	if request {
		r = 1
	}
	dst = c.wr.seal(dst, recordTypeHandshake, []byte{hsKeyUpdate, 0, 0, 1, r}, 0)
	c.wrSecret = c.suite.nextTrafficSecret(c.wrSecret)
	if err := c.wr.set(c.suite, c.wrSecret); err != nil {
		panic("tlsio: " + err.Error()) // key sizes are fixed per suite
	}
	c.sealed = 0
	c.keyUpdates++
	return dst
}

func (c *nativeConn) takeOut(dst []byte) []byte {
	if len(c.out) == 0 {
		return dst
	}
	if len(dst) == 0 && cap(dst) < len(c.out) {
		dst, c.out = c.out, nil
		return dst
	}
	dst = append(dst, c.out...)
	c.out = nil
	return dst
}

// AppendOutput implements Conn.
func (c *nativeConn) AppendOutput(dst []byte) []byte {
	c.sync()
	if c.fb != nil {
		return c.fb.AppendOutput(dst)
	}
	return c.takeOut(dst)
}

// CloseNotify implements Conn.
func (c *nativeConn) CloseNotify(dst []byte) ([]byte, bool) {
	c.sync()
	if c.fb != nil {
		return c.fb.CloseNotify(dst)
	}
	dst = c.takeOut(dst)
	if c.state != Established || c.err != nil || c.events.Has(CloseNotifySent) {
		return dst, false
	}
	dst = c.wr.seal(dst, recordTypeAlert, []byte{1, byte(AlertCloseNotify)}, 0)
	c.events |= CloseNotifySent
	if c.readEnded {
		c.state = Closed
	}
	return dst, true
}

// State implements Conn.
func (c *nativeConn) State() State {
	c.sync()
	if c.fb != nil {
		return c.fb.State()
	}
	return c.state
}

// Events implements Conn.
func (c *nativeConn) Events() Events {
	c.sync()
	if c.fb != nil {
		return c.fb.Events()
	}
	return c.events
}

// Err implements Conn.
func (c *nativeConn) Err() error {
	c.sync()
	if c.fb != nil {
		return c.fb.Err()
	}
	if c.err == nil {
		return nil
	}
	return c.err
}

// Info implements Conn.
func (c *nativeConn) Info() Info {
	c.sync()
	if c.fb != nil {
		return c.fb.Info()
	}
	if !c.events.Has(HandshakeDone) {
		return Info{}
	}
	return c.info
}

// Close implements Conn. From another goroutine it only sets a flag; the
// buffers are dropped by the loop's next call.
func (c *nativeConn) Close() {
	c.closed.Store(true)
	if fb := c.fbp.Load(); fb != nil {
		(*fb).Close()
	}
}

// fallback hands the connection to crypto/tls, replaying what it sent.
func (c *nativeConn) fallback() {
	fb := c.srv.newStdConn(c.wake)
	c.fb = fb
	c.fbp.Store(&fb)
	if c.closed.Load() {
		fb.Close()
	}
	pre := c.pre
	c.pre, c.hsIn, c.hs, c.out = nil, nil, nil, nil
	c.releaseIn()
	_ = fb.Feed(c.now, pre)
}

// appendPlain queues decrypted application data for ReadPlaintext.
func (c *nativeConn) appendPlain(p []byte) {
	if cap(c.plain)-len(c.plain) < len(p) {
		need := len(c.plain) + len(p)
		if cap(c.plain) > 0 {
			need = max(need, 2*cap(c.plain))
		}
		var box *[]byte
		var grown []byte
		switch {
		case need <= plainSmall:
			box = plainPools[0].Get().(*[]byte)
		case need <= plainLarge:
			box = plainPools[1].Get().(*[]byte)
		default:
			grown = make([]byte, 0, need)
		}
		if box != nil {
			grown = (*box)[:0]
		}
		grown = append(grown, c.plain...)
		c.releasePlain()
		c.plain, c.plainBox = grown, box
	}
	c.plain = append(c.plain, p...)
}

func (c *nativeConn) releasePlain() {
	if b := c.plainBox; b != nil {
		*b = (*b)[:0]
		if cap(*b) == plainSmall {
			plainPools[0].Put(b)
		} else {
			plainPools[1].Put(b)
		}
		c.plainBox = nil
	}
	c.plain = nil
}

func (c *nativeConn) takePlain(dst []byte) []byte {
	if len(c.plain) == 0 {
		return dst
	}
	if len(dst) == 0 && cap(dst) < len(c.plain) {
		dst = c.plain
		c.plain, c.plainBox = nil, nil
		return dst
	}
	dst = append(dst, c.plain...)
	c.releasePlain()
	return dst
}

// InputPending implements Conn: Feed reads what it is given at once (a
// fallback to crypto/tls answers for itself).
func (c *nativeConn) InputPending() bool {
	if c.fb != nil {
		return c.fb.InputPending()
	}
	return false
}
