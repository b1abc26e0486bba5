package engine

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/tlsio"
)

// Conn is one TCP connection on a loop, downstream or upstream. All methods
// must be called on its loop (from a Handler method or a function given to
// Loop.Post).
type Conn struct {
	// Set at creation, read-only afterwards.
	id       uint64
	l        *Loop
	side     diag.Side
	listener string
	local    net.Addr
	remote   net.Addr // replaced once, before the handler opens, by a PROXY header's client
	h        Handler

	// Loop-owned.
	gc    gnet.Conn // nil once detached from gnet (peer FIN with work left, see gap_fin.go)
	fd    int
	state diag.State
	trace diag.Trace

	out            outq
	in             []byte // bytes the handler has not consumed yet
	paused         bool   // the handler paused reads
	readRegistered bool   // fd is in gnet's epoll for reading
	readEOF        bool   // the peer's FIN was seen
	eofDelivered   bool
	discardReads   bool // closing: reads are counted and dropped
	fullClose      bool // Close (not just CloseWrite) was asked for
	cnDone         bool // TLS close_notify has been written (or skipped)
	cnPending      bool // close_notify written but not flushed yet
	lingerLong     bool // the linger outlived its timeout: the peer was still reading
	wshut          bool // shutdown(SHUT_WR) done
	wArmed         bool // waiting for the watcher's EPOLLOUT
	wRegistered    bool // fd is in the watcher's epoll set
	dirty          bool
	notifyWritable bool
	socketClosing  bool // the engine closed (or asked gnet to close) the socket
	closeAfterRead bool // close requested while gnet's OnTraffic for this conn runs
	finalized      bool
	lastProgress   int64 // last write progress: bytes taken by writev or ACKed by the peer
	ackQ           int   // kernel send queue at the last look while waiting to write, -1 unknown
	// kernelQueue's cache: SIOCOUTQ as read in loop callback kqAt (0:
	// none), good until the next write. The close steps, their trace and
	// their debug lines then share one ioctl.
	kq         int
	kqAt       uint64
	kqReads    int // SIOCOUTQ ioctls made (tests)
	stateSince int64
	deadlines  [numTimers]int64
	tm         timer

	// PROXY protocol (proxyproto.go): pp is set while the header is read;
	// lb is the balancer's address once it named the client.
	pp *ppState
	lb net.Addr

	// Admission (admission.go): adm is 1 + the kind of the loop list c is
	// in (0: none), admKey its key there. Loop-owned.
	adm              admKind
	admPrev, admNext *Conn
	admKey           int64

	// TLS (nil on plaintext listeners); see tls.go. Loop-owned.
	tls        tlsio.Conn
	hsDone     bool    // handshake completed, handler opened
	hsCounted  bool    // counted in the engine's handshakes in flight
	hsStarted  bool    // the first record was complete: the handshake goroutine runs
	hsParked   bool    // lost its slot with its ClientHello incomplete (admission.go)
	hsPaused   bool    // reads paused by maxHandshakeInput until the handshake is done
	hsUpstream bool    // a DialTLS handshake, not yet counted
	tlsDead    bool    // TLS failed: no close_notify
	appEOF     bool    // the peer's plaintext stream ended (close_notify or FIN)
	plain      *[]byte // small plaintext writes of this callback, sealed together at flush
}

// ID is the engine-wide unique connection id.
func (c *Conn) ID() uint64 { return c.id }

// Side reports downstream (accepted) or upstream (dialed).
func (c *Conn) Side() diag.Side { return c.side }

// Loop is the loop the connection lives on.
func (c *Conn) Loop() *Loop { return c.l }

// Handler is the connection's handler.
func (c *Conn) Handler() Handler { return c.h }

// Listener names the listener that accepted the connection ("" upstream).
func (c *Conn) Listener() string { return c.listener }

// LocalAddr is the local socket address.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// State is the current lifecycle state.
func (c *Conn) State() diag.State { return c.state }

