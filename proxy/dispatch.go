package proxy

import (
	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h1"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
)

// Protocol dispatch. On a TLS listener the protocol is what ALPN chose:
// "h2" is HTTP/2, anything else (http/1.1, or no ALPN) HTTP/1.1. On a
// cleartext listener a connection whose first 24 bytes are the HTTP/2
// client preface is HTTP/2 with prior knowledge (RFC 9113 §3.3, "h2c");
// a first line ending in an HTTP/1.x version is HTTP/1.1, and anything
// else is closed at once. The HTTP/1.1 "Upgrade: h2c" dance is not
// offered (RFC 9113 deprecates it). Until the first bytes tell, the
// HTTP/1.1 handler owns the connection's timers, so a client that sends
// nothing meets the header timeout as any HTTP/1.1 client would.

// httpConn is the handler the listener gets for every connection: it
// hands each event to the HTTP/1.1 or the HTTP/2 handler, once chosen.
// Loop-owned.
type httpConn struct {
	h  *HTTP
	ls *loopState
	cc *clientConn // HTTP/1.1, or nil
	hc *h2Conn     // HTTP/2, or nil
	// sniff: cleartext, no byte seen yet that tells HTTP/1.1 from h2c.
	sniff bool
}

// Accept serves a new client connection. It runs on the connection's loop.
func (h *HTTP) Accept(c *engine.Conn) engine.Handler {
	return &httpConn{h: h, ls: h.loopState(c.Loop())}
}

// OnOpen chooses the protocol of a TLS connection (the handshake is done
// by now) or starts sniffing a cleartext one.
func (d *httpConn) OnOpen(c *engine.Conn) {
	if c.IsTLS() {
		if info, ok := c.TLSInfo(); ok && info.ALPN == "h2" {
			d.hc = newH2Conn(d.h, d.ls, c)
			d.hc.OnOpen(c)
			return
		}
	} else {
		d.sniff = true
	}
	d.cc = newClientConn(d.h, d.ls, c)
	d.cc.OnOpen(c)
}

// OnData passes bytes on. While sniffing it consumes nothing (the engine
// keeps the bytes and adds the next read) until they match the whole
// preface (HTTP/2), or hold a first line that ends in an HTTP/1.x version
// (HTTP/1.1, whose handler then sees them all). A first line that is
// neither is no protocol spoken here: the connection closes without a
// word, as for an invalid preface (RFC 9113 §3.4: "MUST treat an invalid
// connection preface as a connection error").
func (d *httpConn) OnData(c *engine.Conn, b []byte) int {
	if d.hc != nil {
		return d.hc.OnData(c, b)
	}
	if d.sniff {
		const pri = len("PRI * HTTP/2.0") // a line only an HTTP/2 client sends
		k := min(len(b), len(h2.ClientPreface))
		i := 0
		for i < k && b[i] == h2.ClientPreface[i] {
			i++
		}
		switch {
		case i == len(h2.ClientPreface):
			// HTTP/2 with prior knowledge: the HTTP/1.1 handler saw
			// nothing and leaves; h2 takes over the timers.
			d.sniff = false
			d.cc = nil
			d.hc = newH2Conn(d.h, d.ls, c)
			d.hc.OnOpen(c)
			return d.hc.OnData(c, b)
		case i == k:
			return 0 // a prefix of the preface so far
		case i >= pri:
			c.Close(diag.ProtocolError) // a broken HTTP/2 preface
			return 0
		}
		switch httpVersionLine(b, d.h.reqCfg.MaxRequestLine) {
		case lineIncomplete:
			return 0
		case lineNotHTTP:
			c.Close(diag.ProtocolError)
			return 0
		}
		d.sniff = false
	}
	return d.cc.OnData(c, b)
}

const (
	lineHTTP       = iota // the first line ends in an HTTP/ version (or is too long to tell: HTTP/1.1 answers 414)
	lineIncomplete        // no line end yet
	lineNotHTTP           // a complete first line without an HTTP/ version
)

// httpVersionLine classifies the first line of b.
func httpVersionLine(b []byte, maxLine int) int {
	if maxLine <= 0 {
		maxLine = h1.DefaultMaxRequestLine
	}
	end := -1
	for i, c := range b {
		if c == '\n' {
			end = i
			break
		}
	}
	if end < 0 {
		if len(b) <= maxLine+1 {
			return lineIncomplete
		}
		return lineHTTP
	}
	line := b[:end]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	sp := -1
	for i := len(line) - 1; i >= 0; i-- {
		if line[i] == ' ' {
			sp = i
			break
		}
	}
	if sp < 0 || len(line)-sp-1 < 5 || string(line[sp+1:sp+6]) != "HTTP/" {
		return lineNotHTTP
	}
	return lineHTTP
}

// OnReadEOF passes the client's FIN on.
func (d *httpConn) OnReadEOF(c *engine.Conn) {
	if d.hc != nil {
		d.hc.OnReadEOF(c)
		return
	}
	d.cc.OnReadEOF(c)
}

// OnWritable passes the event on.
func (d *httpConn) OnWritable(c *engine.Conn) {
	if d.hc != nil {
		d.hc.OnWritable(c)
		return
	}
	d.cc.OnWritable(c)
}

// OnTimer passes the event on.
func (d *httpConn) OnTimer(c *engine.Conn, k engine.TimerKind) {
	if d.hc != nil {
		d.hc.OnTimer(c, k)
		return
	}
	d.cc.OnTimer(c, k)
}

// OnDrain passes the event on.
func (d *httpConn) OnDrain(c *engine.Conn) {
	if d.hc != nil {
		d.hc.OnDrain(c)
		return
	}
	if d.cc != nil {
		d.cc.OnDrain(c)
		return
	}
	if c.Successor() {
		// A restart: the handshake's client is about to send a request;
		// the drain reaches it again once the handshake is done.
		return
	}
	c.Close(diag.Clean) // drained before the handshake finished
}

// OnClosed passes the event on.
func (d *httpConn) OnClosed(c *engine.Conn, t *diag.Trace) {
	if d.hc != nil {
		d.hc.OnClosed(c, t)
		return
	}
	if d.cc != nil {
		d.cc.OnClosed(c, t)
	}
}
