package proxy

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/tlsio"
)

// tlsBackend is a net/http server over crypto/tls (httptest's certificate:
// example.com and 127.0.0.1) that answers with what it saw of the request
// and its TLS session, and echoes the body. /close answers with
// Connection: close, so the next request needs a new connection.
type tlsBackend struct {
	srv   *httptest.Server
	conns atomic.Int64 // TCP connections accepted
	pool  *x509.CertPool
}

func newTLSBackend(t *testing.T) *tlsBackend {
	t.Helper()
	return startTLSBackend(t, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		w.Header().Set("X-Resumed", fmt.Sprint(r.TLS.DidResume))
		w.Header().Set("X-SNI", r.TLS.ServerName)
		w.Header().Set("X-Proto", r.TLS.NegotiatedProtocol)
		w.Header().Set("X-Host", r.Host)
		w.Write(body)
	}))
}

// startTLSBackend serves h over TLS, with ALPN h2 too when h2 is set.
func startTLSBackend(t *testing.T, h2 bool, h http.Handler) *tlsBackend {
	t.Helper()
	b := &tlsBackend{}
	b.srv = httptest.NewUnstartedServer(h)
	b.srv.EnableHTTP2 = h2
	b.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are the point of some tests
	b.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.srv.StartTLS()
	t.Cleanup(b.srv.Close)
	b.pool = x509.NewCertPool()
	b.pool.AddCert(b.srv.Certificate())
	return b
}

// url is the backend as an upstream URL, by IP address.
func (b *tlsBackend) url() string { return "https://" + b.srv.Listener.Addr().String() }

// postFromBoth POSTs body through env from an HTTP/1.1 client and an h2c
// one, checks each echo is whole, and returns the responses by client.
func postFromBoth(t *testing.T, env *h2Env, body string) map[string]*http.Response {
	t.Helper()
	out := map[string]*http.Response{}
	for name, u := range map[string]string{"h1": env.url("/"), "h2": env.h2cURL("/")} {
		cl := hpClient()
		if name == "h2" {
			cl = h2cClient()
		}
		resp, got := httpsDo(t, cl, "POST", u, body)
		if resp.StatusCode != 200 || got != body {
			t.Fatalf("%s POST: %d, %d bytes back of %d", name, resp.StatusCode, len(got), len(body))
		}
		out[name] = resp
	}
	return out
}

