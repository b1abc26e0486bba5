package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/httpcodec/h2"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/tlsio"
)

// validate checks every value and derives the parsed forms (routes, CA
// pools, client certificates, trusted prefixes). It reports every problem,
// one error each, not only the first; it opens no socket and creates no
// file.
func (c *config) validate(level string) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if err := checkListenAddr(c.listen); err != nil {
		bad("-listen %q: %v", c.listen, err)
	}
	if c.admin != "" {
		if err := checkListenAddr(c.admin); err != nil {
			bad("-admin %q: %v", c.admin, err)
		}
	}
	if c.listenPlain != "" {
		if err := checkListenAddr(c.listenPlain); err != nil {
			bad("-listen-plain %q: %v", c.listenPlain, err)
		}
	}
	if err := checkAddrClash(c); err != nil {
		errs = append(errs, err)
	}
	badUp := map[string]bool{}
	for _, u := range c.upstreams {
		if _, err := upstreamAddr(u); err != nil {
			bad("-upstream %q: %v", u, err)
			badUp[u] = true
		}
	}
	if c.loops < 1 || c.loops > 256 {
		bad("-loops %d: must be 1..256", c.loops)
	}
	if c.maxHS < 1 {
		bad("-max-handshakes %d: must be positive", c.maxHS)
	}
	if c.tlsEngine != tlsio.EngineNative && c.tlsEngine != tlsio.EngineStdlib {
		bad("-tls-engine %q: must be native or stdlib", c.tlsEngine)
	}
	if c.tlsKeyUpdate == 0 || c.tlsKeyUpdate < -1 || (c.tlsKeyUpdate > 0 && c.tlsKeyUpdate < 1<<14) {
		bad("-tls-key-update-bytes %d: must be -1 (never) or at least 16384", c.tlsKeyUpdate)
	}
	if c.maxConns < 1 {
		bad("-max-conns %d: must be positive", c.maxConns)
	}
	switch c.mode {
	case "tcp":
		if len(c.routeArgs) > 0 || len(c.fileRoutes) > 0 {
			bad("-route: only in -mode http")
		}
		if c.listenPlain != "" {
			bad("-listen-plain: only in -mode http")
		}
		switch c.upProxyProto {
		case "":
		case "v1":
			c.upProxyV = 1
		case "v2":
			c.upProxyV = 2
		default:
			bad("-upstream-proxy-protocol %q: must be v1 or v2", c.upProxyProto)
		}
	case "http":
		if c.upProxyProto != "" {
			bad("-upstream-proxy-protocol: only in -mode tcp (a pooled HTTP upstream connection carries many clients)")
		}
		for _, r := range c.routeArgs {
			rt, err := proxy.ParseRoute(r)
			if err != nil {
				bad("-route: %v", err)
				continue
			}
			c.routes = append(c.routes, rt)
		}
		c.routes = append(c.routes, c.fileRoutes...)
		if len(c.upstreams) > 0 {
			// The catch-all route the -upstream list stands for: errors
			// name the upstream, not a route the user never wrote.
			rt := proxy.Route{PathPrefix: "/"}
			seen := map[string]bool{}
			for _, u := range c.upstreams {
				if badUp[u] {
					continue // said above
				}
				key, err := proxy.ParseUpstream(u)
				if err != nil {
					bad("-upstream %q: %v", u, upstreamReason(err))
					continue
				}
				if seen[key] {
					bad("-upstream %q: given twice", u)
					continue
				}
				seen[key] = true
				rt.Upstreams = append(rt.Upstreams, key)
			}
			if len(rt.Upstreams) > 0 {
				c.routes = append(c.routes, rt)
			}
		}
	default:
		bad("-mode %q: must be http or tcp", c.mode)
	}
	switch c.balance {
	case "round_robin", "least_conn", "p2c":
	default:
		bad("-balance %q: must be round_robin, least_conn or p2c", c.balance)
	}
	if c.poolSize < 1 {
		bad("-pool-size %d: must be positive", c.poolSize)
	}
	if c.upMaxConns < 0 {
		bad("-upstream-max-conns %d: must be 0 (no cap) or more", c.upMaxConns)
	}
	if c.upMaxConns > 0 && c.upMaxConns < c.loops {
		// Each loop keeps its own HTTP/2 upstream connections: under the
		// loop count, some loops could never open one.
	h2:
		for _, r := range c.routes {
			for _, u := range r.Upstreams {
				if strings.HasPrefix(u, "h2c://") || strings.HasPrefix(u, "h2://") {
					bad("-upstream-max-conns %d: must be at least -loops (%d) with an HTTP/2 upstream (%s): each loop needs a connection of its own", c.upMaxConns, c.loops, u)
					break h2
				}
			}
		}
	}
	if c.upQueue < 0 {
		bad("-upstream-queue %d: must be 0 or more", c.upQueue)
	}
	if c.retries < 0 {
		bad("-retries %d: must be 0 or more", c.retries)
	}
	if c.maxFails < 0 {
		bad("-max-fails %d: must be 0 or more", c.maxFails)
	}
	if c.healthPath != "" && !validHealthPath(c.healthPath) {
		bad("-health-path %q: must start with / and hold no spaces or controls", c.healthPath)
	}
	if c.maxHead < 1024 {
		bad("-max-header-bytes %d: must be at least 1024", c.maxHead)
	}
	if c.maxFields < 1 {
		bad("-max-header-fields %d: must be positive", c.maxFields)
	}
	if c.maxLine < 256 {
		bad("-max-request-line %d: must be at least 256", c.maxLine)
	}
	if c.h2MaxStreams < 1 || c.h2MaxStreams > 1<<20 {
		bad("-h2-max-concurrent-streams %d: must be 1..1048576", c.h2MaxStreams)
	}
	if c.h2MaxHeaderList < 1024 || c.h2MaxHeaderList > 16<<20 {
		bad("-h2-max-header-list-size %d: must be 1024..16777216", c.h2MaxHeaderList)
	}
	if c.h2StreamWindow < 1<<14 || c.h2StreamWindow > h2.MaxWindowSize {
		bad("-h2-stream-window %d: must be 16384..2147483647", c.h2StreamWindow)
	}
	if c.h2ConnWindow < h2.DefaultWindowSize || c.h2ConnWindow > h2.MaxWindowSize {
		bad("-h2-conn-window %d: must be 65535..2147483647", c.h2ConnWindow)
	}
	if c.h2MaxBuffered < 64<<10 {
		bad("-h2-max-buffered %d: must be at least 65536", c.h2MaxBuffered)
	}
	if c.h2StallTimeout <= 0 || c.h2StallTimeout > c.writeTimeout {
		bad("-h2-stall-timeout %v: must be positive and at most -write-timeout (%v)", c.h2StallTimeout, c.writeTimeout)
	}
	if c.clientMaxUps < 1 {
		bad("-client-max-upstreams %d: must be positive", c.clientMaxUps)
	}
	if c.clientMaxStreams < 1 {
		bad("-client-max-upstream-streams %d: must be positive", c.clientMaxStreams)
	}
	if c.clientUpWait <= 0 {
		bad("-client-upstream-wait %v: must be positive", c.clientUpWait)
	}
	if c.bodyTimeout < 0 {
		bad("-body-timeout %v: must be 0 (off) or more", c.bodyTimeout)
	}
	if c.bodyGrace <= 0 {
		bad("-body-grace %v: must be positive", c.bodyGrace)
	}
	if c.bodyMinRate < 0 {
		bad("-body-min-rate %d: must be 0 (off) or more", c.bodyMinRate)
	}
	switch strings.ToLower(level) {
	case "debug":
		c.logLevel = slog.LevelDebug
	case "info":
		c.logLevel = slog.LevelInfo
	case "warn", "warning":
		c.logLevel = slog.LevelWarn
	case "error":
		c.logLevel = slog.LevelError
	default:
		bad("-log-level %q: must be debug, info, warn or error", level)
	}
	switch c.accessLog {
	case "true":
		c.accessLog = "stderr"
	case "false":
		c.accessLog = "off"
	case "stderr", "stdout", "off":
	default:
		if !strings.Contains(c.accessLog, "/") {
			bad("-access-log %q: must be stderr, stdout, off or a file path containing a / (e.g. ./access.log)", c.accessLog)
		} else if err := appendable(c.accessLog); err != nil {
			bad("-access-log %q: %v", c.accessLog, err)
		}
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		bad("-log-format %q: must be text or json", c.logFormat)
	}
	if len(c.certs) != len(c.keys) {
		bad("-cert and -key: %d certificates but %d keys; give them in pairs", len(c.certs), len(c.keys))
	} else {
		for i, f := range c.certs {
			// One line per pair: a missing key beside a missing cert is
			// the same mistake.
			if err := readable(f); err != nil {
				bad("-cert %q: %v", f, err)
			} else if err := readable(c.keys[i]); err != nil {
				bad("-key %q: %v", c.keys[i], err)
			}
		}
	}
	if c.upCAFile != "" {
		if pool, err := readCAs(c.upCAFile); err != nil {
			bad("-upstream-ca %q: %v", c.upCAFile, err)
		} else {
			c.upCAs = pool
		}
	}
	if (c.upCertFile == "") != (c.upKeyFile == "") {
		bad("-upstream-client-cert and -upstream-client-key: give both or neither")
	} else if c.upCertFile != "" {
		cb, err := os.ReadFile(c.upCertFile)
		if err != nil {
			bad("-upstream-client-cert %q: %v", c.upCertFile, errors.Unwrap(err))
		}
		kb, kerr := os.ReadFile(c.upKeyFile)
		if kerr != nil {
			bad("-upstream-client-key %q: %v", c.upKeyFile, errors.Unwrap(kerr))
		}
		if err == nil && kerr == nil {
			if c.upCert, err = tlsio.ParseKeyPair(cb, kb); err != nil {
				bad("-upstream-client-cert %q / -upstream-client-key %q: %v", c.upCertFile, c.upKeyFile, err)
			}
		}
	}
	for _, s := range strings.Split(c.trustedArg, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, err2 := netip.ParseAddr(s)
			if err2 != nil {
				bad("-trusted-proxies %q: %q is not a CIDR (10.0.0.0/8) or an address", c.trustedArg, s)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		c.trusted = append(c.trusted, p.Masked())
	}
	if c.upServerName != "" && strings.ContainsAny(c.upServerName, " /:") {
		bad("-upstream-server-name %q: must be a host name or an IP address", c.upServerName)
	}
	errs = append(errs, c.buildUpstreamTLS()...)
	if c.drainDelay < 0 {
		bad("-drain-delay %v: must not be negative", c.drainDelay)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"-handshake-timeout", c.handshakeTimeout}, {"-first-byte-timeout", c.firstByteTimeout}, {"-header-timeout", c.headerTimeout},
		{"-idle-timeout", c.idleTimeout}, {"-write-timeout", c.writeTimeout},
		{"-linger-timeout", c.lingerTimeout}, {"-drain-timeout", c.drainTimeout},
		{"-dial-timeout", c.dialTimeout}, {"-upstream-timeout", c.upTimeout},
		{"-pool-idle-timeout", c.poolIdle}, {"-upstream-queue-timeout", c.upQueueWait},
	} {
		if d.v <= 0 {
			bad("%s %v: must be positive", d.name, d.v)
		}
	}
	return errors.Join(errs...)
}

