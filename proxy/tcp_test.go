package proxy

import (
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/engine"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// tcpTestRelay runs the tcp relay in front of upstream and returns its address.
func tcpTestRelay(t *testing.T, upstream string, idle time.Duration) (string, *engine.Engine) {
	t.Helper()
	set := metrics.NewSet()
	r := NewTCP(TCPConfig{Upstream: upstream, DialTimeout: time.Second, IdleTimeout: idle, Logger: hpLogger()}, NewMetrics(set))
	e := hpEngine(t, engine.Config{}, set, engine.Listener{Name: "tcp", Addr: "127.0.0.1:0", Accept: r.Accept})
	return e.Addr("tcp"), e
}

// tcpTestBackend runs fn for every accepted connection.
func tcpTestBackend(t *testing.T, fn func(c *net.TCPConn)) string {
	t.Helper()
	return testutil.Serve(t, func(c net.Conn) { fn(c.(*net.TCPConn)) })
}

func tcpTestDial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, _ := hpRaw(t, addr)
	return c
}

// The client half-closes after its request; the backend reads to EOF, then
// answers: the relay forwards the FIN and still carries the whole answer.
func TestTCPRelayForwardsHalfClose(t *testing.T) {
	const answer = 3 << 20
	up := tcpTestBackend(t, func(c *net.TCPConn) {
		defer c.Close()
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil { // needs the client's FIN forwarded
			return
		}
		sum := h.Sum(nil)
		c.Write(sum)
		c.Write(make([]byte, answer))
	})
	addr, _ := tcpTestRelay(t, up, 0)
	c := tcpTestDial(t, addr)
	req := make([]byte, 1<<20)
	for i := range req {
		req[i] = byte(i)
	}
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(req)
	if len(got) != 32+answer || string(got[:32]) != string(want[:]) {
		t.Fatalf("got %d bytes, digest ok=%v", len(got), len(got) >= 32 && string(got[:32]) == string(want[:]))
	}
}

// An upstream that resets mid-stream makes the relay reset the client: a
// truncated stream never looks like a clean end.
func TestTCPRelayUpstreamResetResetsClient(t *testing.T) {
	up := tcpTestBackend(t, func(c *net.TCPConn) {
		c.Write(make([]byte, 256<<10))
		c.SetLinger(0)
		c.Close()
	})
	addr, _ := tcpTestRelay(t, up, 0)
	// The reset can beat the client's connect() to completion.
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.Copy(io.Discard, c)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client: %v, want ECONNRESET", err)
	}
}

func TestTCPRelayDialFailureResetsClient(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	addr, _ := tcpTestRelay(t, dead, 0)
	// The reset can beat the client's connect() to completion.
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.Copy(io.Discard, c)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client: %v, want ECONNRESET", err)
	}
}

func TestTCPRelayIdleTimeoutClosesBothSides(t *testing.T) {
	upClosed := make(chan error, 1)
	up := tcpTestBackend(t, func(c *net.TCPConn) {
		_, err := io.Copy(io.Discard, c)
		upClosed <- err
		c.Close()
	})
	addr, _ := tcpTestRelay(t, up, 150*time.Millisecond)
	c := tcpTestDial(t, addr)
	c.Write([]byte("hi"))
	start := time.Now()
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("client: %v", err)
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", el)
	}
	select {
	case err := <-upClosed:
		if err != nil {
			t.Fatalf("upstream saw %v, want a clean FIN", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("upstream side not closed")
	}
}

// Data the client sends before the upstream is connected is kept and
// forwarded in order.
func TestTCPRelayEarlyClientBytes(t *testing.T) {
	up := tcpTestBackend(t, func(c *net.TCPConn) {
		io.Copy(c, c)
		c.CloseWrite()
	})
	addr, _ := tcpTestRelay(t, up, 0)
	c := tcpTestDial(t, addr)
	msg := []byte("sent before the upstream dial completes")
	c.Write(msg)
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != string(msg) {
		t.Fatalf("got %q, %v", got, err)
	}
}