// Closed reports whether the socket is closed or the connection is closing
// (no new work should start on it).
func (c *Conn) Closed() bool { return c.state >= diag.ShutdownInitiated }

// Buffered is the number of bytes in the engine's output buffer.
func (c *Conn) Buffered() int { return c.pending() }

// pending counts queued bytes: socket bytes plus plaintext not sealed yet.
func (c *Conn) pending() int {
	if c.plain != nil {
		return c.out.len() + len(*c.plain)
	}
	return c.out.len()
}

// ReadEOF reports whether the peer's FIN was seen.
func (c *Conn) ReadEOF() bool { return c.readEOF }

// BytesIn and BytesOut count socket bytes read and written.
func (c *Conn) BytesIn() int64  { return c.trace.BytesIn }
func (c *Conn) BytesOut() int64 { return c.trace.BytesOut }

func (c *Conn) String() string { return diag.ConnID(c.id) }

func newConn(l *Loop, gc gnet.Conn, side diag.Side, listener string, h Handler) *Conn {
	c := &Conn{
		id: l.e.nextID.Add(1) + firstID, l: l, side: side, listener: listener,
		local: gc.LocalAddr(), remote: gc.RemoteAddr(), h: h,
		gc: gc, fd: gc.Fd(), readRegistered: true, ackQ: -1,
	}
	c.tm.idx = -1
	c.tm.fire = c.onTimer
	now := l.now()
	c.stateSince = now
	c.trace.ID = c.id
	c.trace.Side = side
	c.trace.Listener = listener
	c.trace.Entered[diag.Created] = now
	l.conns[c.id] = c
	l.live.Add(1)
	l.stateCount[side][diag.Created].Add(1)
	return c
}

// Advance moves the connection to a pre-shutdown state (Handshake,
// HandshakeDone, DataTransfer). Moving backwards or into the close sequence
// is ignored: the engine drives that part itself.
func (c *Conn) Advance(s diag.State) {
	if s > diag.DataTransfer || s <= c.state {
		return
	}
	c.setState(s)
}

func (c *Conn) setState(s diag.State) {
	now := Now()
	prev := c.state
	l := c.l
	l.stateCount[c.side][prev].Add(-1)
	l.stateCount[c.side][s].Add(1)
	c.state = s
	c.trace.Entered[s] = now
	spent := now - c.stateSince
	c.stateSince = now
	l.e.met.conn.Left(c.side, prev, s, spent)
	if s >= diag.ShutdownInitiated {
		c.shutdownStep(s, prev, now, spent)
		return
	}
	if lg := l.e.log; lg.Enabled(context.Background(), slog.LevelDebug) {
		lg.LogAttrs(context.Background(), slog.LevelDebug, "state",
			slog.String("conn", diag.ConnID(c.id)),
			slog.String("side", c.side.String()),
			slog.String("state", s.String()),
			slog.String("from", prev.String()),
			slog.Int("pending", c.out.len()),
			slog.Duration("in_prev", Dur(spent)))
	}
}

// ---- reading ----

// onRead handles bytes gnet read from the socket.
func (c *Conn) onRead(b []byte) {
	c.trace.BytesIn += int64(len(b))
	c.l.e.met.bytesIn(c.side, len(b))
	if c.discardReads {
		if c.state == diag.Lingering {
			c.checkDelivered()
		}
		return
	}
	if c.pp != nil {
		c.ppRead(b)
		return
	}
	c.dispatchRead(b)
}

// dispatchRead hands socket bytes to TLS or, plain, to the handler.
func (c *Conn) dispatchRead(b []byte) {
	if c.admIn(admWaiting) {
		c.stopWaiting() // the first byte
	}
	if c.tls != nil {
		c.tlsRead(b)
		return
	}
	c.deliver(b)
}

// acceptFrom makes c a connection of listener ln: TLS is set up, the
// first-byte wait starts where the client speaks first, and the listener
// picks the handler.
func (c *Conn) acceptFrom(ln *Listener) {
	if ln.TLS != nil {
		c.startTLS(ln.TLS)
	}
	if ln.TLS != nil || ln.ClientFirst {
		c.startWaiting()
	}
	c.h = ln.Accept(c) // after startTLS, so IsTLS is already true
}