// validHealthPath: what proxy.HTTPConfig.HealthPath takes, said here
// with the flag's name.
func validHealthPath(p string) bool {
	if p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] >= 0x7f {
			return false
		}
	}
	return true
}

// readCAs reads a PEM file of CA certificates.
func readCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, errors.Unwrap(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no PEM certificate in it")
	}
	return pool, nil
}

// appendable reports whether the access log at path could be opened for
// appending, without creating it: an existing file must be writable, a
// missing one needs a writable directory.
func appendable(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return errors.New("is a directory")
	case err == nil:
		if err := unix.Access(path, unix.W_OK); err != nil {
			return err
		}
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return errors.Unwrap(err)
	}
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	if err != nil {
		return errors.Unwrap(err)
	}
	if !di.IsDir() {
		return fmt.Errorf("%s: not a directory", dir)
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("%s: %v", dir, err)
	}
	return nil
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return errors.Unwrap(err) // the *PathError already names the file
	}
	return f.Close()
}

// upstreamAddr returns host:port for an upstream URL (http, https, h2c,
// tcp) or a bare host:port.
func upstreamAddr(s string) (string, error) {
	if !strings.Contains(s, "://") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return "", err
		}
		return s, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	if u.Host == "" {
		return "", errors.New("no host")
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return "", errors.New("only scheme, host and port are allowed (sluice forwards the client's path as is)")
	}
	port := u.Port()
	switch u.Scheme {
	case "http", "h2c":
		if port == "" {
			port = "80"
		}
	case "https", "h2":
		if port == "" {
			port = "443"
		}
	case "tcp":
		if port == "" {
			return "", errors.New("tcp upstream needs a port")
		}
	default:
		return "", fmt.Errorf("scheme %q: want http, https, h2c, h2 or tcp", u.Scheme)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("bad port %q", port)
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// checkListenAddr accepts host:port with a numeric port (host may be
// empty: every address). Anything else, a unix socket path included, is
// refused before a socket is opened.
func checkListenAddr(a string) error {
	if strings.HasPrefix(a, "unix:") || strings.HasPrefix(a, "/") {
		return errors.New("unix sockets are not supported; want host:port, e.g. 127.0.0.1:8443 or :8443")
	}
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("want host:port, e.g. 127.0.0.1:8443 or :8443 (%v)", errors.Unwrap(err))
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q: want a number 0..65535", port)
	}
	return nil
}

