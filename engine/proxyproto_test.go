package engine

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/tlsio"
)

func ppV2Header(cmd, fam byte, addrs []byte) []byte {
	b := append([]byte(nil), ppV2Sig...)
	b = append(b, 0x20|cmd, fam)
	b = binary.BigEndian.AppendUint16(b, uint16(len(addrs)))
	return append(b, addrs...)
}

func ppV2TCP4(src, dst [4]byte, sport, dport uint16, tlvs []byte) []byte {
	a := append(append([]byte(nil), src[:]...), dst[:]...)
	a = binary.BigEndian.AppendUint16(a, sport)
	a = binary.BigEndian.AppendUint16(a, dport)
	return ppV2Header(1, 0x11, append(a, tlvs...))
}

func TestParseProxyHeader(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::1").As16()
	a6 := append(append(append([]byte(nil), v6[:]...), v6[:]...), 0x1f, 0x90, 0x01, 0xbb)
	ok := []struct {
		name string
		in   []byte
		n    int
		src  string // "" keeps the connection's address
	}{
		{"v1 tcp4", []byte("PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET /"), 45, "192.0.2.7:56324"},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n"), 44, "[2001:db8::7]:1"},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), 15, ""},
		{"v1 unknown with addresses", []byte("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"), 35, ""},
		{"v2 tcp4", ppV2TCP4([4]byte{192, 0, 2, 7}, [4]byte{10, 0, 0, 1}, 40000, 443, nil), 28, "192.0.2.7:40000"},
		{"v2 tcp4 with TLVs", ppV2TCP4([4]byte{192, 0, 2, 8}, [4]byte{10, 0, 0, 1}, 1, 443, []byte{0x04, 0, 3, 'a', 'b', 'c'}), 34, "192.0.2.8:1"},
		{"v2 tcp6", ppV2Header(1, 0x21, a6), 52, "[2001:db8::1]:8080"},
		{"v2 local", ppV2Header(0, 0x00, nil), 16, ""},
		{"v2 unspec", ppV2Header(1, 0x00, []byte{1, 2, 3}), 19, ""},
		{"v2 udp4", ppV2Header(1, 0x12, make([]byte, 12)), 28, ""},
	}
	for _, c := range ok {
		h, err := parseProxyHeader(c.in)
		if err != nil || h.n != c.n {
			t.Errorf("%s: n %d err %v, want n %d", c.name, h.n, err, c.n)
			continue
		}
		if got := ""; c.src != "" || h.src.IsValid() {
			got = h.src.String()
			if got != c.src {
				t.Errorf("%s: src %q, want %q", c.name, got, c.src)
			}
		}
		// Every proper prefix asks for more.
		for i := 0; i < c.n; i++ {
			if _, err := parseProxyHeader(c.in[:i]); err != errPPNeedMore {
				t.Errorf("%s: %d of %d bytes: %v, want need-more", c.name, i, c.n, err)
				break
			}
		}
	}
	bad := []struct {
		name, reason string
		in           []byte
	}{
		{"plain http", "missing", []byte("GET / HTTP/1.1\r\n")},
		{"tls hello", "missing", []byte{0x16, 0x03, 0x01, 0x00, 0xa5}},
		{"v1 lowercase", "missing", []byte("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n")},
		{"v1 no crlf in 107", "bad_v1", []byte("PROXY TCP4 " + strings.Repeat("1", 100))},
		{"v1 bare lf", "bad_v1", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n" + strings.Repeat("x", 100))},
		{"v1 family mismatch", "bad_v1", []byte("PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n")},
		{"v1 bad ip", "bad_v1", []byte("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n")},
		{"v1 port range", "bad_v1", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n")},
		{"v1 port leading zero", "bad_v1", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n")},
		{"v1 port sign", "bad_v1", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n")},
		{"v1 missing field", "bad_v1", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n")},
		{"v1 extra space", "bad_v1", []byte("PROXY TCP4  1.2.3.4 5.6.7.8 80 2\r\n")},
		{"v1 udp", "bad_v1", []byte("PROXY UDP4 1.2.3.4 5.6.7.8 80 2\r\n")},
		{"v2 version 1", "bad_v2", append(append([]byte(nil), ppV2Sig...), 0x11, 0x11, 0, 0)},
		{"v2 command 2", "bad_v2", append(append([]byte(nil), ppV2Sig...), 0x22, 0x11, 0, 0)},
		{"v2 short ipv4", "bad_v2", ppV2Header(1, 0x11, make([]byte, 11))},
		{"v2 short ipv6", "bad_v2", ppV2Header(1, 0x21, make([]byte, 35))},
		{"v2 too long", "bad_v2", append(append([]byte(nil), ppV2Sig...), 0x21, 0x11, 0xff, 0xff)},
	}
	for _, c := range bad {
		_, err := parseProxyHeader(c.in)
		var pe *ppError
		if !errors.As(err, &pe) || pe.reason != c.reason {
			t.Errorf("%s: %v, want reason %s", c.name, err, c.reason)
		}
	}
}

func FuzzParseProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n"))
	f.Add(ppV2TCP4([4]byte{1, 2, 3, 4}, [4]byte{5, 6, 7, 8}, 1, 2, nil))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseProxyHeader(b)
		if err == nil && (h.n <= 0 || h.n > len(b)) {
			t.Fatalf("n %d of %d bytes", h.n, len(b))
		}
		if err == errPPNeedMore && len(b) >= ppV2Max {
			t.Fatalf("need-more at %d bytes", len(b))
		}
	})
}

// remoteEcho answers every read with the connection's RemoteAddr and the
// bytes read, so a test sees both the address and the data that followed
// the header.
type remoteEcho struct {
	BaseHandler
	cl *closes
}

func (h *remoteEcho) OnOpen(c *Conn) {
	c.Advance(DataTransfer)
	c.Write([]byte(c.RemoteAddr().String() + "|"))
}
func (h *remoteEcho) OnData(c *Conn, b []byte) int { c.Write(b); return len(b) }
func (h *remoteEcho) OnClosed(c *Conn, t *Trace)   { h.cl.add(t) }

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
		{"v2 local", ppV2Header(0, 0, nil), "", false},
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
	var snap Snapshot
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
		return e.met.closes[Downstream][FirstByteTimeout].Get() == 1
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

// AppendProxyHeader writes what parseProxyHeader reads back: both
// versions, both families, mixed families (as IPv6), and non-TCP
// addresses as "keep your own".
func TestAppendProxyHeaderRoundTrip(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	for _, c := range []struct {
		src, dst net.Addr
		want     string // "" keeps the connection's address
	}{
		{tcp("192.0.2.7:56324"), tcp("10.0.0.1:443"), "192.0.2.7:56324"},
		{tcp("[2001:db8::7]:1"), tcp("[2001:db8::1]:443"), "[2001:db8::7]:1"},
		{tcp("[::ffff:192.0.2.9]:80"), tcp("10.0.0.1:443"), "192.0.2.9:80"},
		{tcp("192.0.2.7:5"), tcp("[2001:db8::1]:443"), "[::ffff:192.0.2.7]:5"},
		{&net.UnixAddr{Name: "/x", Net: "unix"}, tcp("10.0.0.1:443"), ""},
		{nil, nil, ""},
	} {
		for _, v := range []int{1, 2} {
			b := AppendProxyHeader([]byte("x"), v, c.src, c.dst)[1:]
			h, err := parseProxyHeader(append(b, "after"...))
			if err != nil || h.n != len(b) || h.version != v {
				t.Fatalf("v%d %v: %q → %+v, %v", v, c.src, b, h, err)
			}
			got := ""
			if h.src.IsValid() {
				got = h.src.String()
			}
			if got != c.want {
				t.Errorf("v%d %v: src %q, want %q", v, c.src, got, c.want)
			}
		}
	}
}
