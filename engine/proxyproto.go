package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
)

// The PROXY protocol (HAProxy, versions 1 and 2): a load balancer in
// front of sluice opens each connection with a header naming the client's
// address, so logs, traces and X-Forwarded-For show the client rather
// than the balancer. A listener with ProxyProtocol set requires the
// header: the connection's handler is chosen (and a TLS handshake
// started) only once it has been read, and a connection without a valid
// header, or that does not send one within FirstByteTimeout of accept, is
// closed; until the header is complete the connection is waiting, as a
// silent one is (admission.go).
// Only trusted balancers should be able to reach such a listener: the
// header is taken at its word.

var (
	ppV1Prefix = []byte("PROXY ")
	ppV2Sig    = []byte("\r\n\r\n\x00\r\nQUIT\n")

	errPPNeedMore = errors.New("proxy protocol: need more bytes")
)

// ppError is a rejected header; reason labels the metric.
type ppError struct{ reason, detail string }

func (e *ppError) Error() string { return "proxy protocol: " + e.reason + ": " + e.detail }

const (
	ppV1Max = 107       // the longest v1 line the specification allows, CRLF included
	ppV2Max = 16 + 2048 // sluice's bound on a v2 header with its TLVs
)

// ppHeader is a parsed header. src is the client's address, unset when the
// header says to keep the connection's own (v1 UNKNOWN, v2 LOCAL, or an
// address family sluice does not relay).
type ppHeader struct {
	n       int // header length
	version int
	src     netip.AddrPort
}

// parseProxyHeader reads a header at the start of b. It returns
// errPPNeedMore while b could still become one, and a *ppError when it
// cannot.
func parseProxyHeader(b []byte) (ppHeader, error) {
	switch {
	case hasPrefixOrIs(b, ppV1Prefix):
		if len(b) < len(ppV1Prefix) {
			return ppHeader{}, errPPNeedMore
		}
		return parsePPv1(b)
	case hasPrefixOrIs(b, ppV2Sig):
		if len(b) < 16 {
			return ppHeader{}, errPPNeedMore
		}
		return parsePPv2(b)
	}
	return ppHeader{}, &ppError{"missing", "the connection does not start with a PROXY protocol header"}
}

// hasPrefixOrIs: b starts with p, or is a beginning of p.
func hasPrefixOrIs(b, p []byte) bool {
	if len(b) < len(p) {
		return bytes.Equal(b, p[:len(b)])
	}
	return bytes.HasPrefix(b, p)
}

// parsePPv1: "PROXY TCP4|TCP6 src dst sport dport\r\n" or "PROXY UNKNOWN...\r\n".
func parsePPv1(b []byte) (ppHeader, error) {
	end := bytes.Index(b[:min(len(b), ppV1Max)], []byte("\r\n"))
	if end < 0 {
		if len(b) >= ppV1Max {
			return ppHeader{}, &ppError{"bad_v1", "no CRLF within 107 bytes"}
		}
		return ppHeader{}, errPPNeedMore
	}
	h := ppHeader{n: end + 2, version: 1}
	f := bytes.Split(b[len(ppV1Prefix):end], []byte(" "))
	if len(f) >= 1 && string(f[0]) == "UNKNOWN" {
		return h, nil // the rest of the line is to be ignored
	}
	if len(f) != 5 {
		return ppHeader{}, &ppError{"bad_v1", "want TCP4|TCP6 src dst sport dport"}
	}
	var is4 bool
	switch string(f[0]) {
	case "TCP4":
		is4 = true
	case "TCP6":
	default:
		return ppHeader{}, &ppError{"bad_v1", "unknown protocol " + strconv.Quote(string(f[0]))}
	}
	src, err1 := netip.ParseAddr(string(f[1]))
	dst, err2 := netip.ParseAddr(string(f[2]))
	if err1 != nil || err2 != nil || src.Is4() != is4 || dst.Is4() != is4 || src.Zone() != "" {
		return ppHeader{}, &ppError{"bad_v1", "bad address for " + string(f[0])}
	}
	sport, ok1 := ppPort(f[3])
	_, ok2 := ppPort(f[4])
	if !ok1 || !ok2 {
		return ppHeader{}, &ppError{"bad_v1", "bad port"}
	}
	h.src = netip.AddrPortFrom(src, sport)
	return h, nil
}

