package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/tlsio"
)

// TLS on a listener is a property of the connection, not a layer the
// handler sees: OnData receives plaintext, Write seals, and the close
// sequence's second step is the engine's own close_notify. A crypto/tls
// handshake runs on a short-lived goroutine (tlsio.Conn.HandshakeWork) that
// wakes the loop through Post; a native one runs on the loop except for its
// signature, which goes to the engine's sign pool (signpool.go). The handler's
// OnOpen runs once the handshake is done, so it can pick a protocol by ALPN
// (Conn.TLSInfo).
//
// Policy, after nginx: no close_notify after a fatal TLS error (the alert
// goes out, then FIN), after a timeout other than keep-alive idleness (the
// connection is reset instead), or while unsent data remains (the flush
// timeout resets). A peer's close_notify is a half-close: OnReadEOF runs and
// responses already owed still go out (RFC 8446 §6.1).

// TLSInfo returns the negotiated session, and false for a plaintext
// connection or before the handshake is done.
func (c *Conn) TLSInfo() (tlsio.Info, bool) {
	if c.tls == nil || !c.hsDone {
		return tlsio.Info{}, false
	}
	return c.tls.Info(), true
}

// IsTLS reports whether the connection speaks TLS: it came in on a TLS
// listener, or was dialed with DialTLS.
func (c *Conn) IsTLS() bool { return c.tls != nil }

const plainHTTPBody = "This port speaks HTTPS only. Retry with https://\n"

var plainHTTPResponse = []byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Connection: close\r\nContent-Length: " + itoa(len(plainHTTPBody)) + "\r\n\r\n" + plainHTTPBody)

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// startTLS runs at accept on a TLS listener (after the PROXY header on a
// listener that wants one). The handshake slot, the Handshake state and
// the handshake deadline wait for the client's first byte (admission.go).
func (c *Conn) startTLS(srv *tlsio.Server) {
	l := c.l
	c.tls = srv.NewConn(func() {
		_ = l.Post(c.tlsWake)
	})
}

// startTLSClient runs when a DialTLS connection is connected. Upstream
// handshakes are sluice's own: they are not capped by MaxHandshakes and are
// counted apart (sluice_upstream_tls_handshakes_total).
func (c *Conn) startTLSClient(cl *tlsio.Client) {
	l := c.l
	c.hsUpstream = true
	c.tls = cl.NewConn(func() {
		_ = l.Post(c.tlsWake)
	})
	c.setState(diag.Handshake)
	c.SetTimer(TimerHandshake, int64(l.e.cfg.HandshakeTimeout))
	_ = c.tls.Feed(time.Now(), nil) // the clock for the ClientHello (ticket ages)
}

// tlsWake runs on the loop when the handshake goroutine made progress.
func (c *Conn) tlsWake() {
	if c.state == diag.SocketClosed || c.socketClosing {
		return
	}
	c.tlsPump(nil)
}

// maxHandshakeInput bounds what a peer may send before its handshake is
// done: tlsio buffers everything fed during a handshake. Past it, reads
// pause until the handshake is done (the handshake timeout ends one that
// never is). An honest client's first flights are a few KiB, but a TLS 1.3
// client may send application data right after its Finished, before the
// handshake goroutine has read it: a hyper/rustls client's 1 MiB upload
// did, and was cut as a flood when the machine was busy.
const maxHandshakeInput = 256 << 10

// tlsRead feeds ciphertext to TLS and delivers what comes out.
func (c *Conn) tlsRead(b []byte) {
	if c.side == diag.Downstream && !c.hsDone && !c.hsCounted && !c.admitHandshake() {
		return
	}
	c.admTouch()
	if !c.hsDone && !c.paused && c.trace.BytesIn > maxHandshakeInput {
		c.PauseRead()
		c.hsPaused = true
	}
	err := c.tls.Feed(time.Now(), b)
	c.tlsPump(err)
}

