package engine

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/internal/testutil"
)

type dialed struct {
	BaseHandler
	opened chan *Conn
	data   chan []byte
	cl     *closes
}

func (d *dialed) OnOpen(c *Conn) { c.Advance(diag.DataTransfer); d.opened <- c }
func (d *dialed) OnData(c *Conn, b []byte) int {
	d.data <- append([]byte(nil), b...)
	return len(b)
}
func (d *dialed) OnClosed(c *Conn, t *diag.Trace) { d.cl.add(t) }

func TestDialPlacesUpstreamOnLoop(t *testing.T) {
	e, _ := startEngine(t, Config{}, func(c *Conn) Handler { return BaseHandler{} })
	up := testutil.Echo(t)
	for _, l := range e.Loops() {
		d := &dialed{opened: make(chan *Conn, 1), data: make(chan []byte, 16), cl: newCloses()}
		l.Post(func() { l.Dial(up, time.Second, d, func(err error) { t.Errorf("dial: %v", err) }) })
		var c *Conn
		select {
		case c = <-d.opened:
		case <-time.After(5 * time.Second):
			t.Fatal("dial did not complete")
		}
		if c.Loop() != l || c.Side() != diag.Upstream {
			t.Fatalf("dialed conn on loop %d side %v, want loop %d upstream", c.Loop().Index(), c.Side(), l.Index())
		}
		l.Post(func() { c.Write([]byte("ping")) })
		if got := <-d.data; string(got) != "ping" {
			t.Fatalf("echo %q", got)
		}
		l.Post(func() { c.Close(diag.Clean) })
		tr := d.cl.next(t, 5*time.Second)
		if tr.Outcome != diag.Clean || tr.Side != diag.Upstream {
			t.Fatalf("trace %+v", tr)
		}
	}
	if got := e.met.dials[dialOK].Get(); got != uint64(len(e.Loops())) {
		t.Fatalf("dial ok counter %d", got)
	}
}

func TestDialErrors(t *testing.T) {
	e, _ := startEngine(t, Config{}, func(c *Conn) Handler { return BaseHandler{} })
	l := e.Loops()[0]
	// A port nobody listens on: refused.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	errc := make(chan error, 1)
	l.Dial(dead, time.Second, BaseHandler{}, func(err error) { errc <- err })
	if err := <-errc; !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("refused dial: %v", err)
	}
	// A timeout too small to connect in: a net.Error with Timeout().
	l.Dial(testutil.Echo(t), time.Nanosecond, BaseHandler{}, func(err error) { errc <- err })
	err := <-errc
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("timeout dial: %v", err)
	}
	if e.met.dials[dialError].Get() != 1 || e.met.dials[dialTimeout].Get() != 1 {
		t.Fatalf("dial counters error=%d timeout=%d", e.met.dials[dialError].Get(), e.met.dials[dialTimeout].Get())
	}
}

// Stop with dials in flight: each one either registers (and is closed by
// the stop) or gives up; none is left waiting for an Enroll that a stopped
// loop never answers, holding a goroutine and a duplicated fd.
func TestStopWithDialsInFlight(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	for round := 0; round < 5; round++ {
		e, err := New(Config{Loops: 2, Logger: testLogger(t),
			Listeners: []Listener{{Name: "test", Addr: "127.0.0.1:0", Accept: func(*Conn) Handler { return BaseHandler{} }}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(); err != nil {
			t.Fatal(err)
		}
		for _, l := range e.Loops() {
			for i := 0; i < 100; i++ {
				l.Dial(ln.Addr().String(), time.Second, BaseHandler{}, func(error) {})
			}
		}
		// Stop while the dials connect and enroll.
		time.Sleep(time.Duration(round) * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := e.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	stuck := func() int {
		buf := make([]byte, 1<<22)
		return strings.Count(string(buf[:runtime.Stack(buf, true)]), "engine.(*Loop).dial.func")
	}
	if !waitFor(5*time.Second, func() bool { return stuck() == 0 }) {
		t.Fatalf("%d dial goroutines still waiting after Stop", stuck())
	}
}