// ppPort parses a decimal port, 0 to 65535, without a sign or leading zeros.
func ppPort(b []byte) (uint16, bool) {
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

// parsePPv2: the 16-byte binary header, then addresses and TLVs.
func parsePPv2(b []byte) (ppHeader, error) {
	verCmd, fam := b[12], b[13]
	if verCmd>>4 != 2 {
		return ppHeader{}, &ppError{"bad_v2", "version " + strconv.Itoa(int(verCmd>>4))}
	}
	cmd := verCmd & 0x0f
	if cmd > 1 {
		return ppHeader{}, &ppError{"bad_v2", "command " + strconv.Itoa(int(cmd))}
	}
	l := int(binary.BigEndian.Uint16(b[14:16]))
	if 16+l > ppV2Max {
		return ppHeader{}, &ppError{"bad_v2", "header of " + strconv.Itoa(16+l) + " bytes"}
	}
	if len(b) < 16+l {
		return ppHeader{}, errPPNeedMore
	}
	h := ppHeader{n: 16 + l, version: 2}
	if cmd == 0 { // LOCAL: the balancer's own connection (health checks)
		return h, nil
	}
	a := b[16 : 16+l]
	switch fam {
	case 0x11: // TCP over IPv4
		if l < 12 {
			return ppHeader{}, &ppError{"bad_v2", "short IPv4 addresses"}
		}
		h.src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[0:4])), binary.BigEndian.Uint16(a[8:10]))
	case 0x21: // TCP over IPv6
		if l < 36 {
			return ppHeader{}, &ppError{"bad_v2", "short IPv6 addresses"}
		}
		h.src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[0:16])), binary.BigEndian.Uint16(a[32:34]))
	}
	// UNSPEC, UDP and unix sockets: keep the connection's own address.
	return h, nil
}

// ppState is a connection whose PROXY header is still being read.
type ppState struct {
	ln  *Listener
	buf []byte
}

// ppRead takes bytes of a connection still waiting for its header. Once
// the header is complete it accepts the connection for real and hands the
// bytes after it on.
func (c *Conn) ppRead(b []byte) {
	p := c.pp
	in := b
	if len(p.buf) > 0 {
		p.buf = append(p.buf, b...)
		in = p.buf
	}
	h, err := parseProxyHeader(in)
	if err == errPPNeedMore {
		if len(p.buf) == 0 {
			p.buf = append(p.buf, b...)
		}
		return
	}
	if err != nil {
		var pe *ppError
		errors.As(err, &pe)
		c.ppFailed(pe.reason, err)
		return
	}
	rest := in[h.n:]
	c.pp = nil
	c.stopWaiting()
	e := c.l.e
	e.met.proxyProto(ppResultVersion(h))
	if h.src.IsValid() {
		c.lb = c.remote
		c.remote = net.TCPAddrFromAddrPort(h.src)
	}
	// Behind a balancer the client may still say nothing: TLS waits for
	// its first byte again (acceptFrom).
	c.acceptFrom(p.ln)
	if c.tls == nil {
		c.openHandler()
	}
	if len(rest) > 0 && c.state < SocketClosed && !c.socketClosing {
		c.dispatchRead(rest)
	}
}

func ppResultVersion(h ppHeader) int {
	if h.version == 1 {
		return ppV1
	}
	return ppV2
}

// ppFailed closes a connection whose header was bad or did not come.
func (c *Conn) ppFailed(reason string, err error) {
	c.pp = nil
	e := c.l.e
	e.met.proxyProtoFailed(reason)
	e.log.Info("proxy protocol header rejected", "conn", connID(c.id), "remote", addrString(c.remote),
		"reason", reason, "err", err)
	c.Close(ProtocolError)
}

// AppendProxyHeader appends to b a PROXY protocol header of version 1 or 2
// saying that the connection it starts comes from src to dst (what a
// relay tells its upstream). When either is not a TCP address, the
// header says so (v1 UNKNOWN, v2 LOCAL) and the receiver keeps its own.
func AppendProxyHeader(b []byte, version int, src, dst net.Addr) []byte {
	s, ok1 := tcpAddrPort(src)
	d, ok2 := tcpAddrPort(dst)
	if ok1 && ok2 && s.Addr().Is4() != d.Addr().Is4() {
		// One family for both, as the formats require: IPv4 as mapped IPv6.
		s = netip.AddrPortFrom(netip.AddrFrom16(s.Addr().As16()), s.Port())
		d = netip.AddrPortFrom(netip.AddrFrom16(d.Addr().As16()), d.Port())
	}
	known := ok1 && ok2
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
	b = append(b, ppV2Sig...)
	if !known {
		return append(b, 0x20, 0x00, 0, 0) // LOCAL, UNSPEC
	}
	if s.Addr().Is4() {
		b = append(b, 0x21, 0x11, 0, 12)
		s4, d4 := s.Addr().As4(), d.Addr().As4()
		b = append(append(b, s4[:]...), d4[:]...)
	} else {
		b = append(b, 0x21, 0x21, 0, 36)
		s16, d16 := s.Addr().As16(), d.Addr().As16()
		b = append(append(b, s16[:]...), d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, s.Port())
	return binary.BigEndian.AppendUint16(b, d.Port())
}

// tcpAddrPort is a's address and port, IPv4-mapped addresses unmapped.
func tcpAddrPort(a net.Addr) (netip.AddrPort, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta == nil {
		return netip.AddrPort{}, false
	}
	ap := ta.AddrPort()
	if !ap.Addr().IsValid() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port()), true
}
