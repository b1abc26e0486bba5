package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
)

var (
	v1Prefix = []byte("PROXY ")
	// V2Sig is the 12-byte signature every v2 header starts with.
	V2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

	// ErrNeedMore: the bytes so far are the beginning of a header.
	ErrNeedMore = errors.New("proxy protocol: need more bytes")
)

// Error is a rejected header; Reason is a short label for metrics
// (missing, bad_v1, bad_v2).
type Error struct{ Reason, Detail string }

func (e *Error) Error() string { return "proxy protocol: " + e.Reason + ": " + e.Detail }

const (
	V1Max = 107       // the longest v1 line the specification allows, CRLF included
	V2Max = 16 + 2048 // sluice's bound on a v2 header with its TLVs
)

// Header is a parsed header. Src is the client's address, unset when the
// header says to keep the connection's own (v1 UNKNOWN, v2 LOCAL, or an
// address family not relayed).
type Header struct {
	Len     int // header length in bytes
	Version int // 1 or 2
	Src     netip.AddrPort
}

// Parse reads a header at the start of b. It returns ErrNeedMore while b
// could still become one, and an *Error when it cannot.
func Parse(b []byte) (Header, error) {
	switch {
	case hasPrefixOrIs(b, v1Prefix):
		if len(b) < len(v1Prefix) {
			return Header{}, ErrNeedMore
		}
		return parseV1(b)
	case hasPrefixOrIs(b, V2Sig):
		if len(b) < 16 {
			return Header{}, ErrNeedMore
		}
		return parseV2(b)
	}
	return Header{}, &Error{"missing", "the connection does not start with a PROXY protocol header"}
}

// hasPrefixOrIs: b starts with p, or is a beginning of p.
func hasPrefixOrIs(b, p []byte) bool {
	if len(b) < len(p) {
		return bytes.Equal(b, p[:len(b)])
	}
	return bytes.HasPrefix(b, p)
}

// parseV1: "PROXY TCP4|TCP6 src dst sport dport\r\n" or "PROXY UNKNOWN...\r\n".
func parseV1(b []byte) (Header, error) {
	end := bytes.Index(b[:min(len(b), V1Max)], []byte("\r\n"))
	if end < 0 {
		if len(b) >= V1Max {
			return Header{}, &Error{"bad_v1", "no CRLF within 107 bytes"}
		}
		return Header{}, ErrNeedMore
	}
	h := Header{Len: end + 2, Version: 1}
	f := bytes.Split(b[len(v1Prefix):end], []byte(" "))
	if len(f) >= 1 && string(f[0]) == "UNKNOWN" {
		return h, nil // the rest of the line is to be ignored
	}
	if len(f) != 5 {
		return Header{}, &Error{"bad_v1", "want TCP4|TCP6 src dst sport dport"}
	}
	var is4 bool
	switch string(f[0]) {
	case "TCP4":
		is4 = true
	case "TCP6":
	default:
		return Header{}, &Error{"bad_v1", "unknown protocol " + strconv.Quote(string(f[0]))}
	}
	src, err1 := netip.ParseAddr(string(f[1]))
	dst, err2 := netip.ParseAddr(string(f[2]))
	if err1 != nil || err2 != nil || src.Is4() != is4 || dst.Is4() != is4 || src.Zone() != "" {
		return Header{}, &Error{"bad_v1", "bad address for " + string(f[0])}
	}
	sport, ok1 := port(f[3])
	_, ok2 := port(f[4])
	if !ok1 || !ok2 {
		return Header{}, &Error{"bad_v1", "bad port"}
	}
	h.Src = netip.AddrPortFrom(src, sport)
	return h, nil
}

