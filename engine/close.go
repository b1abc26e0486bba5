package engine

import (
	"context"
	"log/slog"

	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/diag"
)

// The graceful close, after nginx's lingering close and Envoy's delayed close:
//
//	ShutdownInitiated  stop taking input; flush the output buffer (write timeout applies)
//	BufferFlushed      the engine buffer is empty (gnet's never holds our bytes)
//	CloseNotifySent    TLS only: the engine's close_notify, written and flushed
//	WriteShut          shutdown(SHUT_WR): the peer sees FIN after every byte
//	Lingering          read and discard until the peer's FIN or the linger deadline,
//	                   so late client bytes never make the kernel answer with an RST
//	                   that destroys data the client has not read yet
//	SocketClosed       close(2)
//
// gnet's Close is used only with an empty buffer, or after SO_LINGER 0 as an
// explicit abort.

// Close starts the graceful close. cause is the outcome recorded if the
// sequence completes (Clean, IdleTimeout, PeerClosed, ...). Input from now on
// is discarded. Calling it again does nothing.
func (c *Conn) Close(cause diag.Outcome) {
	if c.fullClose || c.state == diag.SocketClosed || c.socketClosing {
		return
	}
	if c.tls != nil && tlsAbortsOn(cause) {
		c.abort(cause, true)
		return
	}
	c.fullClose = true
	c.discardReads = true
	c.in = nil
	if c.trace.Cause == diag.OutcomeNone {
		c.trace.Cause = cause
	}
	// The linger phase must read to see the peer's FIN, whatever the handler paused.
	c.paused = false
	c.registerRead()
	c.startShutdown()
}

// CloseWrite flushes, then shuts down the write side (FIN) and keeps
// delivering input until the peer's FIN, which closes the socket. It is the
// half-close a TCP relay forwards.
func (c *Conn) CloseWrite() {
	if c.state >= diag.ShutdownInitiated || c.socketClosing {
		return
	}
	if c.trace.Cause == diag.OutcomeNone {
		c.trace.Cause = diag.Clean
	}
	c.startShutdown()
}

func (c *Conn) startShutdown() {
	if c.state < diag.ShutdownInitiated {
		c.setState(diag.ShutdownInitiated)
	}
	c.advance()
}

// advance moves the close sequence as far as it can go now. It is called
// when the sequence starts and whenever the output buffer drains.
func (c *Conn) advance() {
	if c.socketClosing || c.state == diag.SocketClosed || c.state < diag.ShutdownInitiated {
		return
	}
	if c.state == diag.ShutdownInitiated {
		if c.pending() > 0 || c.dirty || c.wArmed {
			return // flush in progress; drained() calls back
		}
		c.setState(diag.BufferFlushed)
	}
	if c.state == diag.BufferFlushed {
		if !c.cnDone {
			c.cnDone = true
			if c.tls != nil {
				c.cnPending = c.tlsCloseNotify()
			}
			if c.socketClosing || c.state == diag.SocketClosed {
				return
			}
		}
		if c.out.len() > 0 {
			if !c.dirty && !c.wArmed {
				c.flush()
			}
			return
		}
		if c.cnPending {
			c.cnPending = false
			c.setState(diag.CloseNotifySent)
		}
	}
	if c.state < diag.WriteShut {
		_ = unix.Shutdown(c.fd, unix.SHUT_WR)
		c.wshut = true
		c.setState(diag.WriteShut)
		c.checkDelivered()
	}
	if c.readEOF {
		c.eofDelivered = true
		c.closeSocket(c.trace.Cause)
		return
	}
	if !c.fullClose || c.state == diag.Lingering {
		return // half-close: input keeps flowing until the peer's FIN
	}
	c.setState(diag.Lingering)
	now := c.clock() // the Lingering timestamp: the trace never shows a short linger
	c.lastProgress, c.ackQ = now, c.kernelQueue()
	c.setDeadline(timerLinger, now+int64(c.l.e.cfg.LingerTimeout))
	if c.trace.Delivered == 0 {
		c.setDeadline(timerDelivered, now+deliveredPoll)
	}
}

// Abort resets the connection at once (SO_LINGER 0, RST). Bytes still in the
// engine buffer and the kernel send queue are thrown away; the count is
// logged and recorded.
func (c *Conn) Abort(o diag.Outcome) { c.abort(o, true) }

