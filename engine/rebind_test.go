package engine

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
)

// A restarted server must be able to bind its port while connections of
// the previous instance linger in TIME_WAIT (SO_REUSEADDR), as every
// server that closes connections first needs.
func TestRebindWithTimeWait(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	start := func() *Engine {
		e, err := New(Config{Loops: 1, Listeners: []Listener{{Name: "l", Addr: addr,
			Accept: func(c *Conn) Handler { return closeAtOnce{} }}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(); err != nil {
			t.Fatalf("start: %v", err)
		}
		return e
	}
	e := start()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(c) // the server closes first: its side goes to TIME_WAIT
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.Stop(ctx)
	e2 := start() // fails: bind: address already in use
	e2.Stop(ctx)
}

type closeAtOnce struct{ BaseHandler }

func (closeAtOnce) OnOpen(c *Conn) { c.Close(diag.Clean) }