func httpsDo(t *testing.T, cl *http.Client, method, url, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// HTTP/1.1 and HTTP/2 clients reach an https upstream: the certificate is
// verified against the configured roots (by IP SAN, so no SNI is sent),
// ALPN says http/1.1, bodies go both ways whole, one connection serves a
// run of requests, and a new connection after a Connection: close
// resumes the session instead of a full handshake.
func TestHTTPSUpstream(t *testing.T) {
	be := newTLSBackend(t)
	env := h2Start(t, HTTPConfig{UpstreamTLS: UpstreamTLS{RootCAs: be.pool}}, be.url())
	for name, resp := range postFromBoth(t, env, strings.Repeat("sealed both ways ", 20000)) {
		if resp.Header.Get("X-Proto") != "http/1.1" || resp.Header.Get("X-SNI") != "" {
			t.Fatalf("%s: upstream saw ALPN %q and SNI %q, want http/1.1 and none (an IP address)", name,
				resp.Header.Get("X-Proto"), resp.Header.Get("X-SNI"))
		}
	}
	before := be.conns.Load()
	for i := 0; i < 10; i++ {
		if resp, _ := httpsDo(t, hpClient(), "GET", env.url("/"), ""); resp.StatusCode != 200 {
			t.Fatalf("GET %d: %d", i, resp.StatusCode)
		}
	}
	if n := be.conns.Load() - before; n > 2 { // one per loop at most
		t.Fatalf("10 sequential GETs took %d new upstream connections, want pooled ones", n)
	}
	// Connection: close, then a new connection: resumed.
	if resp, _ := httpsDo(t, hpClient(), "GET", env.url("/close"), ""); resp.StatusCode != 200 {
		t.Fatalf("GET /close: %d", resp.StatusCode)
	}
	resumed := false
	for i := 0; i < 4 && !resumed; i++ { // the pool of the other loop may still hold a connection
		resp, _ := httpsDo(t, hpClient(), "GET", env.url("/close"), "")
		resumed = resp.Header.Get("X-Resumed") == "true"
	}
	if !resumed {
		t.Fatal("no new upstream connection resumed its TLS session")
	}
	if v := env.metric(`sluice_upstream_tls_handshakes_total{result="ok"}`); v < 2 {
		t.Fatalf("upstream TLS handshakes ok = %v", v)
	}
	hpSettled(t, env.hpEnv)
}

// ServerName overrides the name sent as SNI and verified.
func TestHTTPSUpstreamServerName(t *testing.T) {
	be := newTLSBackend(t)
	env := hpStart(t, HTTPConfig{UpstreamTLS: UpstreamTLS{RootCAs: be.pool, ServerName: "example.com"}}, be.url())
	resp, _ := httpsDo(t, hpClient(), "GET", env.url("/"), "")
	if resp.StatusCode != 200 || resp.Header.Get("X-SNI") != "example.com" {
		t.Fatalf("%d, SNI %q", resp.StatusCode, resp.Header.Get("X-SNI"))
	}
	if h := resp.Header.Get("X-Host"); h != env.addr {
		t.Fatalf("upstream saw Host %q, want the client's %q", h, env.addr)
	}
	hpSettled(t, env)
}

// A certificate that does not verify (not signed by the configured roots,
// or not for the name asked) fails the attempt like a failed dial: 502
// with end upstream_tls_error when there is nowhere else to go; a POST
// goes whole to the next upstream when there is.
func TestHTTPSUpstreamBadCertificate(t *testing.T) {
	be := newTLSBackend(t)
	for _, c := range []struct {
		name string
		tls  UpstreamTLS
	}{
		{"unknown-authority", UpstreamTLS{RootCAs: x509.NewCertPool()}},
		{"wrong-name", UpstreamTLS{RootCAs: be.pool, ServerName: "other.example"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := hpStart(t, HTTPConfig{UpstreamTLS: c.tls, Retries: -1}, be.url())
			resp, _ := httpsDo(t, hpClient(), "GET", env.url("/"), "")
			if resp.StatusCode != 502 {
				t.Fatalf("status %d, want 502", resp.StatusCode)
			}
			if rec := env.log.wait(t, 1)[0]; rec["end"] != "upstream_tls_error" {
				t.Fatalf("access log end %v, want upstream_tls_error", rec["end"])
			}
			if v := env.metric(`sluice_upstream_tls_handshakes_total{result="error"}`); v != 1 {
				t.Fatalf("upstream TLS handshake errors = %v", v)
			}
			hpSettled(t, env)
		})
	}
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("retried/h2client=%v", h2), func(t *testing.T) {
			var got atomic.Int64
			good := echoBodyServer(t, &got)
			env := h2Start(t, HTTPConfig{UpstreamTLS: UpstreamTLS{RootCAs: x509.NewCertPool()}, MaxFails: -1}, be.url(), good.addr())
			cl, url := hpClient(), env.url("/")
			if h2 {
				cl, url = h2cClient(), env.h2cURL("/")
			}
			postsRetried(t, env.hpEnv, cl, url, &got, be.url(), func(i int) string {
				return strings.Repeat(fmt.Sprintf("post %d ", i), 1+i*3000)
			})
			hpSettled(t, env.hpEnv)
		})
	}
}

