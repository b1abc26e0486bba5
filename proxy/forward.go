package proxy

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"net/netip"

	"github.com/sluice-proxy/sluice/engine"
)

// Forwarding headers (the policy is package header's, Request and forward):
// whether a client's X-Forwarded-For/-Proto/-Host and Forwarded are
// believed depends on its address only, decided once per connection; the
// address is the TCP peer's, or the one a PROXY protocol header named.

// trustedAddr reports whether ip (as remoteIP gives it) is in one of ps.
func trustedAddr(ps []netip.Prefix, ip string) bool {
	if len(ps) == 0 || ip == "" {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// reqIDPrefix makes request ids of different processes differ; the rest
// of an id is the loop's index and a per-loop counter, so generating one
// takes no lock and shares no cache line between loops.
var reqIDPrefix = func() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}()

// appendRequestID appends a new id, 24 hex digits: process prefix (8),
// loop (4), sequence (12). Loop-owned (ls.reqSeq).
func (ls *loopState) appendRequestID(dst []byte) []byte {
	ls.reqSeq++
	v := [3]uint64{uint64(reqIDPrefix), uint64(ls.l.Index()), ls.reqSeq}
	for i, w := range [3]int{8, 4, 12} {
		for s := (w - 1) * 4; s >= 0; s -= 4 {
			dst = append(dst, hexDigits[v[i]>>uint(s)&0xf])
		}
	}
	return dst
}

// validRequestID: a client's X-Request-Id is kept when it is 1 to 128
// visible ASCII characters (it goes into logs and upstream heads as is).
func validRequestID[T ~string | ~[]byte](v T) bool {
	if len(v) == 0 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] >= 0x7f || v[i] == '"' || v[i] == '\\' {
			return false
		}
	}
	return true
}

// tlsLogInfo is a TLS client connection's version and ALPN protocol, as
// the access log writes them, taken once when the connection opens.
func tlsLogInfo(c *engine.Conn) (version, alpn string) {
	in, ok := c.TLSInfo()
	if !ok {
		return "", ""
	}
	return tls.VersionName(in.Version), in.ALPN
}