// tlsPump moves everything TLS has for us: a handshake to start, output to
// send, the end of the handshake, plaintext, EOF, and failure.
func (c *Conn) tlsPump(feedErr error) {
	t := c.tls
	if w := t.HandshakeWork(); w != nil {
		c.hsStarted = true
		if sp := c.l.e.sign; sp == nil || tlsio.EngineOf(t) != tlsio.EngineNative || !sp.submit(w) {
			go w()
		}
	}
	if !c.hsStarted && tlsio.HelloComplete(t) {
		// A native handshake hands out work only for its signature (none
		// when resumed), but is under way once its ClientHello is in.
		c.hsStarted = true
	}
	// The failure is read before the output is taken: the handshake
	// goroutine queues its alert before it fails, so the alert of a
	// failure seen here is in this output, never left behind.
	err := feedErr
	if err == nil {
		err = t.Err()
	}
	if out := t.AppendOutput(c.l.sealBuf[:0]); len(out) > 0 {
		c.writeRaw(out)
		c.l.sealBuf = out[:0]
		c.admTouch() // a handshake flight of ours is progress too
	}
	if err != nil {
		c.tlsFailed(err)
		return
	}
	if !c.hsDone {
		if !t.Events().Has(tlsio.HandshakeDone) {
			return
		}
		c.hsDone = true
		if !c.hsUpstream {
			c.quickAck() // the client's Finished: ACK it now (quickack.go)
		}
		if c.hsPaused {
			c.hsPaused = false
			c.ResumeRead()
		}
		c.handshakeFinished(hsOK)
		c.ClearTimer(TimerHandshake)
		c.setState(diag.HandshakeDone)
		if lg := c.l.e.log; lg.Enabled(context.Background(), slog.LevelDebug) {
			in := t.Info()
			lg.Debug("tls handshake done", "conn", diag.ConnID(c.id), "version", in.Version,
				"cipher", in.CipherSuite, "group", in.Group, "alpn", in.ALPN, "sni", in.ServerName, "resumed", in.Resumed)
		}
		c.h.OnOpen(c)
		if c.socketClosing || c.state == diag.SocketClosed {
			return
		}
		if c.l.e.draining.Load() && c.state < diag.ShutdownInitiated {
			c.h.OnDrain(c)
		}
	}
	if c.discardReads {
		return
	}
	// The handler may Write (Seal) while it reads plain: the two staging
	// buffers must never share memory.
	plain, rerr := t.ReadPlaintext(c.l.plainBuf[:0])
	c.l.plainBuf = plain[:0]
	if len(plain) > 0 {
		c.deliver(plain)
	}
	if rerr == io.EOF && !c.appEOF {
		c.appEOF = true
		if ev := t.Events(); ev.Has(tlsio.PeerCloseNotify) {
			c.l.e.met.tlsPeerCloseNotify.Inc()
			c.trace.MarkPeerEnded(diag.PeerCloseNotify, c.l.now())
		}
		c.maybeDeliverEOF()
	} else if rerr != nil && rerr != io.EOF {
		c.tlsFailed(rerr)
	}
}

// tlsFailed ends a connection whose TLS failed. The alert (already queued)
// goes out, then FIN; plaintext HTTP on the TLS port gets a short 400.
func (c *Conn) tlsFailed(err error) {
	if c.socketClosing || c.state >= diag.ShutdownInitiated {
		return
	}
	reason := "tls_error"
	var te *tlsio.Error
	if errors.As(err, &te) && te.Reason != "" {
		reason = te.Reason
	}
	if !c.hsDone {
		c.handshakeFinished(hsError)
	}
	if c.side == diag.Downstream && te != nil {
		c.l.e.met.tlsPathError(tlsio.EngineOf(c.tls), te.Reason)
	}
	if errors.Is(err, tlsio.ErrNotTLS) {
		c.writeRaw(plainHTTPResponse)
	}
	c.l.e.log.Info("tls failed", "conn", diag.ConnID(c.id), "remote", addrString(c.remote), "reason", reason, "err", err)
	c.tlsDead = true
	c.Close(diag.TLSError)
}

// handshakeFinished settles the in-flight count and the metrics once.
func (c *Conn) handshakeFinished(result int) {
	if c.hsUpstream {
		c.hsUpstream = false
		c.l.e.met.upTLSHandshake(result, Now()-c.trace.Entered[diag.Handshake])
		return
	}
	if !c.hsCounted && !c.hsParked {
		return
	}
	e := c.l.e
	if c.hsCounted {
		e.hsInFlight.Add(-1)
	}
	c.hsCounted, c.hsParked = false, false
	c.admLeave()
	e.met.tlsHandshake(result, Now()-c.trace.Entered[diag.Handshake])
	if c.tls != nil {
		e.met.tlsPath(tlsio.EngineOf(c.tls), result)
	}
}

// tlsHandshakeTimeout: no close_notify and no waiting on a peer that could
// not finish a handshake in time.
func (c *Conn) tlsHandshakeTimeout() {
	c.handshakeFinished(hsTimeout)
	c.l.e.log.Info("tls handshake timed out", "conn", diag.ConnID(c.id), "remote", addrString(c.remote))
	c.abort(diag.HandshakeTimeout, true)
}

// tlsCloseNotify is step 2 of the close for a TLS connection.
func (c *Conn) tlsCloseNotify() bool {
	if !c.hsDone || c.tlsDead {
		return false
	}
	out, ok := c.tls.CloseNotify(c.l.sealBuf[:0])
	if len(out) > 0 {
		c.writeRaw(out)
	}
	c.l.sealBuf = out[:0]
	return ok
}

// tlsAbortsOn reports the causes for which a TLS connection is reset rather
// than closed with close_notify.
func tlsAbortsOn(cause diag.Outcome) bool {
	switch cause {
	case diag.HandshakeTimeout, diag.HeaderTimeout, diag.WriteTimeout, diag.FlushTimeout:
		return true
	}
	return false
}

func addrString(a interface{ String() string }) string {
	if a == nil {
		return ""
	}
	return a.String()
}
