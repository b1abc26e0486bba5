package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/proxy/upstream"
)

// Route sends the requests whose host and path match it to a set of
// upstreams.
//
// Matching rules, in order:
//
//  1. The request's host is the authority of an absolute-form target if
//     there is one, else the Host field; it is compared without its port and
//     without a trailing dot, ignoring ASCII case.
//  2. Routes whose Host equals it are tried first; if none of them matches
//     the path, the routes with an empty Host (any host) are tried.
//  3. Among those, the route with the longest PathPrefix that is a prefix of
//     the request path (the target up to "?") wins. The comparison is byte
//     for byte, case-sensitive, on the path as sent (no percent-decoding,
//     no dot-segment removal), like nginx's prefix locations: "/api" matches
//     "/api", "/api/x" and "/apix"; write "/api/" to match only below it.
//  4. No match: 404.
type Route struct {
	// Name labels the route's metrics (sluice_http_requests_total and
	// sluice_http_request_duration_seconds{route}) and access log lines;
	// empty: Host+PathPrefix, e.g. "/" or "example.com/api".
	Name string
	// Host is a lower-case host name or IP literal without port; empty
	// matches any host.
	Host string
	// PathPrefix starts with "/".
	PathPrefix string
	// Upstreams are the origins, in the order given: host:port for an
	// HTTP/1.1 upstream, h2c://host:port for one spoken to in HTTP/2 over
	// cleartext (prior knowledge, RFC 9113 §3.3).
	Upstreams []string
	// HostHeader, when set, is the Host (HTTP/2: :authority) sent to this
	// route's upstreams instead of the client's, e.g. the name an https://
	// SaaS upstream serves. X-Forwarded-Host still carries the client's.
	HostHeader string
	// UpstreamTimeout, when set, replaces ResponseHeaderTimeout and
	// ReadTimeout for this route's requests (a slow report endpoint, a
	// stream that may pause for minutes).
	UpstreamTimeout time.Duration
	// Retries, when not 0, replaces HTTPConfig.Retries for this route;
	// negative disables retries.
	Retries int
	// Weights, when set, has one weight (1..100) per upstream, in order:
	// an upstream is a candidate that many times, so round_robin sends it
	// that share of the requests and p2c samples it that much more often.
	// least_conn still takes the least loaded, whatever the weights.
	Weights []int
}

// String formats the route the way ParseRoute reads it.
func (r Route) String() string {
	urls := make([]string, len(r.Upstreams))
	for i, u := range r.Upstreams {
		if strings.Contains(u, "://") {
			urls[i] = u
		} else {
			urls[i] = "http://" + u
		}
	}
	name := ""
	if r.Name != "" && r.Name != r.Host+r.PathPrefix {
		name = r.Name + ":"
	}
	return name + r.Host + r.PathPrefix + "=" + strings.Join(urls, ",")
}

// DisplayName is the route's name: Name, or Host+PathPrefix.
func (r Route) DisplayName() string {
	if r.Name != "" {
		return r.Name
	}
	return r.Host + r.PathPrefix
}

// ValidRouteName reports whether s may name a route: 1 to 64 letters,
// digits, '_', '-' or '.', starting with a letter or digit.
func ValidRouteName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '-' && c != '.') {
			return false
		}
	}
	return true
}

