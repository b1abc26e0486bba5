package h1

import (
	"bytes"
	"net/netip"
)

// TargetForm is the form of a request-target (RFC 9112 §3.2).
type TargetForm uint8

// Request-target forms.
const (
	OriginForm    TargetForm = iota // "/path?query"
	AbsoluteForm                    // "http://host:port/path?query"
	AuthorityForm                   // "host:port", CONNECT only
	AsteriskForm                    // "*", OPTIONS only
)

var targetFormNames = [...]string{"origin-form", "absolute-form", "authority-form", "asterisk-form"}

// String returns the RFC 9112 name of the form.
func (f TargetForm) String() string {
	if int(f) < len(targetFormNames) {
		return targetFormNames[f]
	}
	return "unknown-form"
}

// parseTarget classifies and validates a request-target. authority is the
// host[:port] part of an absolute-form or authority-form target.
func parseTarget(method, t []byte) (form TargetForm, authority []byte, err *Error) {
	if len(t) == 0 {
		return 0, nil, ErrBadTarget
	}
	if string(method) == "CONNECT" {
		// RFC 9112 §3.2.3: "The authority-form of request-target is only
		// used for CONNECT requests" and RFC 9110 §9.3.6: "a client MUST
		// send the port number".
		if !validAuthority(t, true) {
			return 0, nil, ErrBadTarget
		}
		return AuthorityForm, t, nil
	}
	switch t[0] {
	case '/':
		if !validPathQuery(t) {
			return 0, nil, ErrBadTarget
		}
		return OriginForm, nil, nil
	case '*':
		// RFC 9112 §3.2.4: "The asterisk-form of request-target is only used
		// for a server-wide OPTIONS request".
		if len(t) != 1 || string(method) != "OPTIONS" {
			return 0, nil, ErrBadTarget
		}
		return AsteriskForm, nil, nil
	}
	// absolute-form: only the http and https schemes mean anything to a
	// reverse proxy, and both require a non-empty authority.
	var rest []byte
	switch {
	case len(t) > 7 && equalFold(t[:7], "http://"):
		rest = t[7:]
	case len(t) > 8 && equalFold(t[:8], "https://"):
		rest = t[8:]
	default:
		return 0, nil, ErrBadTarget
	}
	end := len(rest)
	for i, c := range rest {
		if c == '/' || c == '?' {
			end = i
			break
		}
	}
	authority = rest[:end]
	if !validAuthority(authority, false) || !validPathQuery(rest[end:]) {
		return 0, nil, ErrBadTarget
	}
	return AbsoluteForm, authority, nil
}

// validPathQuery checks path-abempty [ "?" query ] byte by byte; every "%"
// must start a pct-encoded triplet.
func validPathQuery(p []byte) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if class[c]&cTarget == 0 {
			return false
		}
		if c == '%' {
			if i+2 >= len(p) || class[p[i+1]]&cHex == 0 || class[p[i+2]]&cHex == 0 {
				return false
			}
			i += 2
		}
	}
	return true
}

// validAuthority checks uri-host [ ":" port ] (RFC 3986 §3.2.2, 3.2.3) with
// no userinfo, no pct-encoding in reg-name, and IPv6 literals only (no
// IPvFuture, no zone). A port, when present, is 1–5 digits up to 65535.
func validAuthority(a []byte, requirePort bool) bool {
	if len(a) == 0 {
		return false
	}
	var port []byte
	hasPort := false
	if a[0] == '[' {
		j := bytes.IndexByte(a, ']')
		if j < 0 || !validIPv6(a[1:j]) {
			return false
		}
		rest := a[j+1:]
		if len(rest) > 0 {
			if rest[0] != ':' {
				return false
			}
			port, hasPort = rest[1:], true
		}
	} else {
		host := a
		if j := bytes.LastIndexByte(a, ':'); j >= 0 {
			host, port, hasPort = a[:j], a[j+1:], true
		}
		if len(host) == 0 {
			return false
		}
		for _, c := range host {
			if class[c]&cRegName == 0 {
				return false
			}
		}
	}
	if !hasPort {
		return !requirePort
	}
	if len(port) == 0 || len(port) > 5 {
		return false
	}
	n := 0
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

func validIPv6(b []byte) bool {
	colons := 0
	for _, c := range b {
		switch {
		case c == ':':
			colons++
		case c == '.' || class[c]&cHex != 0:
		default:
			return false
		}
	}
	if colons < 2 {
		return false
	}
	// Rare path (IPv6 literal hosts): the conversion may allocate.
	ip, err := netip.ParseAddr(string(b))
	return err == nil && ip.Is6() && ip.Zone() == ""
}
