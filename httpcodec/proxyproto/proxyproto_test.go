package proxyproto

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func ppV2TCP4(src, dst [4]byte, sport, dport uint16, tlvs []byte) []byte {
	a := append(append([]byte(nil), src[:]...), dst[:]...)
	a = binary.BigEndian.AppendUint16(a, sport)
	a = binary.BigEndian.AppendUint16(a, dport)
	return AppendV2(nil, 1, 0x11, append(a, tlvs...))
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
		{"v2 tcp6", AppendV2(nil, 1, 0x21, a6), 52, "[2001:db8::1]:8080"},
		{"v2 local", AppendV2(nil, 0, 0x00, nil), 16, ""},
		{"v2 unspec", AppendV2(nil, 1, 0x00, []byte{1, 2, 3}), 19, ""},
		{"v2 udp4", AppendV2(nil, 1, 0x12, make([]byte, 12)), 28, ""},
	}
	for _, c := range ok {
		h, err := Parse(c.in)
		if err != nil || h.Len != c.n {
			t.Errorf("%s: n %d err %v, want n %d", c.name, h.Len, err, c.n)
			continue
		}
		if got := ""; c.src != "" || h.Src.IsValid() {
			got = h.Src.String()
			if got != c.src {
				t.Errorf("%s: src %q, want %q", c.name, got, c.src)
			}
		}
		// Every proper prefix asks for more.
		for i := 0; i < c.n; i++ {
			if _, err := Parse(c.in[:i]); err != ErrNeedMore {
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
		{"v2 version 1", "bad_v2", append(append([]byte(nil), V2Sig...), 0x11, 0x11, 0, 0)},
		{"v2 command 2", "bad_v2", append(append([]byte(nil), V2Sig...), 0x22, 0x11, 0, 0)},
		{"v2 short ipv4", "bad_v2", AppendV2(nil, 1, 0x11, make([]byte, 11))},
		{"v2 short ipv6", "bad_v2", AppendV2(nil, 1, 0x21, make([]byte, 35))},
		{"v2 too long", "bad_v2", append(append([]byte(nil), V2Sig...), 0x21, 0x11, 0xff, 0xff)},
	}
	for _, c := range bad {
		_, err := Parse(c.in)
		var pe *Error
		if !errors.As(err, &pe) || pe.Reason != c.reason {
			t.Errorf("%s: %v, want reason %s", c.name, err, c.reason)
		}
	}
}

func FuzzParseProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n"))
	f.Add(ppV2TCP4([4]byte{1, 2, 3, 4}, [4]byte{5, 6, 7, 8}, 1, 2, nil))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		if err == nil && (h.Len <= 0 || h.Len > len(b)) {
			t.Fatalf("n %d of %d bytes", h.Len, len(b))
		}
		if err == ErrNeedMore && len(b) >= V2Max {
			t.Fatalf("need-more at %d bytes", len(b))
		}
	})
}

// Append writes what Parse reads back: both versions, both families,
// mapped IPv4 as IPv4, mixed families (as IPv6), and unknown addresses as
// "keep your own".
func TestAppendProxyHeaderRoundTrip(t *testing.T) {
	tcp := netip.MustParseAddrPort
	for _, c := range []struct {
		src, dst netip.AddrPort
		want     string // "" keeps the connection's address
	}{
		{tcp("192.0.2.7:56324"), tcp("10.0.0.1:443"), "192.0.2.7:56324"},
		{tcp("[2001:db8::7]:1"), tcp("[2001:db8::1]:443"), "[2001:db8::7]:1"},
		{tcp("[::ffff:192.0.2.9]:80"), tcp("10.0.0.1:443"), "192.0.2.9:80"},
		{tcp("192.0.2.7:5"), tcp("[2001:db8::1]:443"), "[::ffff:192.0.2.7]:5"},
		{netip.AddrPort{}, tcp("10.0.0.1:443"), ""},
		{netip.AddrPort{}, netip.AddrPort{}, ""},
	} {
		for _, v := range []int{1, 2} {
			b := Append([]byte("x"), v, c.src, c.dst)[1:]
			h, err := Parse(append(b, "after"...))
			if err != nil || h.Len != len(b) || h.Version != v {
				t.Fatalf("v%d %v: %q → %+v, %v", v, c.src, b, h, err)
			}
			got := ""
			if h.Src.IsValid() {
				got = h.Src.String()
			}
			if got != c.want {
				t.Errorf("v%d %v: src %q, want %q", v, c.src, got, c.want)
			}
		}
	}
}
