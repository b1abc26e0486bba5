package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// errUnimplemented marks a runner flag (or flag value) the shim cannot
// honour; main exits with status 89 so the runner counts the test as
// unimplemented rather than failed.
var errUnimplemented = errors.New("unimplemented")

// Connection scopes of BoringSSL's prefixed flags: -on-initial-X applies
// to the first connection only, -on-resume-X to the resumptions.
const (
	scopeAll = iota
	scopeInitial
	scopeResume
)

// expectations are the checks made on one connection after its handshake.
type expectations struct {
	version     int    // -expect-version
	curve       int    // -expect-curve-id
	alpn        string // -expect-alpn
	serverName  string // -expect-server-name
	sessionMiss bool   // -expect-session-miss
}

// options is what the runner's flags ask of the shim.
type options struct {
	port, shimID               string
	ipv6, server               bool
	handshakerQuery            bool
	certFile, keyFile          string
	minVersion, maxVersion     int
	noTLS1, noTLS11            bool
	noTLS12, noTLS13           bool
	resumeCount                int
	shimWritesFirst, shutsDown bool
	noTicket                   bool
	selectALPN                 string
	declineALPN                bool
	initial, resume            expectations
	engine                     string
}

// parseFlags reads the runner's command line: "-name" or "-name value"
// pairs. Any flag not listed here, and any config flag given only for some
// connections, is errUnimplemented: the shim must never silently ignore
// what a test asks for.
func parseFlags(args []string) (*options, error) {
	o := &options{minVersion: 0x0301, maxVersion: 0x0304, engine: "native"}
	for i := 0; i < len(args); i++ {
		name, ok := strings.CutPrefix(args[i], "-")
		if !ok {
			return nil, fmt.Errorf("unexpected argument %q", args[i])
		}
		scope := scopeAll
		if rest, ok := strings.CutPrefix(name, "on-initial-"); ok {
			name, scope = rest, scopeInitial
		} else if rest, ok := strings.CutPrefix(name, "on-resume-"); ok {
			name, scope = rest, scopeResume
		} else if strings.HasPrefix(name, "on-retry-") {
			return nil, fmt.Errorf("%w: %s", errUnimplemented, args[i])
		}
		value := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("flag -%s needs a value", name)
			}
			i++
			return args[i], nil
		}
		intValue := func() (int, error) {
			v, err := value()
			if err != nil {
				return 0, err
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return 0, fmt.Errorf("flag -%s: %v", name, err)
			}
			return n, nil
		}
		// Checks may be scoped; everything else configures the one Server
		// shared by all connections (resumption needs it), so it may not.
		var exps []*expectations
		switch scope {
		case scopeAll:
			exps = []*expectations{&o.initial, &o.resume}
		case scopeInitial:
			exps = []*expectations{&o.initial}
		case scopeResume:
			exps = []*expectations{&o.resume}
		}
		isExpect := strings.HasPrefix(name, "expect-")
		if scope != scopeAll && !isExpect {
			return nil, fmt.Errorf("%w: per-connection config -%s", errUnimplemented, args[i][1:])
		}
		var err error
		switch name {
		case "port":
			o.port, err = value()
		case "shim-id":
			o.shimID, err = value()
		case "ipv6":
			o.ipv6 = true
		case "server":
			o.server = true
		case "is-handshaker-supported":
			o.handshakerQuery = true
		case "tls-engine":
			o.engine, err = value()
			if err == nil && o.engine != "native" && o.engine != "stdlib" {
				err = fmt.Errorf("flag -tls-engine: %q is not native or stdlib", o.engine)
			}
		case "cert-file":
			o.certFile, err = value()
		case "key-file":
			o.keyFile, err = value()
		case "min-version":
			o.minVersion, err = intValue()
		case "max-version":
			o.maxVersion, err = intValue()
		case "no-tls1":
			o.noTLS1 = true
		case "no-tls11":
			o.noTLS11 = true
		case "no-tls12":
			o.noTLS12 = true
		case "no-tls13":
			o.noTLS13 = true
		case "resume-count":
			o.resumeCount, err = intValue()
		case "shim-writes-first":
			o.shimWritesFirst = true
		case "shim-shuts-down":
			o.shutsDown = true
		case "no-ticket":
			o.noTicket = true
		case "select-alpn":
			o.selectALPN, err = value()
		case "decline-alpn":
			o.declineALPN = true
		case "expect-version":
			var n int
			n, err = intValue()
			for _, e := range exps {
				e.version = n
			}
		case "expect-curve-id":
			var n int
			n, err = intValue()
			for _, e := range exps {
				e.curve = n
			}
		case "expect-alpn":
			var v string
			v, err = value()
			for _, e := range exps {
				e.alpn = v
			}
		case "expect-server-name":
			var v string
			v, err = value()
			for _, e := range exps {
				e.serverName = v
			}
		case "expect-session-miss":
			for _, e := range exps {
				e.sessionMiss = true
			}
		default:
			return nil, fmt.Errorf("%w: -%s", errUnimplemented, name)
		}
		if err != nil {
			return nil, err
		}
	}
	if o.handshakerQuery {
		return o, nil
	}
	if !o.server {
		return nil, fmt.Errorf("%w: client role", errUnimplemented)
	}
	if o.port == "" {
		return nil, errors.New("flag -port is required")
	}
	if o.certFile == "" || o.keyFile == "" {
		return nil, fmt.Errorf("%w: server without -cert-file and -key-file", errUnimplemented)
	}
	return o, nil
}

// versions turns the runner's version flags into the range sluice can
// serve: TLS 1.2 and 1.3 only. A range with neither is errUnimplemented.
func (o *options) versions() (uint16, uint16, error) {
	lo, hi := o.minVersion, o.maxVersion
	off := map[int]bool{0x0301: o.noTLS1, 0x0302: o.noTLS11, 0x0303: o.noTLS12, 0x0304: o.noTLS13}
	for lo <= hi && off[lo] {
		lo++
	}
	for hi >= lo && off[hi] {
		hi--
	}
	for v := lo; v <= hi; v++ {
		if off[v] {
			// A hole in the range (crypto/tls takes a range only).
			return 0, 0, fmt.Errorf("%w: disabled version inside the range", errUnimplemented)
		}
	}
	lo = max(lo, 0x0303)
	hi = min(hi, 0x0304)
	if lo > hi {
		return 0, 0, fmt.Errorf("%w: no version sluice serves (TLS 1.2, 1.3)", errUnimplemented)
	}
	return uint16(lo), uint16(hi), nil
}
