package proxy

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"

	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
)

// WebSocket over HTTP/2 (RFC 8441). A client that saw
// SETTINGS_ENABLE_CONNECT_PROTOCOL opens a WebSocket as an extended
// CONNECT stream (:method CONNECT, :protocol websocket, :scheme, :path,
// :authority). It is routed like any request and goes to an HTTP/1.1
// upstream as the RFC 6455 handshake: GET with Connection: Upgrade,
// Upgrade: websocket and a Sec-WebSocket-Key of sluice's own (RFC 8441
// §4: the HTTP/2 side carries none). The upstream's 101 is checked
// (Sec-WebSocket-Accept must match that key) and answered to the client
// as :status 200 with the upstream's other fields (subprotocol,
// extensions); any other upstream answer is passed on as an ordinary
// response. From the 200 on the stream is a tunnel:
//
//   - client DATA goes to the upstream as it comes, credited to the
//     client's window only as the upstream's engine output takes it;
//   - upstream bytes go out as DATA as far as the client's windows allow,
//     the upstream's reads pausing while they do not;
//   - END_STREAM from the client half-closes the upstream (FIN), the
//     upstream's FIN ends the stream (END_STREAM); when both sides have
//     ended, the upstream connection closes cleanly;
//   - a reset on either side resets the other; TunnelIdleTimeout without a
//     byte either way ends both, as for an HTTP/1.1 tunnel.
//
// The setting is advertised only when every upstream speaks HTTP/1.1
// (http:// or https://): an h2c or h2 upstream would need extended
// CONNECT of its own, which sluice does not speak upstream. A request
// that still reaches one gets 501.

// wsGUID is RFC 6455's key suffix for Sec-WebSocket-Accept.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// newWSKey makes a fresh Sec-WebSocket-Key: 16 random bytes, base64.
func newWSKey() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather)
	return base64.StdEncoding.EncodeToString(b[:])
}

// wsAccept is the Sec-WebSocket-Accept an upstream must answer key with.
func wsAccept(key string) string {
	s := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(s[:])
}

// upgrade takes the upstream's 101 for a WebSocket stream: the handshake
// is checked, the client gets its 200, and the stream becomes a tunnel.
// It reports false (the attempt fails as a bad response) for a 101 that
// was not asked for or does not prove it read our key.
func (st *h2Stream) upgrade(uc *upConn, rest []byte) bool {
	x := &st.x
	if !x.upgrade || st.tunnel {
		return false
	}
	resp := &uc.resp
	if string(resp.Headers.Get("Sec-WebSocket-Accept")) != wsAccept(st.wsKey) {
		return false
	}
	hc := st.hc
	h := hc.h
	now := hc.ls.l.Now()
	x.headAt = now
	h.m.upHeadDur.Update(engine.Dur(now - x.sentAt).Seconds())
	fields := hc.h1ToH2Fields(resp)
	fields[0].Value = "200"
	out := fields[:1]
	for _, f := range fields[1:] {
		// RFC 9110 §9.3.6: no Content-Length in a 2xx to CONNECT.
		if f.Name != "sec-websocket-accept" && f.Name != "content-length" {
			out = append(out, f)
		}
	}
	if err := hc.sc.WriteHeaders(st.id, out, false); err != nil {
		return false
	}
	hc.kick()
	x.status = 200
	x.resp = respStarted
	st.tunnel = true
	h.m.tunnelStart(tunH2)
	// The attempt succeeded: like an HTTP/1.1 tunnel it no longer counts
	// as load for balancing; the connection stays busy.
	endAttemptOn(uc.u, resOK)
	h.succeeded(uc.u)
	uc.c.ClearTimer(engine.TimerProto)
	uc.state = ucTunnel
	uc.c.SetTimer(engine.TimerIdle, h.tunnelIdle)
	if len(rest) > 0 {
		st.tunnelFromUpstream(uc, rest)
	}
	st.pumpRequest()
	return true
}

// pumpTunnel hands client DATA to the upstream while it is under its
// high-water mark, and passes the client's END_STREAM on as a FIN.
func (st *h2Stream) pumpTunnel(uc *upConn) {
	x := &st.x
	hc := st.hc
	if len(st.reqPend) > 0 {
		if uc.c.OverHighWater() {
			uc.c.NotifyWritable()
			return
		}
		hc.sc.Consumed(st.id, len(st.reqPend))
		hc.kick()
		uc.c.Write(st.reqPend)
		st.reqPend = st.reqPend[:0]
		uc.c.SetTimer(engine.TimerIdle, hc.h.tunnelIdle)
	}
	if st.reqEnd && !st.upWShut && x.uc == uc {
		st.upWShut = true
		uc.c.CloseWrite()
		st.tunnelMaybeOver(uc)
	}
}

// tunnelFromUpstream passes upstream bytes on as DATA; what the client's
// windows do not take waits in pend and the upstream stops being read.
func (st *h2Stream) tunnelFromUpstream(uc *upConn, b []byte) {
	if !st.tunnel || st.done {
		return
	}
	uc.c.SetTimer(engine.TimerIdle, st.hc.h.tunnelIdle)
	st.sendBody(b, false)
	if st.blocked() && st.x.uc == uc {
		uc.pauseRead()
	}
}

// tunnelEOF: the upstream's FIN ends the stream (after what pend holds).
func (st *h2Stream) tunnelEOF(uc *upConn) {
	if !st.tunnel || st.done || st.upEOF {
		return
	}
	st.upEOF = true
	st.finishOut(nil)
	st.tunnelMaybeOver(uc)
}

// tunnelMaybeOver closes the upstream connection once both directions
// have ended.
func (st *h2Stream) tunnelMaybeOver(uc *upConn) {
	x := &st.x
	if !st.upEOF || !st.upWShut || x.uc != uc {
		return
	}
	x.uc = nil
	x.resp = respDone
	uc.end(diag.Clean, false)
	st.upDone = true
	st.maybeDone()
}

// tunnelIdle: nothing moved either way for TunnelIdleTimeout. Both sides
// end: the upstream connection closes, the stream ends after pend.
func (st *h2Stream) tunnelIdle() {
	x := &st.x
	if uc := x.uc; uc != nil {
		x.uc = nil
		uc.end(diag.IdleTimeout, false)
	}
	x.resp = respDone
	st.upDone = true
	if !st.outEnd {
		st.finishOut(nil)
	}
	st.maybeDone()
}

// tunnelClosed: the upstream connection of a tunnel closed. After a clean
// end its FIN has ended the stream; otherwise the stream is reset so the
// client can tell.
func (st *h2Stream) tunnelClosed(uc *upConn, clean bool) {
	x := &st.x
	if x.uc == uc {
		x.uc = nil
	}
	uc.cc = nil
	if st.done {
		return
	}
	st.upDone = true
	if !clean || !st.upEOF {
		x.end = errUpReset
		x.resp = respCut
		st.resetStream(h2.ErrCodeInternal)
		return
	}
	x.resp = respDone
	st.maybeDone()
}

// wsFieldsOK: the extended CONNECT carries what an upstream handshake
// needs (RFC 8441 §5: sec-websocket-version, and no key of its own).
func wsFieldsOK(fields []hpack.HeaderField) bool {
	for _, f := range fields {
		if f.Name == "sec-websocket-version" {
			return f.Value == "13"
		}
	}
	return false
}
