package engine

// Pins of gnet v2.9.7 behaviour that the engine's workarounds rely on. Each
// test drives gnet directly, without the engine. If a gnet upgrade changes
// one of these behaviours, the test fails and the matching gap_*.go file
// must be revisited (the workaround may become unnecessary, or wrong).

import (
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// rawGnet runs a bare gnet server with the given callbacks.
type rawGnet struct {
	gnet.BuiltinEventEngine
	eng     gnet.Engine
	booted  chan struct{}
	open    func(c gnet.Conn)
	traffic func(c gnet.Conn) gnet.Action
	close   func(c gnet.Conn, err error)
	ready   atomic.Bool   // set once the warm-up connection was seen
	warmed  chan struct{} // the warm-up connection reached OnOpen
}

type warmConn struct{}

func (r *rawGnet) OnBoot(e gnet.Engine) gnet.Action { r.eng = e; close(r.booted); return gnet.None }
func (r *rawGnet) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if !r.ready.Load() {
		c.SetContext(warmConn{})
		r.warmed <- struct{}{}
		return nil, gnet.None
	}
	if r.open != nil {
		r.open(c)
	}
	return nil, gnet.None
}
func (r *rawGnet) OnTraffic(c gnet.Conn) gnet.Action {
	if _, warm := c.Context().(warmConn); warm {
		_, _ = c.Discard(-1)
		return gnet.None
	}
	if r.traffic != nil {
		return r.traffic(c)
	}
	_, _ = c.Discard(-1)
	return gnet.None
}
func (r *rawGnet) OnClose(c gnet.Conn, err error) gnet.Action {
	if _, warm := c.Context().(warmConn); warm {
		return gnet.None
	}
	if r.close != nil {
		r.close(c, err)
	}
	return gnet.None
}

func runRaw(t *testing.T, r *rawGnet, loops int) string {
	t.Helper()
	addr, fd, err := resolveListenAddr("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.booted = make(chan struct{})
	r.warmed = make(chan struct{}, 128)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gnet.Run(r, "tcp://"+addr, gnet.WithNumEventLoop(loops), gnet.WithReusePort(true), gnet.WithLogger(gnetLogger{testLogger(t)}))
	}()
	<-r.booted
	unix.Close(fd)
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		go r.eng.Stop(ctx)
		<-done
		cancel()
	})
	// OnBoot precedes loop registration; wait until a connection is served.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.warmed:
	case <-time.After(5 * time.Second):
		t.Fatal("gnet never opened the warm-up connection")
	}
	nc.Close()
	r.ready.Store(true)
	return addr
}

// gap_output.go: gnet's Close drops unsent output and the peer sees a clean EOF.
func TestPinGnetCloseDiscardsPendingOutput(t *testing.T) {
	const total = 16 << 20
	opened := make(chan gnet.Conn, 1)
	r := &rawGnet{open: func(c gnet.Conn) {
		_ = c.SetWriteBuffer(64 << 10)
		opened <- c
	}}
	addr := runRaw(t, r, 1)
	nc := dialT(t, addr)
	nc.SetReadBuffer(64 << 10)
	c := <-opened
	pending := make(chan int, 1)
	c.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		_, _ = c.Write(make([]byte, total))
		pending <- c.OutboundBuffered()
		return c.EventLoop().Close(c)
	}))
	if p := <-pending; p == 0 {
		t.Fatal("gnet flushed 16 MiB at once; cannot observe the discard")
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, nc)
	if err != nil {
		t.Fatalf("peer saw %v; the pin expects a clean EOF", err)
	}
	if n >= total {
		t.Fatalf("peer got all %d bytes: gnet's Close no longer discards output (gap_output.go may be simplified)", n)
	}
}

// gap_output.go: gnet has no drained/writable callback.
func TestPinGnetHasNoDrainedCallback(t *testing.T) {
	typ := reflect.TypeOf((*gnet.EventHandler)(nil)).Elem()
	var got []string
	for i := 0; i < typ.NumMethod(); i++ {
		got = append(got, typ.Method(i).Name)
	}
	sort.Strings(got)
	want := []string{"OnBoot", "OnClose", "OnOpen", "OnShutdown", "OnTick", "OnTraffic"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("gnet.EventHandler methods %v, want %v: a new callback may close a gap", got, want)
	}
}

// gap_output.go: writing to the fd directly leaves gnet's outbound buffer alone.
func TestPinDirectWriteBypassesGnetBuffer(t *testing.T) {
	res := make(chan [2]int, 1)
	r := &rawGnet{traffic: func(c gnet.Conn) gnet.Action {
		b, _ := c.Next(-1)
		n, _ := unix.Write(c.Fd(), b)
		res <- [2]int{n, c.OutboundBuffered()}
		return gnet.None
	}}
	addr := runRaw(t, r, 1)
	nc := dialT(t, addr)
	nc.Write([]byte("abc"))
	got := <-res
	if got != [2]int{3, 0} {
		t.Fatalf("direct write n=%d, gnet buffered=%d", got[0], got[1])
	}
	buf := make([]byte, 3)
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != "abc" {
		t.Fatalf("%q %v", buf, err)
	}
}

// gap_pause.go: gnet keeps reading what OnTraffic leaves, without bound.
func TestPinGnetReadsWithoutBound(t *testing.T) {
	const total = 8 << 20
	buffered := make(chan int, 1024)
	r := &rawGnet{traffic: func(c gnet.Conn) gnet.Action {
		buffered <- c.InboundBuffered() // consume nothing
		return gnet.None
	}}
	addr := runRaw(t, r, 1)
	nc := dialT(t, addr)
	go func() {
		for sent := 0; sent < total; sent += 1 << 20 {
			if _, err := nc.Write(make([]byte, 1<<20)); err != nil {
				return
			}
		}
	}()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case n := <-buffered:
			if n >= total/2 {
				return // gnet holds megabytes nobody consumed: the gap is real
			}
		case <-deadline:
			t.Fatal("gnet stopped reading on its own: it may now apply backpressure (gap_pause.go)")
		}
	}
}

