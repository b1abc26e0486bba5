package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/tlsio"
)

// Engine runs the gnet event loops and owns every connection on them.
type Engine struct {
	cfg Config
	log *slog.Logger
	set *metrics.Set
	met *engineMetrics

	geng     gnet.Engine
	booted   chan struct{}
	runErr   error         // what gnet.Rotate returned; read after runDone
	runDone  chan struct{} // closed when gnet.Rotate returns
	addrs    []string      // resolved host:port, per listener
	boot     string        // the address the warm-up dials (inherit.go)
	bootPort int           // a private gnet listener's port when every listener is inherited, else 0
	adopted  []*adopted    // inherited listening sockets (inherit.go)
	handoff  atomic.Bool   // a successor shares the listening sockets (inherit.go)
	ports    []int         // their ports, matched against each accepted conn

	mu       sync.RWMutex
	byGnet   map[gnet.EventLoop]*Loop
	loops    []*Loop // by index, complete after Start
	loopErr  error
	nextID   atomic.Uint64
	started  atomic.Bool
	stopped  atomic.Bool
	draining atomic.Bool
	// enrolls is held shared by each dial between its stopped check and
	// gnet's answer to Enroll; Stop takes it exclusively before stopping
	// gnet, because an Enroll queued to a loop that then stops is never
	// answered (its goroutine and the duplicated fd would leak).
	enrolls sync.RWMutex

	warmup atomic.Pointer[warmup]

	hsInFlight   atomic.Int64              // TLS handshakes in flight, all loops
	evictPending [numAdmKinds]atomic.Int64 // evictions posted to loops, not run yet (admission.go)
	sign         *signPool                 // native TLS signatures; nil without a TLS listener

	idleOnce sync.Once
	idle     chan struct{} // closed when draining and no connection is left
}

// New checks the configuration; Start runs the engine.
func New(cfg Config) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:     cfg,
		log:     cfg.Logger,
		set:     cfg.Metrics,
		booted:  make(chan struct{}),
		runDone: make(chan struct{}),
		byGnet:  make(map[gnet.EventLoop]*Loop),
		idle:    make(chan struct{}),
	}
	if e.set == nil {
		e.set = metrics.NewSet()
	}
	e.met = newEngineMetrics(e)
	return e, nil
}

// Metrics is the set the engine's metrics live in.
func (e *Engine) Metrics() *metrics.Set { return e.set }

// Config returns the effective configuration (defaults filled in).
func (e *Engine) Config() Config { return e.cfg }

// Start binds the listeners, starts the loops and runs the start-up
// self-checks. It returns once the engine accepts connections, or with the
// reason it refuses to run.
func (e *Engine) Start() error {
	if err := checkGnetVersion(); err != nil {
		return err
	}
	if e.started.Swap(true) {
		return errors.New("engine: already started")
	}
	var protoAddrs []string
	var reserved []int
	defer func() {
		for _, fd := range reserved {
			_ = unix.Close(fd)
		}
	}()
	startedOK := false
	defer func() {
		if !startedOK {
			e.closeAdopted()
		}
	}()
	for i, ln := range e.cfg.Listeners {
		if len(ln.Inherited) > 0 {
			addr, port, err := e.adopt(i)
			if err != nil {
				return fmt.Errorf("listener %s: %w", ln.Name, err)
			}
			e.addrs = append(e.addrs, addr)
			e.ports = append(e.ports, port)
			continue
		}
		addr, fd, err := resolveListenAddr(ln.Addr)
		if err != nil {
			return fmt.Errorf("listener %s: %w", ln.Name, err)
		}
		if fd >= 0 {
			reserved = append(reserved, fd)
		}
		e.addrs = append(e.addrs, addr)
		_, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		e.ports = append(e.ports, p)
		protoAddrs = append(protoAddrs, "tcp://"+addr)
		if e.boot == "" {
			e.boot = addr
		}
	}
	if len(protoAddrs) == 0 {
		// gnet needs a listener to boot its loops, and the warm-up one to
		// dial: a private loopback one, never the shared sockets (the
		// predecessor would accept the warm-up).
		addr, fd, err := resolveListenAddr("127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("boot listener: %w", err)
		}
		reserved = append(reserved, fd)
		e.boot = addr
		_, port, _ := net.SplitHostPort(addr)
		e.bootPort, _ = strconv.Atoi(port)
		protoAddrs = append(protoAddrs, "tcp://"+addr)
	}
	opts := []gnet.Option{
		gnet.WithNumEventLoop(e.cfg.Loops),
		gnet.WithReusePort(true),
		gnet.WithReuseAddr(true), // restart while old connections sit in TIME_WAIT
		gnet.WithReadBufferCap(e.cfg.ReadBufferSize),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLoadBalancing(gnet.RoundRobin),
		gnet.WithLogger(gnetLogger{e.log}),
		gnet.WithLockOSThread(e.cfg.LockThreads),
	}
	for _, ln := range e.cfg.Listeners {
		// Only the native engine hands out work that can go to a pool.
		if ln.TLS != nil && ln.TLS.Engine() == tlsio.EngineNative && e.sign == nil {
			e.sign = newSignPool(e.cfg.MaxHandshakes + 64)
		}
	}
	go func() {
		e.runErr = gnet.Rotate(&gnetEvents{e: e}, protoAddrs, opts...)
		close(e.runDone)
	}()
	select {
	case <-e.booted:
	case <-e.runDone:
		err := e.runErr
		if err == nil {
			err = errors.New("gnet stopped during start-up")
		}
		return fmt.Errorf("engine: start: %w", err)
	}
	err := e.awaitLoops()
	if err == nil {
		err = e.probeLoops()
	}
	if err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.Stop(stopCtx)
		return fmt.Errorf("engine: start-up self-check failed, refusing to run: %w", err)
	}
	e.startAccepting()
	startedOK = true
	e.log.Info("engine started", "loops", len(e.loops), "listen", e.addrs)
	return nil
}