// port parses a decimal port, 0 to 65535, without a sign or leading zeros.
func port(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 || len(b) > 1 && b[0] == '0' {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return uint16(n), n <= 65535
}

// parseV2: the 16-byte binary header, then addresses and TLVs.
func parseV2(b []byte) (Header, error) {
	verCmd, fam := b[12], b[13]
	if verCmd>>4 != 2 {
		return Header{}, &Error{"bad_v2", "version " + strconv.Itoa(int(verCmd>>4))}
	}
	cmd := verCmd & 0x0f
	if cmd > 1 {
		return Header{}, &Error{"bad_v2", "command " + strconv.Itoa(int(cmd))}
	}
	l := int(binary.BigEndian.Uint16(b[14:16]))
	if 16+l > V2Max {
		return Header{}, &Error{"bad_v2", "header of " + strconv.Itoa(16+l) + " bytes"}
	}
	if len(b) < 16+l {
		return Header{}, ErrNeedMore
	}
	h := Header{Len: 16 + l, Version: 2}
	if cmd == 0 { // LOCAL: the balancer's own connection (health checks)
		return h, nil
	}
	a := b[16 : 16+l]
	switch fam {
	case 0x11: // TCP over IPv4
		if l < 12 {
			return Header{}, &Error{"bad_v2", "short IPv4 addresses"}
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[0:4])), binary.BigEndian.Uint16(a[8:10]))
	case 0x21: // TCP over IPv6
		if l < 36 {
			return Header{}, &Error{"bad_v2", "short IPv6 addresses"}
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[0:16])), binary.BigEndian.Uint16(a[32:34]))
	}
	// UNSPEC, UDP and unix sockets: keep the connection's own address.
	return h, nil
}

// Append appends to b a header of version 1 or 2 saying that the
// connection it starts comes from src to dst (what a relay tells its
// upstream). When either is not valid, the header says so (v1 UNKNOWN, v2
// LOCAL) and the receiver keeps its own. IPv4-mapped addresses are sent
// as IPv4 unless the other one is IPv6.
func Append(b []byte, version int, src, dst netip.AddrPort) []byte {
	known := src.IsValid() && dst.IsValid()
	s := netip.AddrPortFrom(src.Addr().Unmap().WithZone(""), src.Port())
	d := netip.AddrPortFrom(dst.Addr().Unmap().WithZone(""), dst.Port())
	if known && s.Addr().Is4() != d.Addr().Is4() {
		// One family for both, as the formats require: IPv4 as mapped IPv6.
		s = netip.AddrPortFrom(netip.AddrFrom16(s.Addr().As16()), s.Port())
		d = netip.AddrPortFrom(netip.AddrFrom16(d.Addr().As16()), d.Port())
	}
	if version == 1 {
		if !known {
			return append(b, "PROXY UNKNOWN\r\n"...)
		}
		fam := "TCP6"
		if s.Addr().Is4() {
			fam = "TCP4"
		}
		b = append(b, "PROXY "+fam+" "...)
		b = s.Addr().AppendTo(b)
		b = append(b, ' ')
		b = d.Addr().AppendTo(b)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(s.Port()), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(d.Port()), 10)
		return append(b, "\r\n"...)
	}
	if !known {
		return AppendV2(b, 0, 0x00, nil) // LOCAL, UNSPEC
	}
	var a []byte
	fam := byte(0x21)
	if s.Addr().Is4() {
		fam = 0x11
		s4, d4 := s.Addr().As4(), d.Addr().As4()
		a = append(append(make([]byte, 0, 12), s4[:]...), d4[:]...)
	} else {
		s16, d16 := s.Addr().As16(), d.Addr().As16()
		a = append(append(make([]byte, 0, 36), s16[:]...), d16[:]...)
	}
	a = binary.BigEndian.AppendUint16(a, s.Port())
	a = binary.BigEndian.AppendUint16(a, d.Port())
	return AppendV2(b, 1, fam, a)
}

// AppendV2 appends a v2 header with command cmd (0 LOCAL, 1 PROXY),
// family and protocol byte fam (0x11 TCP/IPv4, 0x21 TCP/IPv6, ...) and
// body, the address block followed by any TLVs.
func AppendV2(b []byte, cmd, fam byte, body []byte) []byte {
	b = append(b, V2Sig...)
	b = append(b, 0x20|cmd, fam)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}