// gap_pause.go and gnetpriv.go: the private poller is reachable, removing
// the fd stops OnTraffic, adding it back resumes it.
func TestPinPollerAccessAndPause(t *testing.T) {
	opened := make(chan gnet.Conn, 1)
	traffic := make(chan struct{}, 16)
	r := &rawGnet{open: func(c gnet.Conn) { opened <- c }, traffic: func(c gnet.Conn) gnet.Action {
		_, _ = c.Discard(-1)
		traffic <- struct{}{}
		return gnet.None
	}}
	addr := runRaw(t, r, 2)
	nc := dialT(t, addr)
	c := <-opened
	priv, err := inspectLoop(c.EventLoop())
	if err != nil {
		t.Fatal(err)
	}
	if len(priv.listenerFDs) != 1 {
		t.Fatalf("listener fds %v, want one per loop (SO_REUSEPORT)", priv.listenerFDs)
	}
	paused := make(chan error, 1)
	c.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		paused <- priv.poller.Delete(c.Fd())
		return nil
	}))
	if err := <-paused; err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte("x"))
	// Once the byte is queued on the socket, a task posted to the loop runs
	// after any I/O callback of the same poll batch: had the fd been
	// registered, OnTraffic would have run before the task.
	if !waitFor(5*time.Second, func() bool {
		n, _ := unix.IoctlGetInt(c.Fd(), unix.SIOCINQ)
		return n > 0
	}) {
		t.Fatal("byte never queued")
	}
	verdict := make(chan bool, 1)
	c.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		select {
		case <-traffic:
			verdict <- false
		default:
			verdict <- true
		}
		return nil
	}))
	if !<-verdict {
		t.Fatal("OnTraffic ran for a paused fd")
	}
	c.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		return priv.poller.AddRead(pollAttachment(c.Fd()), false)
	}))
	select {
	case <-traffic:
	case <-time.After(5 * time.Second):
		t.Fatal("no OnTraffic after resume")
	}
}

// gap_fin.go: a peer FIN makes gnet call OnClose with a read EOF, with the fd
// still open during the call, and close the socket right after.
func TestPinPeerFINIsFullClose(t *testing.T) {
	type seen struct {
		err    error
		fdOpen bool
	}
	closed := make(chan seen, 1)
	r := &rawGnet{close: func(c gnet.Conn, err error) {
		_, ferr := unix.FcntlInt(uintptr(c.Fd()), unix.F_GETFD, 0)
		_, perr := unix.Getpeername(c.Fd())
		closed <- seen{err, ferr == nil && perr == nil}
	}}
	addr := runRaw(t, r, 1)
	nc := dialT(t, addr)
	nc.CloseWrite()
	s := <-closed
	if !errors.Is(s.err, io.EOF) {
		t.Fatalf("OnClose error %v, want read EOF", s.err)
	}
	if !s.fdOpen {
		t.Fatal("fd already closed inside OnClose: detaching by dup is impossible")
	}
	// gnet closed its side although we never asked: the client reads EOF.
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := nc.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("client read %d %v, want EOF from gnet's full close", n, err)
	}
}

// probe.go: Register places connections round-robin starting at loop 0.
func TestPinRegisterRoundRobin(t *testing.T) {
	opened := make(chan gnet.Conn, 8)
	r := &rawGnet{open: func(c gnet.Conn) {
		if c.Context() != nil {
			opened <- c
		}
	}}
	addr := runRaw(t, r, 3)
	_ = addr
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	var idx []int64
	for i := 0; i < 3; i++ {
		a, _ := net.Dial("tcp", ln.Addr().String())
		b, _ := ln.Accept()
		defer b.Close()
		ch, err := r.eng.Register(gnet.NewNetConnContext(gnet.NewContext(context.Background(), i), a))
		if err != nil {
			t.Fatal(err)
		}
		<-ch
		c := <-opened
		idx = append(idx, reflect.ValueOf(c.EventLoop()).Elem().FieldByName("idx").Int())
	}
	if !reflect.DeepEqual(idx, []int64{0, 1, 2}) {
		t.Fatalf("Register placed probes on loops %v, want [0 1 2]", idx)
	}
}

// gap_accept.go: removing the listener from epoll and shutting it down for
// reading refuses new clients while gnet keeps serving existing ones.
func TestPinStopAcceptingKeepsLoopAlive(t *testing.T) {
	opened := make(chan gnet.Conn, 4)
	r := &rawGnet{open: func(c gnet.Conn) { opened <- c }, traffic: func(c gnet.Conn) gnet.Action {
		b, _ := c.Next(-1)
		unix.Write(c.Fd(), b)
		return gnet.None
	}}
	addr := runRaw(t, r, 1)
	nc := dialT(t, addr)
	c := <-opened
	priv, err := inspectLoop(c.EventLoop())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	c.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		for _, fd := range priv.listenerFDs {
			priv.poller.Delete(fd)
			unix.Shutdown(fd, unix.SHUT_RD)
		}
		close(done)
		return nil
	}))
	<-done
	if _, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		t.Fatal("new connection accepted after stop")
	}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	nc.Write([]byte("ok"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(nc, buf); err != nil {
		t.Fatalf("existing connection stopped working: %v", err)
	}
}