// An upstream that accepts and never answers the ClientHello: 504 after
// the engine's handshake timeout, end dial_timeout.
func TestHTTPSUpstreamHandshakeTimeout(t *testing.T) {
	silent := hpRawServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	env := hpStartEngine(t, HTTPConfig{Retries: -1}, engine.Config{HandshakeTimeout: 200 * time.Millisecond}, "https://"+silent)
	start := time.Now()
	resp, _ := httpsDo(t, hpClient(), "GET", env.url("/"), "")
	if resp.StatusCode != 504 {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("answered after %v, before the 200ms handshake timeout", el)
	}
	if rec := env.log.wait(t, 1)[0]; rec["end"] != "dial_timeout" {
		t.Fatalf("access log end %v, want dial_timeout", rec["end"])
	}
	if v := env.metric(`sluice_upstream_tls_handshakes_total{result="timeout"}`); v != 1 {
		t.Fatalf("upstream TLS handshake timeouts = %v", v)
	}
	hpSettled(t, env)
}

// Active health checks reach an https upstream over TLS.
func TestHTTPSUpstreamHealthCheck(t *testing.T) {
	be := newTLSBackend(t)
	env := hpStart(t, HTTPConfig{UpstreamTLS: UpstreamTLS{RootCAs: be.pool}, HealthPath: "/healthz",
		HealthInterval: 20 * time.Millisecond, HealthTimeout: time.Second}, be.url())
	hpEventually(t, "three passing checks", func() bool { ok, _ := hcChecks(env, be.url()); return ok >= 3 })
	if _, f := hcChecks(env, be.url()); f != 0 {
		t.Fatalf("%v failed checks", f)
	}
}

// h2TLSBackend is net/http's HTTP/2 server over TLS (ALPN h2 and
// http/1.1): "/" reports the protocol, scheme and TLS session it saw,
// "/svc/Echo" is grpcEcho.
func h2TLSBackend(t *testing.T) *tlsBackend {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/svc/Echo", grpcEcho)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Proto", r.Proto+" "+r.TLS.NegotiatedProtocol)
		w.Header().Set("X-Resumed", fmt.Sprint(r.TLS.DidResume))
		w.Write(body)
	})
	return startTLSBackend(t, true, mux)
}

// h2:// upstreams: HTTP/2 over TLS with ALPN h2, multiplexed. HTTP/1.1 and
// HTTP/2 clients reach it, bodies whole, a gRPC-shaped stream keeps its
// messages and trailers, and concurrent requests share a connection.
func TestH2TLSUpstream(t *testing.T) {
	be := h2TLSBackend(t)
	url := "h2://" + be.srv.Listener.Addr().String()
	env := h2Start(t, HTTPConfig{UpstreamTLS: UpstreamTLS{RootCAs: be.pool}}, url)
	for name, resp := range postFromBoth(t, env, strings.Repeat("over h2 and TLS ", 20000)) {
		if p := resp.Header.Get("X-Proto"); p != "HTTP/2.0 h2" {
			t.Fatalf("%s: upstream saw %q, want HTTP/2.0 over ALPN h2", name, p)
		}
	}
	req, _ := http.NewRequest("POST", env.h2cURL("/svc/Echo"), strings.NewReader("m0\nm1\nm2\n"))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	resp, err := h2cClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "echo:m0\necho:m1\necho:m2\n" || resp.Trailer.Get("Grpc-Status") != "0" || resp.Trailer.Get("Grpc-Message") != "3 messages" {
		t.Fatalf("gRPC-shaped stream: %q, trailers %v", b, resp.Trailer)
	}
	before := be.conns.Load()
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		go func() {
			resp, err := h2cClient().Get(env.h2cURL("/"))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			errs <- err
		}()
	}
	for i := 0; i < 20; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := be.conns.Load() - before; n > 2 {
		t.Fatalf("20 concurrent requests opened %d more upstream connections, want them multiplexed", n)
	}
	hpSettled(t, env.hpEnv)
}