// openHandler runs the handler's OnOpen (and OnDrain during a drain).
func (c *Conn) openHandler() {
	c.h.OnOpen(c)
	if c.l.e.draining.Load() && c.state < diag.ShutdownInitiated && !c.socketClosing {
		c.h.OnDrain(c)
	}
}

// deliver hands application bytes (plaintext) to the handler, keeping what
// it does not consume.
func (c *Conn) deliver(b []byte) {
	if c.paused || len(c.in) > 0 {
		c.in = append(c.in, b...)
		if !c.paused {
			c.deliverBuffered()
		}
		return
	}
	n := c.h.OnData(c, b)
	if n < len(b) && !c.discardReads && c.state != diag.SocketClosed {
		c.in = append(c.in[:0], b[n:]...)
	}
}

// deliverBuffered hands kept input to the handler, then a pending EOF.
func (c *Conn) deliverBuffered() {
	for len(c.in) > 0 && !c.paused && !c.discardReads && c.state != diag.SocketClosed {
		n := c.h.OnData(c, c.in)
		// The handler may have closed the connection (c.in dropped) or
		// consumed everything.
		if n <= 0 || c.discardReads || c.state == diag.SocketClosed || n > len(c.in) {
			break
		}
		rest := copy(c.in, c.in[n:])
		c.in = c.in[:rest]
	}
	if len(c.in) == 0 && cap(c.in) > 64<<10 {
		c.in = nil // do not pin a large burst's buffer on an idle connection
	}
	c.maybeDeliverEOF()
}

func (c *Conn) maybeDeliverEOF() {
	eof := c.readEOF
	if c.tls != nil {
		eof = c.appEOF
	}
	// Kept bytes do not hold EOF back: they were offered and the handler
	// wants more, which will never come.
	if !eof || c.eofDelivered || c.paused || c.state == diag.SocketClosed {
		return
	}
	if c.pp != nil {
		c.eofDelivered = true
		c.ppFailed("eof", errors.New("EOF before the PROXY protocol header ended"))
		return
	}
	c.eofDelivered = true
	if c.discardReads {
		c.advance()
		return
	}
	c.h.OnReadEOF(c)
}

// PauseRead stops reading from the socket until ResumeRead. The kernel's
// receive window then pushes back on the peer; nothing piles up in memory.
func (c *Conn) PauseRead() {
	if c.paused || c.state == diag.SocketClosed {
		return
	}
	c.paused = true
	c.l.e.met.pauses.Inc()
	c.unregisterRead()
}

// ResumeRead undoes PauseRead; kept input is delivered first.
func (c *Conn) ResumeRead() {
	if !c.paused || c.state == diag.SocketClosed {
		return
	}
	c.paused = false
	c.registerRead()
	if len(c.in) > 0 || ((c.readEOF || c.appEOF) && !c.eofDelivered) {
		c.l.deferFn(c.deliverBuffered)
	}
}

// ReadPaused reports whether reads are paused by the handler.
func (c *Conn) ReadPaused() bool { return c.paused }

// ---- writing ----

// directWriteMin is the size from which Write tries the socket at once
// instead of batching into the flush at the end of the callback: big writes
// skip a copy, small ones coalesce into one writev.
const directWriteMin = 16 << 10

// Write queues p for the peer. It never blocks and never fails: a socket
// error closes the connection (see OnClosed). After the write side is shut
// or the connection is closed, bytes are dropped.
func (c *Conn) Write(p []byte) {
	if len(p) == 0 || c.wshut || c.socketClosing || c.state == diag.SocketClosed {
		return
	}
	if c.tls != nil {
		c.writePlain(p)
		return
	}
	c.writeRaw(p)
}

