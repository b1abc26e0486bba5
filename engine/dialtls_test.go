package engine

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/tlsio"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// rawRecorder keeps every byte a server reads from the socket, so a test
// can look at the record types its TLS peer sent.
type rawRecorder struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *rawRecorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	r.buf.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

// recordTypes lists the content types of the complete records in b.
func recordTypes(b []byte) []byte {
	var ts []byte
	for len(b) >= 5 {
		n := 5 + (int(b[3])<<8 | int(b[4]))
		if len(b) < n {
			break
		}
		ts = append(ts, b[0])
		b = b[n:]
	}
	return ts
}

type tlsServerEnd struct {
	readErr error  // what the server's Read returned at the end
	hsErr   error  // the server's handshake error
	types   []byte // the record types the client sent
}

// tlsEchoServer is a crypto/tls echo server on 127.0.0.1 with a fresh
// self-signed certificate for localhost and 127.0.0.1; each connection's
// end is reported on the channel.
func tlsEchoServer(t *testing.T, maxVersion uint16) (string, *x509.CertPool, chan tlsServerEnd) {
	t.Helper()
	kp := testutil.SelfSigned(t)
	cfg := &tls.Config{Certificates: []tls.Certificate{testutil.StdCert(t, kp)}, MaxVersion: maxVersion}
	ends := make(chan tlsServerEnd, 8)
	addr := testutil.Serve(t, func(c net.Conn) {
		rec := &rawRecorder{Conn: c}
		tc := tls.Server(rec, cfg)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			ends <- tlsServerEnd{hsErr: err}
			return
		}
		rec.mu.Lock()
		rec.buf.Reset() // only what follows the handshake
		rec.mu.Unlock()
		buf := make([]byte, 4096)
		var end tlsServerEnd
		for {
			n, err := tc.Read(buf)
			if n > 0 {
				tc.Write(buf[:n])
			}
			if err != nil {
				end.readErr = err
				break
			}
		}
		rec.mu.Lock()
		end.types = recordTypes(rec.buf.Bytes())
		rec.mu.Unlock()
		ends <- end
	})
	return addr, testutil.CertPool(kp), ends
}

