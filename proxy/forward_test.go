package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// Forwarding headers by trust, for every protocol pair (client HTTP/1.1
// or HTTP/2, upstream HTTP/1.1 or h2c): a trusted proxy's
// X-Forwarded-For is appended to and its X-Forwarded-Proto, -Host and
// Forwarded pass; anyone else's are replaced or dropped. X-Request-Id is
// the client's when usable, else generated, and never duplicated.
func TestForwardingHeadersByTrust(t *testing.T) {
	h1Up := hpServe(t, http.HandlerFunc(headerEcho))
	// Request fields only: headerEcho's hop-by-hop response fields are
	// for the HTTP/1.1 tests.
	h2Up := h2cServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(r.Header) }))
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	other := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	sent := map[string]string{
		"X-Forwarded-For":   "203.0.113.7, 198.51.100.1",
		"X-Forwarded-Proto": "https",
		"X-Forwarded-Host":  "public.example",
		"Forwarded":         "for=203.0.113.7;proto=https",
	}
	type want struct{ xff, proto, host, fwd string }
	trusted := want{"203.0.113.7, 198.51.100.1, 127.0.0.1", "https", "public.example", "for=203.0.113.7;proto=https"}
	untrusted := want{"127.0.0.1", "http", "app.test", ""}
	cases := []struct {
		name    string
		trust   []netip.Prefix
		headers map[string]string
		reqID   string // sent; "" none
		want    want
		keepID  bool
	}{
		{"untrusted by default", nil, sent, "", untrusted, false},
		{"untrusted: not in the list", other, sent, "abc-123", untrusted, true},
		{"trusted", loopback, sent, "abc-123", trusted, true},
		{"trusted, nothing sent", loopback, nil, "", want{"127.0.0.1", "http", "app.test", ""}, false},
		{"unusable request id replaced", nil, nil, strings.Repeat("x", 129), untrusted, false},
	}
	for _, up := range []struct{ name, url string }{{"h1 upstream", h1Up.addr()}, {"h2c upstream", h2Up.url()}} {
		for _, tc := range cases {
			env := h2Start(t, HTTPConfig{TrustedProxies: tc.trust}, up.url)
			for _, client := range []struct {
				name string
				cl   *http.Client
			}{{"HTTP/1.1", &http.Client{}}, {"h2c", h2cClient()}} {
				name := up.name + "/" + tc.name + "/" + client.name
				req, _ := http.NewRequest("GET", env.h2cURL("/x"), nil)
				req.Host = "app.test"
				for k, v := range tc.headers {
					req.Header.Set(k, v)
				}
				if tc.reqID != "" {
					req.Header.Set("X-Request-Id", tc.reqID)
				}
				resp, err := client.cl.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				var got map[string][]string
				err = json.NewDecoder(resp.Body).Decode(&got)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				one := func(k string) string { return strings.Join(got[k], "|") }
				if g := (want{one("X-Forwarded-For"), one("X-Forwarded-Proto"), one("X-Forwarded-Host"), one("Forwarded")}); g != tc.want {
					t.Errorf("%s: upstream saw %+v, want %+v", name, g, tc.want)
				}
				ids := got["X-Request-Id"]
				switch {
				case len(ids) != 1:
					t.Errorf("%s: X-Request-Id %q, want one", name, ids)
				case tc.keepID && ids[0] != tc.reqID:
					t.Errorf("%s: X-Request-Id %q, want the client's %q", name, ids[0], tc.reqID)
				case !tc.keepID && (len(ids[0]) != 24 || strings.Trim(ids[0], "0123456789abcdef") != ""):
					t.Errorf("%s: generated X-Request-Id %q, want 24 hex digits", name, ids[0])
				}
			}
		}
	}
}

// Generated request ids differ, request after request and loop after loop.
func TestRequestIDsUnique(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(r.Header.Get("X-Request-Id"))) }))
	env := hpStart(t, HTTPConfig{}, be.addr())
	seen := map[string]bool{}
	for i := range 50 {
		cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: i%2 == 0}}
		resp, err := cl.Get(env.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		buf := make([]byte, 64)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		resp.Body.Close()
		if seen[b.String()] || b.Len() != 24 {
			t.Fatalf("request %d: id %q repeated or malformed", i, b.String())
		}
		seen[b.String()] = true
	}
}

// A route's HostHeader is the Host (or :authority) every upstream of the
// route gets, for every protocol pair, retries included; X-Forwarded-Host
// still names what the client asked for.
func TestRouteHostHeader(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"host": r.Host, "xfh": r.Header.Get("X-Forwarded-Host")})
	})
	h1Up, h2Up := hpServe(t, echo), h2cServe(t, echo)
	for _, up := range []string{h1Up.addr(), h2Up.url()} {
		r, err := ParseRoute("saas:/=" + up)
		if err != nil {
			t.Fatal(err)
		}
		r.HostHeader = "api.saas.example"
		env := h2Start(t, HTTPConfig{Routes: []Route{r}, RewriteHost: true})
		for _, cl := range []*http.Client{{}, h2cClient()} {
			req, _ := http.NewRequest("GET", env.h2cURL("/v1"), nil)
			req.Host = "app.test"
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]string
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got["host"] != "api.saas.example" || got["xfh"] != "app.test" {
				t.Errorf("%s via %s: upstream saw Host %q, X-Forwarded-Host %q", up, resp.Proto, got["host"], got["xfh"])
			}
		}
	}
}

