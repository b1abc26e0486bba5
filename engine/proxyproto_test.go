package engine

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/httpcodec/proxyproto"
	"github.com/sluice-proxy/sluice/tlsio"
)

// ppV2TCP4 is a v2 PROXY header for TCP over IPv4, with tlvs after the
// addresses.
func ppV2TCP4(src, dst [4]byte, sport, dport uint16, tlvs []byte) []byte {
	h := proxyproto.Append(nil, 2, netip.AddrPortFrom(netip.AddrFrom4(src), sport), netip.AddrPortFrom(netip.AddrFrom4(dst), dport))
	return proxyproto.AppendV2(nil, 1, 0x11, append(h[16:], tlvs...))
}

// remoteEcho answers every read with the connection's RemoteAddr and the
// bytes read, so a test sees both the address and the data that followed
// the header.
type remoteEcho struct {
	BaseHandler
	cl *closes
}

func (h *remoteEcho) OnOpen(c *Conn) {
	c.Advance(diag.DataTransfer)
	c.Write([]byte(c.RemoteAddr().String() + "|"))
}
func (h *remoteEcho) OnData(c *Conn, b []byte) int    { c.Write(b); return len(b) }
func (h *remoteEcho) OnClosed(c *Conn, t *diag.Trace) { h.cl.add(t) }

// ppEngine runs an engine whose one listener ("pp") wants PROXY headers,
// over TLS when srv is set.
func ppEngine(t *testing.T, cfg Config, srv *tlsio.Server) (*Engine, string, *closes) {
	t.Helper()
	cl := newCloses()
	cfg.Logger = testLogger(t)
	cfg.Listeners = []Listener{{Name: "pp", Addr: "127.0.0.1:0", ProxyProtocol: true, TLS: srv,
		Accept: func(c *Conn) Handler { return &remoteEcho{cl: cl} }}}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(testCtx(t)) })
	return e, e.Addr("pp"), cl
}

// A listener with ProxyProtocol: the handler opens after the header with
// the client it names as RemoteAddr, and sees only the bytes after it;
// the header may come whole with data or a byte at a time; LOCAL keeps
// the socket's address; the balancer shows in the snapshot.
func TestProxyProtocolListener(t *testing.T) {
	e, addr, _ := ppEngine(t, Config{}, nil)
	for _, c := range []struct {
		name   string
		header []byte
		remote string // "" means the socket's own
		split  bool
	}{
		{"v1", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n"), "192.0.2.7:56324", false},
		{"v1 bytewise", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 1234 443\r\n"), "[2001:db8::7]:1234", true},
		{"v2", ppV2TCP4([4]byte{203, 0, 113, 9}, [4]byte{10, 0, 0, 1}, 40000, 443, []byte{0x04, 0, 1, 'x'}), "203.0.113.9:40000", false},
		{"v2 bytewise", ppV2TCP4([4]byte{203, 0, 113, 10}, [4]byte{10, 0, 0, 1}, 1, 443, nil), "203.0.113.10:1", true},
		{"v2 local", proxyproto.AppendV2(nil, 0, 0, nil), "", false},
	} {
		nc := dialT(t, addr)
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		msg := append(append([]byte(nil), c.header...), "hello"...)
		if c.split {
			for _, b := range msg {
				nc.Write([]byte{b})
				time.Sleep(time.Millisecond)
			}
		} else {
			nc.Write(msg)
		}
		want := c.remote
		if want == "" {
			want = nc.LocalAddr().String()
		}
		got := make([]byte, len(want)+1+5)
		if _, err := io.ReadFull(nc, got); err != nil || string(got) != want+"|hello" {
			t.Fatalf("%s: %q, %v; want %q", c.name, got, err, want+"|hello")
		}
		if c.remote != "" {
			found := false
			snap, _ := e.Snapshot(testCtx(t))
			for _, ci := range snap.Conns {
				if ci.Remote == c.remote && ci.Balancer == nc.LocalAddr().String() {
					found = true
				}
			}
			if !found {
				t.Fatalf("%s: no connection in the snapshot with remote %s and balancer %s", c.name, c.remote, nc.LocalAddr())
			}
		}
		nc.Close()
	}
	if v1, v2 := e.met.proxyProtoRes[ppV1].Get(), e.met.proxyProtoRes[ppV2].Get(); v1 != 2 || v2 != 3 {
		t.Fatalf("headers v1=%d v2=%d, want 2 and 3", v1, v2)
	}
}

// No header, a bad one, one that never ends, EOF inside one: the
// connection closes without the handler ever opening (its close trace
// never reaches DataTransfer), counted by reason.
func TestProxyProtocolRejects(t *testing.T) {
	e, addr, cl := ppEngine(t, Config{FirstByteTimeout: 150 * time.Millisecond}, nil)
	for _, c := range []struct {
		reason string
		send   string
		eof    bool
	}{
		{"missing", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"bad_v1", "PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", false},
		{"timeout", "PROXY TCP4 1.2.3.4", false},
		{"eof", "PROXY TCP4 1.2.3.4", true},
	} {
		nc := dialT(t, addr)
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(nc, c.send)
		if c.eof {
			nc.CloseWrite()
		}
		b, err := io.ReadAll(nc)
		if err != nil || len(b) != 0 {
			t.Fatalf("%s: read %q, %v; want a close and nothing else", c.reason, b, err)
		}
		nc.Close()
	}
	// The trace is written when the socket closes, after our close ends
	// the linger: wait for all four.
	var snap diag.Snapshot
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		snap, _ = e.Snapshot(testCtx(t))
		if len(snap.Recent) >= 4 || time.Now().After(deadline) {
			break
		}
	}
	if len(snap.Recent) != 4 {
		t.Fatalf("%d close traces, want 4", len(snap.Recent))
	}
	for _, tr := range snap.Recent {
		if _, opened := tr.States["DataTransfer"]; tr.Outcome != "protocol_error" || opened {
			t.Errorf("close trace %+v: want protocol_error, never in DataTransfer", tr)
		}
	}
	// Nothing at all: reset at the first-byte timeout.
	silent := dialT(t, addr)
	silent.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("silent: read %v, want a reset", err)
	}
	if !waitFor(5*time.Second, func() bool {
		return e.met.conn.Closes(diag.Downstream, diag.FirstByteTimeout) == 1
	}) {
		t.Fatal("first_byte_timeout close not counted")
	}
	select {
	case <-cl.ch:
		t.Fatal("a handler saw a rejected connection")
	default:
	}
	for i, r := range ppResults {
		want := uint64(0)
		if i >= 2 && r != "bad_v2" && r != "evicted" {
			want = 1
		}
		if got := e.met.proxyProtoRes[i].Get(); got != want {
			t.Errorf("result %s: %d, want %d", r, got, want)
		}
	}
}

// PROXY protocol in front of TLS: the header, then the handshake.
func TestProxyProtocolThenTLS(t *testing.T) {
	_, addr, _ := ppEngine(t, Config{}, newTLSFixture(t).srv)
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	raw.Write(ppV2TCP4([4]byte{198, 51, 100, 20}, [4]byte{10, 0, 0, 1}, 5555, 443, nil))
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	tc.Write([]byte("hi"))
	want := "198.51.100.20:5555|hi"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(tc, got); err != nil || !bytes.Equal(got, []byte(want)) {
		t.Fatalf("%q, %v; want %q", got, err, want)
	}
}
