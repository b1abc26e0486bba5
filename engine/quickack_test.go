package engine

import (
	"crypto/tls"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/tlsio"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// A client that leaves Nagle on (Python's ssl, many HTTP libraries) sends
// its TLS 1.3 Finished and then its first request as two small segments:
// the request waits until the Finished is ACKed. crypto/tls sends the
// session tickets before the client's Finished, so the server has nothing
// to send after it and the kernel delays that ACK (40 ms). The first
// response on a fresh connection must still come back at once. Median
// of 9 connections, each a full handshake, one write, one read.
func TestTLSFirstResponseWithoutNoDelay(t *testing.T) {
	for _, c := range []struct {
		engine string
		v      uint16
	}{{tlsio.EngineStdlib, tls.VersionTLS13}, {tlsio.EngineStdlib, tls.VersionTLS12}, {tlsio.EngineNative, tls.VersionTLS13}} {
		v := c.v
		t.Run(c.engine+"/"+tls.VersionName(v), func(t *testing.T) {
			f := newTLSFixture(t)
			kp := testutil.SelfSigned(t)
			f.srv = testutil.TLSServer(t, kp, tlsio.ServerConfig{Engine: c.engine})
			f.pool = testutil.CertPool(kp)
			cl := newCloses()
			_, addr := startTLSEngine(t, f, Config{Loops: 1}, func(c *Conn) Handler { return &echo{cl: cl} })
			var lat []time.Duration
			for i := 0; i < 9; i++ {
				lat = append(lat, firstResponse(t, f, addr, v))
			}
			slices.Sort(lat)
			t.Logf("first request to response, no TCP_NODELAY: %v", lat)
			if m := lat[len(lat)/2]; m > 5*time.Millisecond {
				t.Errorf("median %v from the first write to its answer, want under 5ms (a delayed ACK holds the client's Nagle)", m)
			}
		})
	}
}

// firstResponse handshakes on a socket with TCP_NODELAY off and times one
// request and its echo.
func firstResponse(t *testing.T, f *tlsFixture, addr string, v uint16) time.Duration {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.(*net.TCPConn).SetNoDelay(false); err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(nc, &tls.Config{RootCAs: f.pool, ServerName: "localhost", MinVersion: v, MaxVersion: v,
		ClientSessionCache: nil})
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	req := []byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
	buf := make([]byte, len(req))
	start := time.Now()
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}