// ParseRoute parses the -route flag syntax:
//
//	[name:][host][/pathprefix]=URL[,URL...]
//
// The name (letters, digits, '_', '-', '.') labels the route's metrics;
// without one it is host/prefix. A host that is an IPv6 literal is never
// read as a name (write "[::1]/x=..." or "name:[::1]/x=...").
//
// for example "example.com/api=http://10.0.0.1:8080,http://10.0.0.2:8080",
// "/static=http://10.0.0.3" or "example.com=10.0.0.4:8080". An empty host
// matches any host; a missing path prefix is "/". Each URL is
// http://host[:port][/] (port 80 by default), a bare host:port, or
// h2c://host[:port][/] for an HTTP/2 cleartext upstream (gRPC); upstream
// TLS (https://) is not available yet. A lone -upstream URL list is the
// catch-all route "/=URL,...".
func ParseRoute(s string) (Route, error) {
	var r Route
	match, urls, ok := strings.Cut(s, "=")
	if !ok {
		return r, fmt.Errorf("route %q: want [host][/prefix]=URL[,URL...]", s)
	}
	if n, rest, ok := strings.Cut(match, ":"); ok && !strings.HasPrefix(match, "[") {
		h, _, _ := strings.Cut(match, "/")
		rh, _, _ := strings.Cut(rest, "/")
		switch {
		case net.ParseIP(h) != nil: // an IPv6 literal, no name
		case rh != "" && strings.Trim(rh, "0123456789") == "":
			return r, fmt.Errorf("route %q: bad host %q (a host name or IP literal, without port)", s, h)
		case !ValidRouteName(n):
			return r, fmt.Errorf("route %q: bad name %q (letters, digits, '_', '-' and '.')", s, n)
		default:
			r.Name, match = n, rest
		}
	}
	host, path := match, "/"
	if i := strings.IndexByte(match, '/'); i >= 0 {
		host, path = match[:i], match[i:]
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host != "" && !validRouteHost(host) {
		return r, fmt.Errorf("route %q: bad host %q (a host name or IP literal, without port)", s, host)
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil && ip.To4() == nil {
		host = "[" + strings.Trim(host, "[]") + "]" // as a Host field carries it
	}
	for i := 0; i < len(path); i++ {
		if c := path[i]; c <= ' ' || c >= 0x7f || c == '?' || c == '#' {
			return r, fmt.Errorf("route %q: bad character %q in path prefix", s, c)
		}
	}
	r.Host, r.PathPrefix = host, path
	if urls == "" {
		return r, fmt.Errorf("route %q: no upstream", s)
	}
	seen := map[string]bool{}
	for _, u := range strings.Split(urls, ",") {
		addr, err := ParseUpstream(strings.TrimSpace(u))
		if err != nil {
			return r, fmt.Errorf("route %q: %v", s, err)
		}
		if seen[addr] {
			return r, fmt.Errorf("route %q: upstream %s listed twice", s, addr)
		}
		seen[addr] = true
		r.Upstreams = append(r.Upstreams, addr)
	}
	return r, nil
}

// ParseUpstream turns an upstream URL (http://host[:port][/]) or a bare
// host:port into host:port, h2c://host[:port][/] into h2c://host:port, and
// https:// and h2:// likewise (port 443 by default). A TLS upstream may
// carry ?sni=NAME: the name sent as SNI and verified for it, whatever
// its host (an IP address, often).
func ParseUpstream(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty upstream")
	}
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return "", fmt.Errorf("upstream %q: %v", s, err)
		}
		return checkHostPort(s, host, port)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("upstream %q: %v", s, err)
	}
	switch u.Scheme {
	case "http", "h2c", "https", "h2":
	default:
		return "", fmt.Errorf("upstream %q: scheme must be http, https, h2c or h2", s)
	}
	tlsUp := u.Scheme == "https" || u.Scheme == "h2"
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" && !tlsUp || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("upstream %q: only scheme, host and port are allowed", s)
	}
	sni := ""
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil || len(q) != 1 || len(q["sni"]) != 1 || !validSNI(q.Get("sni")) {
			return "", fmt.Errorf("upstream %q: the only query allowed is sni=NAME, a host name", s)
		}
		sni = "?sni=" + strings.ToLower(q.Get("sni"))
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if tlsUp {
			port = "443"
		}
	}
	hp, err := checkHostPort(s, u.Hostname(), port)
	switch {
	case err != nil || u.Scheme == "http":
		return hp, err
	case u.Scheme == "https":
		return httpsPrefix + hp + sni, nil
	case u.Scheme == "h2":
		return h2Prefix + hp + sni, nil
	}
	return h2cPrefix + hp, nil
}