// An h2:// upstream whose TLS server selects no ALPN protocol cannot be
// spoken to: 502 (end upstream_tls_error) without a byte of HTTP/2 sent,
// and a POST goes whole to the next upstream.
func TestH2TLSUpstreamWithoutALPN(t *testing.T) {
	be := newTLSBackend(t) // keeps its certificate; a second server without ALPN uses it
	cfg := &tls.Config{Certificates: []tls.Certificate{be.srv.TLS.Certificates[0]}}
	var preface atomic.Bool
	addr := hpRawServer(t, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		buf := make([]byte, 64)
		tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _ := tc.Read(buf); n > 0 {
			preface.Store(true)
		}
	})
	noALPN := "h2://" + addr
	env := h2Start(t, HTTPConfig{UpstreamTLS: UpstreamTLS{RootCAs: be.pool}, Retries: -1}, noALPN)
	resp, _ := httpsDo(t, h2cClient(), "GET", env.h2cURL("/"), "")
	if resp.StatusCode != 502 {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if rec := env.log.wait(t, 1)[0]; rec["end"] != "upstream_tls_error" {
		t.Fatalf("access log end %v", rec["end"])
	}
	if preface.Load() {
		t.Fatal("the HTTP/2 preface went to a server that did not select h2")
	}

	var got atomic.Int64
	good := h2cServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Add(1)
		w.Write(b)
	}))
	env2 := h2Start(t, HTTPConfig{UpstreamTLS: UpstreamTLS{RootCAs: be.pool}, MaxFails: -1}, noALPN, good.url())
	postsRetried(t, env2.hpEnv, h2cClient(), env2.h2cURL("/"), &got, noALPN, func(i int) string {
		return strings.Repeat(fmt.Sprintf("post %d ", i), 1+i*3000)
	})
	hpSettled(t, env2.hpEnv)
}

// Health checks of an h2:// upstream run over HTTP/2 and TLS.
func TestH2TLSUpstreamHealthCheck(t *testing.T) {
	be := h2TLSBackend(t)
	url := "h2://" + be.srv.Listener.Addr().String()
	env := hpStart(t, HTTPConfig{UpstreamTLS: UpstreamTLS{RootCAs: be.pool}, HealthPath: "/healthz",
		HealthInterval: 20 * time.Millisecond, HealthTimeout: time.Second}, url)
	hpEventually(t, "three passing checks", func() bool { ok, _ := hcChecks(env, url); return ok >= 3 })
	if _, f := hcChecks(env, url); f != 0 {
		t.Fatalf("%v failed checks", f)
	}
}

// Mutual TLS to an upstream: UpstreamTLS.ClientCert is presented to an
// upstream that requires a client certificate; without it the upstream
// refuses and the client gets 502.
func TestHTTPSUpstreamClientCert(t *testing.T) {
	kp, err := tlsio.SelfSigned(time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b := &tlsBackend{}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if pc := r.TLS.PeerCertificates; len(pc) > 0 {
			fp := tlsio.Fingerprint(pc[0].Raw)
			io.WriteString(w, tlsio.FormatFingerprint(fp))
		}
	}))
	b.srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	b.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	b.srv.StartTLS()
	t.Cleanup(b.srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(b.srv.Certificate())

	env := hpStart(t, HTTPConfig{UpstreamTLS: UpstreamTLS{RootCAs: pool, ClientCert: kp}}, b.url())
	resp, body := httpsDo(t, hpClient(), "GET", env.url("/"), "")
	if want := tlsio.FormatFingerprint(kp.Fingerprint()); resp.StatusCode != 200 || body != want {
		t.Fatalf("%d %q, want 200 and the client certificate's fingerprint %s", resp.StatusCode, body, want)
	}
	env2 := hpStart(t, HTTPConfig{UpstreamTLS: UpstreamTLS{RootCAs: pool}, Retries: -1}, b.url())
	if resp, _ := httpsDo(t, hpClient(), "GET", env2.url("/"), ""); resp.StatusCode != 502 {
		t.Fatalf("without a client certificate: %d, want 502", resp.StatusCode)
	}
	hpSettled(t, env)
}