// resolveListenAddr turns host:0 into a concrete free port. With
// SO_REUSEPORT every loop binds its own socket, so port 0 would give each a
// different port; the engine picks the port once and keeps it reserved by a
// bound, non-listening socket until gnet's listeners exist.
func resolveListenAddr(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", -1, err
	}
	if port != "0" {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return "", -1, fmt.Errorf("bad port %q", port)
		}
		// gnet binds with SO_REUSEPORT, which would silently share the port
		// with another process that also uses it; a plain bind first turns
		// that into a clear "address already in use".
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return "", -1, err
		}
		ln.Close()
		return addr, -1, nil
	}
	ip := net.ParseIP(host)
	family := unix.AF_INET6
	var sa unix.Sockaddr
	if host == "" {
		ip = net.IPv6zero
	}
	if ip == nil {
		ips, err := net.LookupIP(host)
		if err != nil || len(ips) == 0 {
			return "", -1, fmt.Errorf("cannot resolve %q", host)
		}
		ip = ips[0]
	}
	if ip4 := ip.To4(); ip4 != nil {
		family = unix.AF_INET
		s4 := &unix.SockaddrInet4{}
		copy(s4.Addr[:], ip4)
		sa = s4
	} else {
		s6 := &unix.SockaddrInet6{}
		copy(s6.Addr[:], ip.To16())
		sa = s6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", -1, os.NewSyscallError("socket", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		unix.Close(fd)
		return "", -1, os.NewSyscallError("setsockopt", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return "", -1, os.NewSyscallError("bind", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return "", -1, os.NewSyscallError("getsockname", err)
	}
	var p int
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		p = a.Port
	case *unix.SockaddrInet6:
		p = a.Port
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), fd, nil
}

// Addr is the resolved address of the named listener ("" if unknown).
func (e *Engine) Addr(name string) string {
	for i, ln := range e.cfg.Listeners {
		if ln.Name == name && i < len(e.addrs) {
			return e.addrs[i]
		}
	}
	return ""
}

// Loops are the engine's loops, by index.
func (e *Engine) Loops() []*Loop {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.loops
}