// checkAddrClash refuses two listeners on one address: with SO_REUSEPORT
// the kernel would let both bind and share the connections between them.
// A wildcard host clashes with every host on its port; port 0 (any free
// port) never clashes.
func checkAddrClash(c *config) error {
	type named struct{ flag, addr string }
	var as []named
	for _, a := range []named{{"-listen", c.listen}, {"-listen-plain", c.listenPlain}, {"-admin", c.admin}} {
		if a.addr != "" {
			as = append(as, a)
		}
	}
	for i := range as {
		for j := i + 1; j < len(as); j++ {
			if sameAddr(as[i].addr, as[j].addr) {
				return fmt.Errorf("%s %q and %s %q: the same address; give each listener its own port", as[i].flag, as[i].addr, as[j].flag, as[j].addr)
			}
		}
	}
	return nil
}

func sameAddr(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	na, _ := strconv.Atoi(pa)
	nb, _ := strconv.Atoi(pb)
	if na == 0 || na != nb {
		return false
	}
	wild := func(h string) bool {
		ip := net.ParseIP(h)
		return h == "" || ip != nil && ip.IsUnspecified()
	}
	if wild(ha) || wild(hb) {
		return true
	}
	if ia, ib := net.ParseIP(ha), net.ParseIP(hb); ia != nil && ib != nil {
		return ia.Equal(ib)
	}
	return strings.EqualFold(ha, hb)
}

// upstreamReason drops ParseUpstream's own quoting of the URL, which the
// caller's message already names.
func upstreamReason(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "upstream \"") {
		if i := strings.Index(msg, "\": "); i >= 0 {
			return msg[i+3:]
		}
	}
	return msg
}