// writePlain collects a TLS connection's small writes and seals them as one
// record at the end of the callback: a response head and its body leave in
// one record, one AEAD pass, instead of one each.
func (c *Conn) writePlain(p []byte) {
	if c.plain == nil && len(p) >= outChunk {
		c.sealRaw(p) // big: nothing to gain from staging
		return
	}
	if c.plain == nil {
		c.plain = plainPool.Get().(*[]byte)
	}
	*c.plain = append(*c.plain, p...)
	if len(*c.plain) >= outChunk {
		c.sealPlain()
		return
	}
	c.markDirty()
}

var plainPool = sync.Pool{New: func() any { b := make([]byte, 0, outChunk); return &b }}

// sealPlain seals the staged plaintext into the output queue.
func (c *Conn) sealPlain() {
	if c.plain == nil {
		return
	}
	b := c.plain
	c.plain = nil
	if len(*b) > 0 {
		c.sealRaw(*b)
	}
	*b = (*b)[:0]
	plainPool.Put(b)
}

func (c *Conn) sealRaw(p []byte) {
	sealed, err := c.tls.Seal(c.l.sealBuf[:0], p)
	if err != nil {
		c.l.e.log.Debug("tls seal failed", "conn", diag.ConnID(c.id), "err", err)
		c.tlsDead = true
		c.abort(diag.TLSError, true)
		return
	}
	c.writeRaw(sealed)
	c.l.sealBuf = sealed[:0]
}

// dropPlain discards staged plaintext (abort, close); it returns the count.
func (c *Conn) dropPlain() int {
	if c.plain == nil {
		return 0
	}
	n := len(*c.plain)
	*c.plain = (*c.plain)[:0]
	plainPool.Put(c.plain)
	c.plain = nil
	return n
}

func (c *Conn) markDirty() {
	if !c.dirty && !c.wArmed {
		c.dirty = true
		c.l.dirty = append(c.l.dirty, c)
		if c.l.depth == 0 {
			c.l.enter()
			c.l.exit()
		}
	}
}

// writeRaw queues socket bytes (ciphertext on a TLS connection).
func (c *Conn) writeRaw(p []byte) {
	if len(p) == 0 || c.wshut || c.socketClosing || c.state == diag.SocketClosed {
		return
	}
	if len(p) >= directWriteMin && c.out.len() == 0 && !c.wArmed {
		n, err := writeFull(c.fd, p)
		if n > 0 {
			c.progress(n)
			p = p[n:]
		}
		if err != nil && err != unix.EAGAIN {
			c.writeFailed(err)
			return
		}
		if len(p) == 0 {
			return
		}
		c.out.write(p)
		c.l.buffered.Add(int64(len(p)))
		c.armWritable()
		return
	}
	c.out.write(p)
	c.l.buffered.Add(int64(len(p)))
	c.markDirty()
}

func writeFull(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Write(fd, p)
		if err == unix.EINTR {
			continue
		}
		if n < 0 {
			n = 0
		}
		return n, err
	}
}

// NotifyWritable asks for one OnWritable call once the output buffer has
// drained to the low-water mark (at once, from the end of this callback, if
// it already has).
func (c *Conn) NotifyWritable() {
	c.notifyWritable = true
	if c.pending() <= c.l.e.cfg.LowWater {
		c.l.deferFn(c.maybeNotifyWritable)
	}
}

// OverHighWater reports whether the output buffer holds more than the
// configured high-water mark: the producer should pause.
func (c *Conn) OverHighWater() bool { return c.pending() > c.l.e.cfg.HighWater }

func (c *Conn) maybeNotifyWritable() {
	if c.notifyWritable && c.pending() <= c.l.e.cfg.LowWater && c.state != diag.SocketClosed {
		c.notifyWritable = false
		c.h.OnWritable(c)
	}
}

