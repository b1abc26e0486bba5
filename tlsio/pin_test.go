package tlsio

// Pins of undocumented crypto/tls behaviour that tlsio relies on. If one of
// these fails after a Go upgrade, tlsio's inline record path (std.go) must
// be revisited before anything else.

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

type pinTemporary struct{}

func (pinTemporary) Error() string   { return "pin: would block" }
func (pinTemporary) Timeout() bool   { return true }
func (pinTemporary) Temporary() bool { return true }

// pinConn is one end of an in-memory pair that does not involve tlsio. In
// nonblocking mode an empty Read returns pinTemporary{}.
type pinConn struct {
	mu       sync.Mutex
	cond     sync.Cond
	in       []byte
	nonblock bool
	eof      bool
	gaveEOF  bool
	peer     *pinConn
}

func pinPair() (*pinConn, *pinConn) {
	a, b := &pinConn{}, &pinConn{}
	a.cond.L, b.cond.L = &a.mu, &b.mu
	a.peer, b.peer = b, a
	return a, b
}

func (p *pinConn) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.in) == 0 {
		switch {
		case p.eof:
			p.gaveEOF = true
			return 0, io.EOF
		case p.nonblock:
			return 0, pinTemporary{}
		}
		p.cond.Wait()
	}
	n := copy(b, p.in)
	p.in = p.in[n:]
	return n, nil
}

func (p *pinConn) Write(b []byte) (int, error) {
	p.peer.give(b)
	return len(b), nil
}

func (p *pinConn) give(b []byte) {
	p.mu.Lock()
	p.in = append(p.in, b...)
	p.cond.Broadcast()
	p.mu.Unlock()
}

// take removes what is buffered for p's reader (used to intercept).
func (p *pinConn) take() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.in
	p.in = nil
	return b
}

func (p *pinConn) Close() error                     { return nil }
func (p *pinConn) LocalAddr() net.Addr              { return memAddr{} }
func (p *pinConn) RemoteAddr() net.Addr             { return memAddr{} }
func (p *pinConn) SetDeadline(time.Time) error      { return nil }
func (p *pinConn) SetReadDeadline(time.Time) error  { return nil }
func (p *pinConn) SetWriteDeadline(time.Time) error { return nil }

// pinSession returns a crypto/tls server and client that have completed a
// handshake over a pinConn pair, with the server's transport nonblocking.
func pinSession(t *testing.T, version uint16) (srv, cli *tls.Conn, sp, cp *pinConn) {
	t.Helper()
	sp, cp = pinPair()
	k := localPair(t)
	srv = tls.Server(sp, &tls.Config{Certificates: []tls.Certificate{k.cert}})
	cli = tls.Client(cp, clientConfig(version, k))
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	sp.mu.Lock()
	sp.nonblock = true
	sp.mu.Unlock()
	return srv, cli, sp, cp
}

// TestPinTemporaryReadRetry pins that tls.Conn.Read, when its transport
// returns a net.Error whose Temporary() is true, (1) returns that very
// error, (2) keeps the partial record it has read, (3) does not make the
// error sticky, so a later Read with more bytes succeeds, and (4) leaves
// Write usable.
func TestPinTemporaryReadRetry(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			srv, cli, sp, _ := pinSession(t, v.v)
			buf := make([]byte, 64)

			// Nothing buffered.
			if n, err := srv.Read(buf); n != 0 || err != (pinTemporary{}) {
				t.Fatalf("crypto/tls changed: empty Read = (%d, %v), want the transport's temporary error", n, err)
			}
			// One record, given in three slices.
			if _, err := cli.Write([]byte("hello, world")); err != nil {
				t.Fatal(err)
			}
			rec := sp.take()
			for _, cut := range [][2]int{{0, 3}, {3, len(rec) - 1}} {
				sp.give(rec[cut[0]:cut[1]])
				if n, err := srv.Read(buf); n != 0 || err != (pinTemporary{}) {
					t.Fatalf("crypto/tls changed: Read of a partial record = (%d, %v), want the temporary error", n, err)
				}
			}
			sp.give(rec[len(rec)-1:])
			n, err := srv.Read(buf)
			if err != nil || string(buf[:n]) != "hello, world" {
				t.Fatalf("crypto/tls changed: Read after temporary errors = (%q, %v); the error became sticky or the partial record was lost", buf[:n], err)
			}
			// Still not sticky, and writing works.
			if _, err := srv.Read(buf); err != (pinTemporary{}) {
				t.Fatalf("crypto/tls changed: %v", err)
			}
			if _, err := srv.Write([]byte("reply")); err != nil {
				t.Fatalf("crypto/tls changed: Write after temporary read errors: %v", err)
			}
			if n, err := cli.Read(buf); err != nil || string(buf[:n]) != "reply" {
				t.Fatalf("client read %q %v", buf[:n], err)
			}
		})
	}
}

// TestPinCloseNotifyStopsReading pins that crypto/tls returns io.EOF on a
// close_notify without reading further from the transport, and io.EOF also
// on a transport EOF at a record boundary. tlsio tells them apart by
// whether its transport handed out io.EOF.
func TestPinCloseNotifyStopsReading(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			srv, cli, sp, _ := pinSession(t, v.v)
			cli.CloseWrite()
			sp.mu.Lock()
			sp.eof = true
			sp.mu.Unlock()
			if _, err := srv.Read(make([]byte, 8)); err != io.EOF {
				t.Fatalf("close_notify: %v", err)
			}
			sp.mu.Lock()
			gave := sp.gaveEOF
			sp.mu.Unlock()
			if gave {
				t.Fatal("crypto/tls changed: it read the transport's EOF after close_notify")
			}

			srv2, _, sp2, _ := pinSession(t, v.v)
			sp2.mu.Lock()
			sp2.eof = true
			sp2.mu.Unlock()
			if _, err := srv2.Read(make([]byte, 8)); err != io.EOF || !sp2.gaveEOF {
				t.Fatalf("crypto/tls changed: EOF at a record boundary: %v, want io.EOF", err)
			}
		})
	}
}

// TestPinAlertErrorShape pins the shape tlsAlert decodes: crypto/tls
// reports alerts as *net.OpError{Op: "local error"|"remote error"} around
// its unexported uint8 alert type.
func TestPinAlertErrorShape(t *testing.T) {
	srv, cli, sp, cp := pinSession(t, tls.VersionTLS13)
	sp.give([]byte{23, 3, 3, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	_, err := srv.Read(make([]byte, 8))
	a, remote, ok := tlsAlert(err)
	if !ok || remote || a != AlertBadRecordMAC {
		t.Fatalf("crypto/tls changed: local alert error %#v decoded as (%v, remote %v, ok %v)", err, a, remote, ok)
	}
	cp.mu.Lock()
	cp.eof = true
	cp.mu.Unlock()
	_, err = cli.Read(make([]byte, 8))
	a, remote, ok = tlsAlert(err)
	if !ok || !remote || a != AlertBadRecordMAC {
		t.Fatalf("crypto/tls changed: remote alert error %#v decoded as (%v, remote %v, ok %v)", err, a, remote, ok)
	}
	if _, _, ok := tlsAlert(errors.New("x")); ok {
		t.Fatal("plain error decoded as an alert")
	}
}