// loopFor finds (or, for a loop seen for the first time, creates) the
// engine loop of a gnet connection. Runs on that loop.
func (e *Engine) loopFor(gc gnet.Conn) (*Loop, error) {
	gel := gc.EventLoop()
	e.mu.RLock()
	l := e.byGnet[gel]
	e.mu.RUnlock()
	if l != nil {
		return l, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if l = e.byGnet[gel]; l != nil {
		return l, nil
	}
	if e.loopErr != nil {
		return nil, e.loopErr
	}
	priv, err := inspectLoop(gel)
	if err != nil {
		e.loopErr = err
		return nil, err
	}
	l, err = newLoop(e, len(e.byGnet), gel, priv)
	if err != nil {
		return nil, err
	}
	e.byGnet[gel] = l
	return l, nil
}

func (e *Engine) listenerFor(local net.Addr) *Listener {
	if len(e.cfg.Listeners) == 1 {
		return &e.cfg.Listeners[0]
	}
	if ta, ok := local.(*net.TCPAddr); ok {
		for i, p := range e.ports {
			if p == ta.Port {
				return &e.cfg.Listeners[i]
			}
		}
	}
	return &e.cfg.Listeners[0]
}

// Live is the number of open connections, downstream and upstream.
func (e *Engine) Live() int64 {
	var n int64
	for _, l := range e.Loops() {
		n += l.live.Load()
	}
	return n
}

// LiveDownstream is the number of open client connections.
func (e *Engine) LiveDownstream() int64 {
	var n int64
	for _, l := range e.Loops() {
		for s := diag.State(0); s < diag.SocketClosed; s++ {
			n += l.stateCount[diag.Downstream][s].Load()
		}
	}
	return n
}

func (e *Engine) connGone() {
	if e.draining.Load() && e.Live() == 0 {
		e.idleOnce.Do(func() { close(e.idle) })
	}
}

// onEachLoop runs fn on every loop and waits for all of them (or ctx).
func (e *Engine) onEachLoop(ctx context.Context, fn func(l *Loop)) error {
	loops := e.Loops()
	done := make(chan struct{}, len(loops))
	posted := 0
	for _, l := range loops {
		l := l
		if err := l.Post(func() { fn(l); done <- struct{}{} }); err == nil {
			posted++
		}
	}
	for ; posted > 0; posted-- {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// StopAccepting closes the listeners to new connections (see gap_accept.go;
// inherited sockets: inherit.go).
func (e *Engine) StopAccepting(ctx context.Context) error {
	e.closeAdopted()
	return e.onEachLoop(ctx, func(l *Loop) { l.stopAccepting() })
}

// Drain stops accepting and asks every connection to finish and close
// (Handler.OnDrain). Connections opened afterwards are drained on open.
// Idle reports when none is left.
func (e *Engine) Drain(ctx context.Context) error {
	e.draining.Store(true)
	if err := e.StopAccepting(ctx); err != nil {
		return err
	}
	return e.DrainConnections(ctx)
}

// DrainConnections runs each loop's OnDrain hooks, then asks every
// connection to finish and close (Handler.OnDrain); connections that open later (a TLS handshake in
// flight, or while the listeners still accept) are drained on open.
// Idle reports when none is left. The process drain (package shutdown)
// calls StopAccepting first.
func (e *Engine) DrainConnections(ctx context.Context) error {
	e.draining.Store(true)
	err := e.onEachLoop(ctx, (*Loop).drain)
	e.connGone()
	return err
}

// handshakeUnderWay: a client's TLS handshake is not done but our flight
// is out. A TLS 1.3 client that has our Finished is done and sends its
// first request at once, so closing it now would lose that request with no
// GOAWAY: it is drained once the handshake is done (tlsPump), bounded by
// HandshakeTimeout. Before our flight no request can be on the connection
// and the drain closes it at once (a FIN: the client retries elsewhere).
func (c *Conn) handshakeUnderWay() bool {
	return c.side == diag.Downstream && c.tls != nil && !c.hsDone && c.trace.BytesOut > 0
}

// Draining reports whether Drain was called.
func (e *Engine) Draining() bool { return e.draining.Load() }

// Idle is closed once draining has started and no connection is left.
func (e *Engine) Idle() <-chan struct{} { return e.idle }

// ForceClose aborts every remaining connection as ForcedAtDeadline, each
// logged and counted, and reports how many it aborted.
func (e *Engine) ForceClose(ctx context.Context) (int64, error) {
	var n atomic.Int64
	err := e.onEachLoop(ctx, func(l *Loop) {
		for _, c := range l.sortedConns() {
			if c.state != diag.SocketClosed && !c.socketClosing {
				n.Add(1)
			}
			c.Abort(diag.ForcedAtDeadline)
		}
	})
	return n.Load(), err
}

// OpenByState calls fn for each state before SocketClosed, in order,
// with the number of connections (client and upstream) in it.
func (e *Engine) OpenByState(fn func(state string, n int64)) {
	loops := e.Loops()
	for st := diag.State(0); st < diag.SocketClosed; st++ {
		var n int64
		for _, l := range loops {
			n += l.stateCount[diag.Downstream][st].Load() + l.stateCount[diag.Upstream][st].Load()
		}
		fn(st.String(), n)
	}
}

// Stop stops the gnet engine and the loops' watchers. Connections still open
// are closed by gnet and recorded as engine_stopped; call Drain and ForceClose
// first for an orderly exit.
func (e *Engine) Stop(ctx context.Context) error {
	if e.stopped.Swap(true) {
		return nil
	}
	e.closeAdopted() // no more accepts to enroll (inherit.go)
	// Let the dials already inside Enroll finish on running loops; later
	// ones see stopped and give up (dial.go).
	enrolled := make(chan struct{})
	go func() { e.enrolls.Lock(); e.enrolls.Unlock(); close(enrolled) }()
	select {
	case <-enrolled:
	case <-ctx.Done():
		return ctx.Err()
	}
	var err error
	if e.geng.Validate() == nil {
		// gnet's Stop polls for the end every 500 ms; runDone says it at once.
		stopCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { _ = e.geng.Stop(stopCtx) }()
	}
	select {
	case <-e.runDone:
	case <-ctx.Done():
		return ctx.Err() // loops still running: leave their state alone
	}
	e.mu.RLock()
	all := make([]*Loop, 0, len(e.byGnet))
	for _, l := range e.byGnet {
		all = append(all, l)
	}
	e.mu.RUnlock()
	for _, l := range all {
		l.w.stop()
		<-l.w.done
		l.w.close()
		// The loops are gone, so this goroutine may finish what gnet could
		// not see: detached sockets (gap_fin.go) are the engine's own.
		l.enter()
		for _, c := range l.sortedConns() {
			c.trace.Outcome = diag.EngineStopped
			if c.gc == nil {
				_ = unix.Close(c.fd)
			}
			c.socketClosing = true
			c.finalize()
		}
		l.runq, l.dirty = nil, nil // no flushing: the sockets are closed
		l.depth--
	}
	if e.sign != nil {
		e.sign.stop()
	}
	return err
}

func (l *Loop) sortedConns() []*Conn {
	cs := make([]*Conn, 0, len(l.conns))
	for _, c := range l.conns {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].id < cs[j].id })
	return cs
}

// gnetEvents adapts gnet's callbacks to the engine.
type gnetEvents struct {
	gnet.BuiltinEventEngine
	e *Engine
}

func (g *gnetEvents) OnBoot(eng gnet.Engine) gnet.Action {
	g.e.geng = eng
	close(g.e.booted)
	return gnet.None
}

func (g *gnetEvents) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	e := g.e
	if p, ok := gc.Context().(*probe); ok {
		return nil, e.probeOpened(gc, p)
	}
	if w := e.warmup.Load(); w != nil && gc.RemoteAddr() != nil && gc.RemoteAddr().String() == w.from {
		w.once.Do(func() { close(w.seen) })
		return nil, gnet.Close
	}
	l, err := e.loopFor(gc)
	if err != nil {
		e.log.Error("engine: cannot use gnet loop", "err", err)
		_ = gc.SetLinger(0)
		return nil, gnet.Close
	}
	l.enter()
	var c *Conn
	rejected := false
	if d, ok := gc.Context().(*dialReq); ok {
		c = newConn(l, gc, diag.Upstream, "", d.h)
		e.met.dials[dialOK].Inc()
		if d.tls != nil {
			c.startTLSClient(d.tls)
		}
	} else {
		var ln *Listener
		if a, ok := gc.Context().(*adopted); ok {
			ln = a.ln
		} else if e.bootPort != 0 {
			// The private boot listener serves nobody (inherit.go).
			l.exit()
			_ = gc.SetLinger(0)
			return nil, gnet.Close
		} else {
			ln = e.listenerFor(gc.LocalAddr())
		}
		c = newConn(l, gc, diag.Downstream, ln.Name, BaseHandler{})
		e.met.accepted.Inc()
		switch {
		case !e.makeRoom(l, admWaiting, e.Live()-1, int64(e.cfg.MaxConns)):
			// Full, and no connection waiting for its first byte to evict.
			rejected = true
			e.met.rejected.Inc()
		case ln.ProxyProtocol:
			// The handler is chosen once the header is read (proxyproto.go).
			c.pp = &ppState{ln: ln}
			c.startWaiting()
		default:
			c.acceptFrom(ln)
		}
	}
	gc.SetContext(c)
	prev := l.inTraffic
	l.inTraffic = c
	switch {
	case rejected:
		c.Abort(diag.Rejected)
	case c.pp != nil:
	case c.tls != nil:
		// OnOpen runs when the handshake is done (tls.go); a client's
		// starts now.
		if c.side == diag.Upstream {
			c.tlsPump(nil)
		}
	default:
		c.openHandler()
	}
	l.exit()
	l.inTraffic = prev
	if c.closeAfterRead {
		return nil, gnet.Close
	}
	return nil, gnet.None
}