// A route's HostHeader goes into upstream heads as is, so route building
// refuses what is no host[:port] (a CR LF would inject a field), at start
// and on reload alike; the CLI is not the only way in.
func TestRouteHostHeaderValidated(t *testing.T) {
	route := func(hh string) []Route {
		return []Route{{PathPrefix: "/", Upstreams: []string{"127.0.0.1:1"}, HostHeader: hh}}
	}
	bad := []string{"a b", "api.test\r\nX-Injected: 1", "api.test/path", "api.test\x00", strings.Repeat("a", 256)}
	for _, hh := range bad {
		if _, err := NewHTTP(HTTPConfig{Routes: route(hh)}, nil); err == nil || !strings.Contains(err.Error(), "host header") {
			t.Errorf("NewHTTP with HostHeader %q: %v, want a host header error", hh, err)
		}
	}
	h, err := NewHTTP(HTTPConfig{Routes: route("api.saas.example:8443")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.SetRoutes(route(bad[1])); err == nil {
		t.Error("SetRoutes accepted a HostHeader with CR LF")
	}
	if err := h.SetRoutes(route("[::1]:80")); err != nil {
		t.Errorf("SetRoutes refused an IPv6 literal host: %v", err)
	}
}

// A route's own UpstreamTimeout and Retries replace the proxy-wide ones
// for its requests only.
func TestRouteTimeoutAndRetries(t *testing.T) {
	slow := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(700 * time.Millisecond)
		w.Write([]byte("late"))
	}))
	live := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	// Nothing listens there: a failed dial, which any method may retry.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	route := func(s string) Route {
		r, err := ParseRoute(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	quick := route("quick:/quick/=" + slow.addr())
	quick.UpstreamTimeout = 150 * time.Millisecond
	patient := route("patient:/patient/=" + slow.addr())
	noRetry := route("noretry:/noretry/=" + dead + "," + live.addr())
	noRetry.Retries = -1
	retry := route("retry:/retry/=" + dead + "," + live.addr())
	env := hpStart(t, HTTPConfig{Routes: []Route{quick, patient, noRetry, retry}, ResponseHeaderTimeout: 5 * time.Second, MaxFails: -1})
	cl := &http.Client{Timeout: 10 * time.Second}
	status := func(path string) int {
		resp, err := cl.Get(env.url(path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	start := time.Now()
	if c := status("/quick/x"); c != 504 || time.Since(start) > 600*time.Millisecond {
		t.Errorf("route with a 150ms upstream timeout: %d after %v, want 504 well before the upstream answers", c, time.Since(start))
	}
	if c := status("/patient/x"); c != 200 {
		t.Errorf("route with the proxy's 5s timeout: %d, want 200", c)
	}
	fails := map[string]int{}
	for range 8 {
		for _, p := range []string{"/noretry/x", "/retry/x"} {
			if status(p) != 200 {
				fails[p]++
			}
		}
	}
	if fails["/retry/x"] != 0 || fails["/noretry/x"] == 0 {
		t.Errorf("failed requests %v: want none with retries and some with retries off", fails)
	}
}

// selfSignedTLS is a certificate of its own for 127.0.0.1 and the pool
// that trusts it alone.
func selfSignedTLS(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	kp := testutil.SelfSigned(t)
	return testutil.StdCert(t, kp), testutil.CertPool(kp)
}

// Each https upstream verified against its own CA (UpstreamTLSFor), the
// others against the global one: a certificate trusted for one upstream
// is refused for another.
func TestUpstreamTLSPerUpstream(t *testing.T) {
	start := func(cert tls.Certificate) string {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("sealed")) }))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return "https://" + srv.Listener.Addr().String()
	}
	certA, poolA := selfSignedTLS(t)
	certB, poolB := selfSignedTLS(t)
	a, b := start(certA), start(certB)
	keyA, _ := ParseUpstream(a)
	ra, _ := ParseRoute("a:/a/=" + a)
	rb, _ := ParseRoute("b:/b/=" + b)
	env := hpStart(t, HTTPConfig{Routes: []Route{ra, rb}, MaxFails: -1, Retries: -1,
		UpstreamTLS:    UpstreamTLS{RootCAs: poolB},
		UpstreamTLSFor: map[string]UpstreamTLS{keyA: {RootCAs: poolA}}})
	for path, want := range map[string]int{"/a/": 200, "/b/": 200} {
		resp, err := http.Get(env.url(path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// Swapped: each upstream's certificate is now verified by the other's CA.
	env2 := hpStart(t, HTTPConfig{Routes: []Route{ra, rb}, MaxFails: -1, Retries: -1,
		UpstreamTLS:    UpstreamTLS{RootCAs: poolA},
		UpstreamTLSFor: map[string]UpstreamTLS{keyA: {RootCAs: poolB}}})
	for _, path := range []string{"/a/", "/b/"} {
		resp, err := http.Get(env2.url(path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 502 {
			t.Errorf("%s with the wrong CA: %d, want 502", path, resp.StatusCode)
		}
	}
}

// Weights share a route's requests in proportion under round_robin.
func TestRouteWeights(t *testing.T) {
	var hits [2]atomic.Int64
	be := func(i int) *hpBackend {
		return hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits[i].Add(1) }))
	}
	a, b := be(0), be(1)
	r, err := ParseRoute("/=" + a.addr() + "," + b.addr())
	if err != nil {
		t.Fatal(err)
	}
	r.Weights = []int{3, 1}
	env := hpStart(t, HTTPConfig{Routes: []Route{r}})
	cl := &http.Client{Timeout: 5 * time.Second}
	for range 80 {
		resp, err := cl.Get(env.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if x, y := hits[0].Load(), hits[1].Load(); x != 60 || y != 20 {
		t.Errorf("weights 3:1 over 80 requests: %d and %d, want 60 and 20", x, y)
	}
	r.Weights = []int{1}
	if _, err := NewHTTP(HTTPConfig{Routes: []Route{r}}, nil); err == nil {
		t.Error("one weight for two upstreams was accepted")
	}
}