// Many clients at once through an https upstream whose every other answer
// closes its connection: a stream of TLS dials, handshakes on their own
// goroutines and resumptions, and every response whole; nothing is left
// behind (hpSettled).
func TestHTTPSUpstreamConcurrent(t *testing.T) {
	be := newTLSBackend(t)
	env := hpStart(t, HTTPConfig{UpstreamTLS: UpstreamTLS{RootCAs: be.pool}, PoolSize: 4}, be.url())
	errs := make(chan error, 40)
	var resumed atomic.Int64
	for c := 0; c < 40; c++ {
		go func() {
			cl := hpClient()
			for i := 0; i < 10; i++ {
				path := "/"
				if i%2 == 1 {
					path = "/close"
				}
				body := fmt.Sprintf("client %d request %d ", c, i)
				req, _ := http.NewRequest("POST", env.url(path), strings.NewReader(body))
				resp, err := cl.Do(req)
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(got) != body {
					errs <- fmt.Errorf("client %d request %d: %d %q %v", c, i, resp.StatusCode, got, err)
					return
				}
				if resp.Header.Get("X-Resumed") == "true" {
					resumed.Add(1)
				}
			}
			errs <- nil
		}()
	}
	for c := 0; c < 40; c++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ok := env.metric(`sluice_upstream_tls_handshakes_total{result="ok"}`)
	if ok < 200 || env.metric(`sluice_upstream_tls_handshakes_total{result="error"}`) != 0 {
		t.Fatalf("upstream handshakes ok=%v (want one per closed connection, ≥ 200), errors=%v", ok,
			env.metric(`sluice_upstream_tls_handshakes_total{result="error"}`))
	}
	t.Logf("%v upstream handshakes; %d of 400 requests on a resumed session", ok, resumed.Load())
	if resumed.Load() == 0 {
		t.Fatal("no request reached the upstream on a resumed session")
	}
	hpSettled(t, env)
}

// An HTTP/1.1 WebSocket upgrade to an https upstream: the tunnel's bytes
// are sealed both ways by the engine (wsEchoServer behind net/http's TLS
// server), and messages echo whole.
func TestHTTPSUpstreamWebSocketTunnel(t *testing.T) {
	be := startTLSBackend(t, false, http.HandlerFunc(wsEchoServer))
	env := hpStart(t, HTTPConfig{UpstreamTLS: UpstreamTLS{RootCAs: be.pool}}, be.url())
	c, br := hpRaw(t, env.addr)
	key := base64.StdEncoding.EncodeToString([]byte("sluice-tls-key!!"))
	fmt.Fprintf(c, "GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	for i, size := range []int{5, 70000, 1 << 20} {
		msg := bytes.Repeat([]byte{byte('a' + i)}, size)
		if err := wsWriteFrame(c, 0x2, msg, []byte{1, 2, 3, 4}); err != nil {
			t.Fatal(err)
		}
		op, p, err := wsReadFrame(br)
		if err != nil || op != 2 || !bytes.Equal(p, msg) {
			t.Fatalf("echo of %d bytes: op %d, %d bytes, %v", size, op, len(p), err)
		}
	}
}

// ?sni= on an upstream URL names what that upstream is asked for and
// verified as, over UpstreamTLS.ServerName: two upstreams on the same
// address with different names each reach it with their own SNI.
func TestHTTPSUpstreamPerUpstreamSNI(t *testing.T) {
	be := newTLSBackend(t) // httptest's certificate covers example.com and *.example.com
	a, b := be.url()+"?sni=example.com", be.url()+"?sni=www.example.com"
	env := hpStart(t, HTTPConfig{UpstreamTLS: UpstreamTLS{RootCAs: be.pool, ServerName: "ignored.example.org"}, MaxFails: -1}, a, b)
	seen := map[string]int{}
	for i := 0; i < 6; i++ {
		resp, _ := httpsDo(t, hpClient(), "GET", env.url("/"), "")
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		seen[resp.Header.Get("X-SNI")]++
	}
	if len(seen) != 2 || seen["example.com"] == 0 || seen["www.example.com"] == 0 {
		t.Fatalf("SNI seen by the upstream: %v, want example.com and www.example.com", seen)
	}
	if v := env.metric(`sluice_upstream_requests_total{upstream="` + a + `",result="ok"}`); v < 1 {
		t.Fatalf("per-upstream metrics for %s: %v", a, v)
	}
	hpSettled(t, env)
}