func (g *gnetEvents) OnTraffic(gc gnet.Conn) gnet.Action {
	c, ok := gc.Context().(*Conn)
	if !ok {
		if p, ok := gc.Context().(*probe); ok {
			return g.e.probeTraffic(gc, p)
		}
		_, _ = gc.Discard(-1)
		return gnet.None
	}
	l := c.l
	l.enter()
	prev := l.inTraffic
	l.inTraffic = c
	b, _ := gc.Next(-1)
	c.onRead(b)
	l.exit()
	l.inTraffic = prev
	if c.closeAfterRead {
		return gnet.Close
	}
	return gnet.None
}

func (g *gnetEvents) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, ok := gc.Context().(*Conn)
	if !ok {
		if p, ok := gc.Context().(*probe); ok {
			g.e.probeClosed(p, err)
		}
		return gnet.None
	}
	l := c.l
	l.enter()
	prev := l.inClose
	l.inClose = c
	switch {
	case c.socketClosing:
		c.finalize()
	case err == nil: // gnet closes on its own only when the engine stops
		c.socketClosing = true
		c.trace.Outcome = diag.EngineStopped
		c.finalize()
	case errors.Is(err, io.EOF):
		c.onPeerFIN()
	default: // ECONNRESET and friends
		c.l.e.log.Debug("read failed", "conn", diag.ConnID(c.id), "err", err)
		c.trace.MarkPeerEnded(diag.PeerReset, l.now())
		c.socketClosing = true
		c.trace.Outcome = diag.ResetByPeer
		c.finalize()
	}
	l.inClose = prev
	l.exit()
	return gnet.None
}