// validSNI: a DNS name as SNI carries it (RFC 6066 §3: no IP literals, no
// trailing dot), letters, digits, hyphens and dots.
func validSNI(s string) bool {
	if s == "" || len(s) > 253 || s[0] == '.' || s[len(s)-1] == '.' || net.ParseIP(s) != nil {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return !strings.Contains(s, "..")
}

// splitSNI separates a TLS upstream key's ?sni= from its host:port.
func splitSNI(key string) (hostport, sni string) {
	hostport, sni, _ = strings.Cut(key, "?sni=")
	return hostport, sni
}

// h2cPrefix, httpsPrefix and h2Prefix mark, in Route.Upstreams, an
// HTTP/2 cleartext upstream, an HTTP/1.1-over-TLS one and an
// HTTP/2-over-TLS one (ALPN h2).
const (
	h2cPrefix   = "h2c" + "://"
	httpsPrefix = "https" + "://"
	h2Prefix    = "h2" + "://"
)

func checkHostPort(s, host, port string) (string, error) {
	if host == "" {
		return "", fmt.Errorf("upstream %q: empty host", s)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("upstream %q: bad port %q", s, port)
	}
	return net.JoinHostPort(host, port), nil
}

func validRouteHost(h string) bool {
	if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
		return true
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// route is a Route bound to its upstreams and balancing policy.
type route struct {
	Route
	ups  []*Upstream
	name string // DisplayName, for the access log
	// Resolved once (HTTPConfig's unless the route sets its own):
	retries       int               // extra attempts allowed
	respHT, readT int64             // upstream head and read timeouts, engine-clock ns
	m             []*routeUpMetrics // by index in ups; the last: no upstream reached
	set           *upstream.Set     // ups with their weights and the selector
	hasH2C        bool              // some upstream is h2c: HTTP/1.1 requests keep an HTTP/2 form for it
	allH2         bool              // every upstream is h2c or h2: a stream costs a stream slot, not a connection
}

// router finds the route for a request. Built once, read-only afterwards,
// shared by every loop; a reload builds a new one (HTTP.SetRoutes).
type router struct {
	byHost  map[string][]*route // by Host, longest prefix first
	anyHost []*route            // Host "", longest prefix first
}

func newRouter(rs []*route) (*router, error) {
	rt := &router{byHost: map[string][]*route{}}
	seen := map[string]bool{}
	names := map[string]bool{}
	for _, r := range rs {
		key := r.Host + r.PathPrefix
		if seen[key] {
			return nil, fmt.Errorf("route %s: host %q and prefix %q are already routed", r.Route, r.Host, r.PathPrefix)
		}
		seen[key] = true
		if n := r.DisplayName(); names[n] {
			return nil, fmt.Errorf("route %s: name %q is already taken", r.Route, n)
		} else {
			names[n] = true
		}
		if r.Host == "" {
			rt.anyHost = append(rt.anyHost, r)
		} else {
			rt.byHost[r.Host] = append(rt.byHost[r.Host], r)
		}
	}
	byLen := func(s []*route) {
		sort.SliceStable(s, func(i, j int) bool { return len(s[i].PathPrefix) > len(s[j].PathPrefix) })
	}
	byLen(rt.anyHost)
	for _, s := range rt.byHost {
		byLen(s)
	}
	return rt, nil
}

// upstreams is the set of upstreams some route of rt names.
func (rt *router) upstreams() map[*Upstream]bool {
	m := map[*Upstream]bool{}
	for _, rs := range rt.byHost {
		for _, r := range rs {
			for _, u := range r.ups {
				m[u] = true
			}
		}
	}
	for _, r := range rt.anyHost {
		for _, u := range r.ups {
			m[u] = true
		}
	}
	return m
}

// match returns the route for host (as received: may carry a port and any
// case) and target (origin-form, or absolute-form already reduced to its
// path), or nil.
func (rt *router) match(host, target []byte) *route { return routeMatch(rt, host, target) }

// routeMatch is match for strings (HTTP/2 pseudo-header fields) or bytes.
func routeMatch[T ~string | ~[]byte](rt *router, host, target T) *route {
	path := target
	for i := 0; i < len(target); i++ {
		if target[i] == '?' {
			path = target[:i]
			break
		}
	}
	if len(rt.byHost) > 0 {
		var buf [256]byte
		if h, ok := normHost(buf[:0], host); ok && len(h) > 0 {
			if r := longest(rt.byHost[string(h)], path); r != nil {
				return r
			}
		}
	}
	return longest(rt.anyHost, path)
}

func longest[T ~string | ~[]byte](rs []*route, path T) *route {
	for _, r := range rs {
		p := r.PathPrefix
		if len(path) >= len(p) && string(path[:len(p)]) == p {
			return r
		}
	}
	return nil
}

// normHost lower-cases host and strips its port and a trailing dot, into
// dst. ok is false when it does not fit.
func normHost[T ~string | ~[]byte](dst []byte, host T) ([]byte, bool) {
	if len(host) > 0 && host[0] == '[' {
		end := -1
		for i := 0; i < len(host); i++ {
			if host[i] == ']' {
				end = i
				break
			}
		}
		if end < 0 {
			return dst, false
		}
		host = host[:end+1]
	} else {
		for i := len(host) - 1; i >= 0; i-- {
			if host[i] == ':' {
				host = host[:i]
				break
			}
		}
	}
	if n := len(host); n > 0 && host[n-1] == '.' {
		host = host[:n-1]
	}
	if len(host) > cap(dst)-len(dst) {
		return dst, false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst, true
}

// retries is how many more attempts the exchange's route allows (none
// before it is routed).
func (x *exchange) retries() int {
	if x.rt == nil {
		return 0
	}
	return x.rt.retries
}

// respHT and readT are the route's upstream head and read timeouts (the
// HTTPConfig ones before the exchange is routed).
func (x *exchange) respHT(h *HTTP) int64 {
	if x.rt == nil {
		return h.respHeaderTimeout
	}
	return x.rt.respHT
}

func (x *exchange) readT(h *HTTP) int64 {
	if x.rt == nil {
		return h.readTimeout
	}
	return x.rt.readT
}