// flush writes as much of the output buffer as the socket takes.
func (c *Conn) flush() {
	if c.socketClosing || c.state == diag.SocketClosed {
		return
	}
	if c.plain != nil {
		c.sealPlain()
		if c.socketClosing || c.state == diag.SocketClosed {
			return
		}
	}
	for c.out.len() > 0 {
		iov := c.out.iovecs(c.l.iov[:0], cap(c.l.iov))
		want := 0
		for _, b := range iov {
			want += len(b)
		}
		n, err := unix.Writev(c.fd, iov)
		clear(iov)
		if err == unix.EINTR {
			continue
		}
		if n > 0 {
			c.out.consume(n)
			c.l.buffered.Add(-int64(n))
			c.progress(n)
		}
		if err == unix.EAGAIN || (err == nil && n < want) {
			c.armWritable()
			break
		}
		if err != nil {
			c.writeFailed(err)
			return
		}
	}
	if c.out.len() == 0 {
		c.drained()
	}
	c.maybeNotifyWritable()
}

func (c *Conn) progress(n int) {
	c.trace.BytesOut += int64(n)
	c.l.e.met.bytesOut(c.side, n)
	now := c.clock()
	c.lastProgress = now
	c.trace.Delivered = 0
	c.ackQ = -1 // the kernel queue grew: the next look takes a new baseline
	c.kqAt = 0
	if c.out.len() > 0 {
		c.armWriteTimer(now)
	}
}

// Write progress is what the peer acknowledges, not only what writev
// takes. Linux reports a socket writable only once about a third of its
// send buffer has drained; an autotuned 4 MiB buffer read at 64 KiB/s
// stays unwritable for ~20 s while bytes arrive steadily. So while output
// waits, the write deadline is checked every ackPoll and the kernel send
// queue (SIOCOUTQ: bytes not yet ACKed) shrinking counts as progress. A
// peer that stops reading stops ACKing once its receive window is full,
// and is aborted WriteTimeout (+ at most one ackPoll) after that.

// ackPoll is how often a connection waiting to write looks at its kernel
// send queue: a sixteenth of the write timeout, between 5 ms and 1 s.
func ackPoll(wt int64) int64 { return min(max(wt/16, int64(5e6)), int64(1e9)) }

// armWriteTimer sets the write deadline: lastProgress + WriteTimeout, or
// the next look at the send queue if that comes first.
func (c *Conn) armWriteTimer(now int64) {
	wt := int64(c.l.e.cfg.WriteTimeout)
	c.setDeadline(timerWrite, min(c.lastProgress+wt, now+ackPoll(wt)))
}

// kernelQueue is SIOCOUTQ: bytes in the kernel send queue, -1 unknown.
// Within one loop callback and with no write since, the last value is
// reused: the queue can only have shrunk by ACKs in those microseconds.
func (c *Conn) kernelQueue() int {
	l := c.l
	if l.depth > 0 && c.kqAt == l.callbacks {
		return c.kq
	}
	c.kqReads++
	q, err := unix.IoctlGetInt(c.fd, unix.SIOCOUTQ)
	if err != nil {
		q = -1
	}
	if l.depth > 0 {
		c.kq, c.kqAt = q, l.callbacks
	}
	return q
}

// acked reports whether the kernel send queue shrank since the last look:
// the peer acknowledged bytes.
func (c *Conn) acked() bool {
	q := c.kernelQueue()
	shrank := q >= 0 && c.ackQ >= 0 && q < c.ackQ
	c.ackQ = q
	return shrank
}

func (c *Conn) drained() {
	c.deadlines[timerWrite] = 0
	if c.state >= diag.ShutdownInitiated && c.state < diag.WriteShut {
		c.advance()
	}
}

// onWritable runs when the watcher saw EPOLLOUT.
func (c *Conn) onWritable() {
	c.wArmed = false
	c.flush()
}

func (c *Conn) armWritable() {
	if c.wArmed {
		return
	}
	if c.deadlines[timerWrite] == 0 {
		// The wait begins now (the output was empty until this write).
		now := c.clock()
		c.lastProgress = now
		c.armWriteTimer(now)
	}
	// The kernel queue's baseline is read at the first look (timerWrite),
	// not here: a socket-full event costs no extra syscall.
	if err := c.l.w.watchWritable(c.fd, c.id, c.wRegistered); err != nil {
		c.writeFailed(err)
		return
	}
	c.wRegistered = true
	c.wArmed = true
}