// onPeerFIN runs inside gnet's OnClose for a read EOF (see gap_fin.go).
// tcpStateClose is Linux's TCP_CLOSE in tcp_info.tcpi_state: after a
// peer's FIN (and before ours) a socket is in CLOSE_WAIT; in CLOSE it was
// reset.
const tcpStateClose = 7

// resetNotFIN reports whether a socket whose read said EOF was in fact
// reset. A read returns 0 after an RST when the error was consumed before
// it (by a getsockopt(SO_ERROR) or a failed write elsewhere).
func resetNotFIN(fd int) bool {
	ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	return err == nil && ti.State == tcpStateClose
}

func (c *Conn) onPeerFIN() {
	c.readEOF = true
	how := diag.PeerFIN
	if c.state < diag.WriteShut && resetNotFIN(c.fd) {
		how = diag.PeerReset
	}
	c.trace.MarkPeerEnded(how, c.l.now())
	if c.state >= diag.WriteShut {
		// Our FIN is out already: the peer's completes the close.
		if !c.discardReads && !c.eofDelivered {
			c.eofDelivered = true
			c.h.OnReadEOF(c)
		}
		c.checkDelivered()
		if !c.finalized {
			c.socketClosing = true
			if c.trace.Outcome == diag.OutcomeNone {
				c.trace.Outcome = c.trace.Cause
			}
			c.finalize()
		}
		return
	}
	if how == diag.PeerReset {
		// What read as EOF was an RST whose error something else took
		// first: a reset must never pass for a clean end.
		c.l.e.log.Debug("read failed", "conn", diag.ConnID(c.id), "err", "reset (TCP state CLOSE at EOF)")
		c.socketClosing = true
		c.trace.Outcome = diag.ResetByPeer
		c.finalize()
		return
	}
	if err := c.detach(); err != nil {
		c.l.e.log.Warn("cannot keep half-closed socket", "conn", diag.ConnID(c.id), "err", err)
		c.socketClosing = true
		c.trace.Outcome = diag.Aborted
		c.finalize()
		return
	}
	if c.tls != nil {
		c.l.deferFn(func() {
			if c.state == diag.SocketClosed || c.discardReads {
				c.maybeDeliverEOF()
				return
			}
			c.tls.FeedEOF(time.Now())
			c.tlsPump(nil)
			c.maybeDeliverEOF()
		})
		return
	}
	c.l.deferFn(c.maybeDeliverEOF)
}