func tlsClient(t *testing.T, pool *x509.CertPool, name string) *tlsio.Client {
	t.Helper()
	cl, err := tlsio.NewClient(tlsio.ClientConfig{ServerName: name, RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// DialTLS: the handler opens after the handshake with the session in
// TLSInfo, data goes both ways sealed, and a clean close sends
// close_notify (seen by the server as an alert record, TLS 1.2, where the
// record type is in the clear) before the FIN.
func TestDialTLS(t *testing.T) {
	for _, v := range []struct {
		name string
		max  uint16
	}{{"tls12", tls.VersionTLS12}, {"tls13", tls.VersionTLS13}} {
		t.Run(v.name, func(t *testing.T) {
			e, _ := startEngine(t, Config{}, func(c *Conn) Handler { return BaseHandler{} })
			addr, pool, ends := tlsEchoServer(t, v.max)
			l := e.Loops()[0]
			d := &dialed{opened: make(chan *Conn, 1), data: make(chan []byte, 16), cl: newCloses()}
			l.DialTLS(addr, time.Second, tlsClient(t, pool, "localhost"), d, func(err error) { t.Errorf("dial: %v", err) })
			var c *Conn
			select {
			case c = <-d.opened:
			case <-time.After(5 * time.Second):
				t.Fatal("no OnOpen after the handshake")
			}
			infoc := make(chan tlsio.Info, 1)
			l.Post(func() {
				in, ok := c.TLSInfo()
				if !ok || !c.IsTLS() {
					t.Error("TLSInfo not valid in OnOpen's wake")
				}
				infoc <- in
				c.Write([]byte("ping"))
			})
			if in := <-infoc; in.Version != v.max || in.ALPN != "" || in.ServerName != "localhost" {
				t.Fatalf("session %+v, want version %x, no ALPN (the server has none), server name localhost", in, v.max)
			}
			var got []byte
			for len(got) < 4 {
				select {
				case b := <-d.data:
					got = append(got, b...)
				case <-time.After(5 * time.Second):
					t.Fatalf("echo: %q so far", got)
				}
			}
			if string(got) != "ping" {
				t.Fatalf("echo %q", got)
			}
			l.Post(func() { c.Close(diag.Clean) })
			tr := d.cl.next(t, 5*time.Second)
			if tr.Outcome != diag.Clean || tr.Entered[diag.CloseNotifySent] == 0 || tr.Entered[diag.HandshakeDone] == 0 {
				t.Fatalf("trace: outcome %v, close_notify sent at %d, handshake done at %d", tr.Outcome, tr.Entered[diag.CloseNotifySent], tr.Entered[diag.HandshakeDone])
			}
			end := <-ends
			if end.readErr != io.EOF {
				t.Fatalf("server read ended with %v, want io.EOF", end.readErr)
			}
			if v.max == tls.VersionTLS12 && (len(end.types) == 0 || end.types[len(end.types)-1] != 21) {
				t.Fatalf("record types after the handshake %v: want an alert (21) last", end.types)
			}
			if n := e.met.upTLSHandshakes[hsOK].Get(); n != 1 {
				t.Fatalf("upstream handshakes ok = %d", n)
			}
			if n := e.met.tlsHandshakes[hsOK].Get(); n != 0 {
				t.Fatalf("listener handshakes ok = %d: an upstream handshake was counted as a client's", n)
			}
		})
	}
}

// A certificate that does not verify: the handler never opens, the
// connection closes with TLSError, the server sees the client's alert.
func TestDialTLSBadCertificate(t *testing.T) {
	e, _ := startEngine(t, Config{}, func(c *Conn) Handler { return BaseHandler{} })
	addr, pool, ends := tlsEchoServer(t, 0)
	for i, cl := range []*tlsio.Client{
		tlsClient(t, x509.NewCertPool(), "localhost"), // unknown authority
		tlsClient(t, pool, "other.example"),           // wrong name
	} {
		d := &dialed{opened: make(chan *Conn, 1), data: make(chan []byte, 16), cl: newCloses()}
		e.Loops()[0].DialTLS(addr, time.Second, cl, d, func(err error) { t.Errorf("dial: %v", err) })
		tr := d.cl.next(t, 5*time.Second)
		if tr.Outcome != diag.TLSError || tr.Entered[diag.HandshakeDone] != 0 {
			t.Fatalf("case %d: outcome %v, handshake done at %d", i, tr.Outcome, tr.Entered[diag.HandshakeDone])
		}
		select {
		case <-d.opened:
			t.Fatalf("case %d: OnOpen ran", i)
		default:
		}
		end := <-ends
		if end.hsErr == nil || !bytes.Contains([]byte(end.hsErr.Error()), []byte("bad certificate")) {
			t.Fatalf("case %d: server handshake error %v, want the client's bad_certificate alert", i, end.hsErr)
		}
	}
	if n := e.met.upTLSHandshakes[hsError].Get(); n != 2 {
		t.Fatalf("upstream handshake errors = %d, want 2", n)
	}
}

// A server that accepts and never answers the ClientHello: the handshake
// times out (Config.HandshakeTimeout) and the connection is reset.
func TestDialTLSHandshakeTimeout(t *testing.T) {
	e, _ := startEngine(t, Config{HandshakeTimeout: 150 * time.Millisecond}, func(c *Conn) Handler { return BaseHandler{} })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	readErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			readErr <- err
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.Copy(io.Discard, c)
		readErr <- err
	}()
	d := &dialed{opened: make(chan *Conn, 1), data: make(chan []byte, 16), cl: newCloses()}
	start := time.Now()
	e.Loops()[0].DialTLS(ln.Addr().String(), time.Second, tlsClient(t, nil, "localhost"), d, func(err error) { t.Errorf("dial: %v", err) })
	tr := d.cl.next(t, 5*time.Second)
	if tr.Outcome != diag.HandshakeTimeout {
		t.Fatalf("outcome %v, want HandshakeTimeout", tr.Outcome)
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Fatalf("timed out after %v, before the 150ms timeout", el)
	}
	if err := <-readErr; !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("server read ended with %v, want a reset", err)
	}
	if n := e.met.upTLSHandshakes[hsTimeout].Get(); n != 1 {
		t.Fatalf("upstream handshake timeouts = %d", n)
	}
}