func (c *Conn) writeFailed(err error) {
	c.l.e.log.Debug("write failed", "conn", diag.ConnID(c.id), "err", err)
	o := diag.ResetByPeer
	if !errors.Is(err, unix.EPIPE) && !errors.Is(err, unix.ECONNRESET) {
		o = diag.Aborted
	} else {
		c.trace.MarkPeerEnded(diag.PeerReset, c.l.now())
	}
	c.abort(o, false)
}

// ---- timers ----

// SetTimer sets the deadline of kind k to d from now, replacing any earlier
// setting. d <= 0 clears it.
func (c *Conn) SetTimer(k TimerKind, d int64) {
	if k >= numUserTimers {
		return
	}
	if d <= 0 {
		c.deadlines[k] = 0
		return
	}
	c.setDeadline(k, c.clock()+d)
}

// ClearTimer clears the deadline of kind k.
func (c *Conn) ClearTimer(k TimerKind) {
	if k < numUserTimers {
		c.deadlines[k] = 0
	}
}

// clock is the time c's timers start from: the callback's clock, or the
// last state change when that was stamped later in the callback, so that
// no deadline comes earlier than a timestamp the trace shows.
func (c *Conn) clock() int64 { return max(c.l.now(), c.stateSince) }

func (c *Conn) setDeadline(k TimerKind, at int64) {
	c.deadlines[k] = at
	if c.state == diag.SocketClosed {
		return
	}
	c.l.timers.schedule(&c.tm, at)
}

// onTimer fires the connection's due deadlines and re-queues its entry for
// the next one.
func (c *Conn) onTimer(now int64) {
	for k := TimerKind(0); k < numTimers; k++ {
		at := c.deadlines[k]
		if at == 0 || at > now || c.state == diag.SocketClosed {
			continue
		}
		c.deadlines[k] = 0
		switch k {
		case timerWrite:
			if c.out.len() == 0 {
				continue
			}
			if c.acked() {
				c.lastProgress = now
			}
			if now < c.lastProgress+int64(c.l.e.cfg.WriteTimeout) {
				c.armWriteTimer(now)
				continue
			}
			if c.state >= diag.ShutdownInitiated {
				c.abort(diag.FlushTimeout, true)
			} else {
				c.abort(diag.WriteTimeout, true)
			}
		case timerLinger:
			c.checkDelivered()
			if !c.lingerWaits(now) {
				c.closeSocket(diag.LingerTimeout)
			}
		case timerDelivered:
			c.checkDelivered()
			if c.trace.Delivered == 0 && c.state == diag.Lingering {
				c.setDeadline(timerDelivered, now+deliveredPoll)
			}
		case timerFirstByte:
			c.firstByteTimeout()
		case TimerHandshake:
			if c.tls != nil && !c.hsDone {
				c.tlsHandshakeTimeout()
			} else {
				c.h.OnTimer(c, k)
			}
		default:
			c.h.OnTimer(c, k)
		}
	}
	if c.state == diag.SocketClosed {
		return
	}
	next := int64(0)
	for _, at := range c.deadlines {
		if at != 0 && (next == 0 || at < next) {
			next = at
		}
	}
	if next != 0 {
		c.l.timers.schedule(&c.tm, next)
	}
}

// deliveredPoll is how often a lingering connection checks SIOCOUTQ.
const deliveredPoll = int64(5e6)

// checkDelivered records the first time the kernel send queue is seen empty
// after our last write: the peer has ACKed every byte (and our FIN, once sent).
func (c *Conn) checkDelivered() {
	if c.trace.Delivered != 0 || c.out.len() > 0 || c.socketClosing {
		return
	}
	if c.kernelQueue() == 0 {
		c.trace.Delivered = Now()
	}
}