func (c *Conn) abort(o diag.Outcome, rst bool) {
	if c.state == diag.SocketClosed || c.socketClosing {
		return
	}
	kq := max(c.kernelQueue(), 0)
	n := c.out.reset()
	c.l.buffered.Add(-int64(n))
	n += c.dropPlain()
	c.trace.Discarded = int64(n + kq)
	if rst {
		_ = unix.SetsockoptLinger(c.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	if c.trace.Cause == diag.OutcomeNone {
		c.trace.Cause = o
	}
	c.l.e.met.conn.Abort(c.side, c.trace.Discarded)
	// An upstream reset is how a cancelled request ends (a client that
	// reset its stream): routine, so debug, like upstream closes.
	// Admission's resets (admission.go) throw nothing away and come by
	// the thousand under a flood: their close line says enough.
	lvl := slog.LevelWarn
	if c.side == diag.Upstream || c.trace.Discarded == 0 && admissionOutcome(o) {
		lvl = slog.LevelDebug
	}
	if c.l.e.log.Enabled(context.Background(), lvl) {
		c.l.e.log.LogAttrs(context.Background(), lvl, "connection aborted",
			slog.String("conn", diag.ConnID(c.id)),
			slog.String("side", c.side.String()),
			slog.String("outcome", o.String()),
			slog.String("state", c.state.String()),
			slog.Int("discarded_buffer", n),
			slog.Int("discarded_kernel", kq))
	}
	c.closeSocket(o)
}

// closeSocket ends the connection with outcome o.
func (c *Conn) closeSocket(o diag.Outcome) {
	if c.socketClosing || c.state == diag.SocketClosed {
		return
	}
	c.socketClosing = true
	c.trace.Outcome = o
	if c.wRegistered {
		c.l.w.forget(c.fd)
		c.wRegistered, c.wArmed = false, false
	}
	l := c.l
	switch {
	case c.gc == nil: // detached: the engine owns the fd
		_ = unix.Close(c.fd)
		c.finalize()
	case l.inClose == c: // gnet is closing it already; OnClose finalizes
	case l.inTraffic == c: // gnet closes it when OnTraffic returns
		c.closeAfterRead = true
	default:
		// A paused fd is not in gnet's epoll; gnet's delete then fails
		// harmlessly and it closes the fd all the same.
		_ = l.gel.Close(c.gc) // synchronous on this loop: OnClose finalizes
		if c.state != diag.SocketClosed {
			c.finalize() // gnet had already dropped it
		}
	}
}

// finalize records SocketClosed and tells everyone. Runs exactly once.
func (c *Conn) finalize() {
	if c.finalized {
		return
	}
	c.finalized = true
	l := c.l
	if c.trace.Outcome == diag.OutcomeNone {
		c.trace.Outcome = diag.Aborted
	}
	if n := c.out.reset(); n > 0 {
		l.buffered.Add(-int64(n))
		c.trace.Discarded += int64(n)
	}
	c.trace.Discarded += int64(c.dropPlain())
	c.in = nil
	if c.tls != nil {
		c.handshakeFinished(hsError)
		c.tls.Close()
	}
	c.admLeave()
	c.setState(diag.SocketClosed)
	l.timers.remove(&c.tm)
	delete(l.conns, c.id)
	l.live.Add(-1)
	l.stateCount[c.side][diag.SocketClosed].Add(-1)
	if c.local != nil {
		c.trace.Local = c.local.String()
	}
	if c.remote != nil {
		c.trace.Remote = c.remote.String()
	}
	l.record(&c.trace)
	l.e.met.conn.Closed(&c.trace)
	l.e.logClose(&c.trace)
	c.h.OnClosed(c, &c.trace)
	l.e.connGone()
}

// lingerWaits reports whether the linger goes on at now, re-arming its
// timer. The linger is the wait for the peer's FIN after it has
// everything. If, when it is due, the kernel still holds bytes the peer
// has not ACKed, the peer is still reading (a slow reader behind a large
// send buffer can take many seconds after our last write), and closing
// now would leave them to an orphaned socket that answers any later
// client byte with a reset. So the linger goes on while the queue keeps
// shrinking, and ends -linger-timeout after delivery (or, should the
// queue stop moving for WriteTimeout, at once: closed, not reset, so
// the kernel may still deliver what it holds).
func (c *Conn) lingerWaits(now int64) bool {
	lt := int64(c.l.e.cfg.LingerTimeout)
	if d := c.trace.Delivered; d != 0 {
		end := c.trace.Entered[diag.Lingering] + lt
		if c.lingerLong {
			end = max(end, d+lt)
		}
		if now < end {
			c.setDeadline(timerLinger, end)
			return true
		}
		return false
	}
	c.lingerLong = true
	if c.acked() {
		c.lastProgress = now
	}
	wt := int64(c.l.e.cfg.WriteTimeout)
	if now >= c.lastProgress+wt {
		return false
	}
	c.setDeadline(timerLinger, now+min(lt, ackPoll(wt), c.lastProgress+wt-now))
	return true
}
