package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hpReadHead reads a request head from a raw upstream connection.
func hpReadHead(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return sb.String(), err
		}
		sb.WriteString(line)
		if line == "\r\n" {
			return sb.String(), nil
		}
	}
}

// An upstream that dies in the middle of a Content-Length body: the client
// must get an error (the proxy resets), never a clean short body.
func TestHTTPUpstreamDiesMidBodyContentLength(t *testing.T) {
	for _, rst := range []bool{false, true} {
		t.Run(fmt.Sprintf("rst=%v", rst), func(t *testing.T) {
			up := hpRawServer(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				if _, err := hpReadHead(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
				c.Write(bytes.Repeat([]byte("x"), 50000))
				time.Sleep(20 * time.Millisecond)
				if rst {
					c.(*net.TCPConn).SetLinger(0)
				}
			})
			env := hpStart(t, HTTPConfig{}, up)
			resp, err := hpClient().Get(env.url("/"))
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Fatalf("client read %d bytes and a clean end; want an error", n)
			}
			recs := env.log.wait(t, 1)
			if recs[0]["end"] != "upstream_reset" || recs[0]["status"] != int64(200) {
				t.Errorf("access log: %v", recs[0])
			}
			hpSettled(t, env)
		})
	}
}

// A chunked body cut short: no terminal chunk reaches the client.
func TestHTTPUpstreamDiesMidBodyChunked(t *testing.T) {
	up := hpRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := hpReadHead(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n")
		time.Sleep(20 * time.Millisecond)
	})
	env := hpStart(t, HTTPConfig{}, up)
	// net/http must report the truncation.
	resp, err := hpClient().Get(env.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("client read %q and a clean end; want an error", b)
	}
	// On the wire: the data chunks, then the connection ends without "0\r\n\r\n".
	c, _ := hpRaw(t, env.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	raw, _ := io.ReadAll(c)
	if !bytes.Contains(raw, []byte("hello")) || !bytes.Contains(raw, []byte(" world")) {
		t.Fatalf("raw response lacks the data: %q", raw)
	}
	if bytes.Contains(raw, []byte("\r\n0\r\n")) {
		t.Fatalf("raw response has a terminal chunk the upstream never sent: %q", raw)
	}
}

// A read-until-close response ends cleanly at the upstream's FIN: chunked
// to an HTTP/1.1 client (which keeps its connection), until close to an
// HTTP/1.0 client.
func TestHTTPUntilCloseResponse(t *testing.T) {
	up := hpRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := hpReadHead(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
	})
	env := hpStart(t, HTTPConfig{}, up)
	c, br := hpRaw(t, env.addr)
	for i := 0; i < 2; i++ { // keep-alive survives
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != "all of it" || resp.TransferEncoding[0] != "chunked" || resp.Close {
			t.Fatalf("HTTP/1.1: %q %v TE %v close %v", b, err, resp.TransferEncoding, resp.Close)
		}
	}
	c2, _ := hpRaw(t, env.addr)
	io.WriteString(c2, "GET / HTTP/1.0\r\n\r\n")
	raw, err := io.ReadAll(c2)
	if err != nil || !bytes.HasSuffix(raw, []byte("\r\n\r\nall of it")) || bytes.Contains(raw, []byte("chunked")) {
		t.Fatalf("HTTP/1.0: %q %v", raw, err)
	}
}

func TestHTTPBadGatewayOnRefused(t *testing.T) {
	env := hpStart(t, HTTPConfig{Retries: -1}, hpDeadAddr(t))
	resp, err := hpClient().Get(env.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || string(b) != "502 Bad Gateway\n" {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
	recs := env.log.wait(t, 1)
	if recs[0]["end"] != "dial_error" || recs[0]["status"] != int64(502) {
		t.Errorf("access log: %v", recs[0])
	}
}

func TestHTTPGatewayTimeoutOnSlowHead(t *testing.T) {
	release := make(chan struct{})
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer close(release)
	env := hpStart(t, HTTPConfig{ResponseHeaderTimeout: 150 * time.Millisecond}, be.addr())
	start := time.Now()
	resp, err := hpClient().Get(env.url("/slow"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 504 || time.Since(start) > 3*time.Second {
		t.Fatalf("got %d %q after %v", resp.StatusCode, b, time.Since(start))
	}
	recs := env.log.wait(t, 1)
	if recs[0]["end"] != "upstream_timeout" {
		t.Errorf("access log: %v", recs[0])
	}
}

// GET is retried on another upstream after a dial failure.
func TestHTTPRetryAfterDialFailure(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	dead := hpDeadAddr(t)
	env := hpStart(t, HTTPConfig{MaxFails: -1}, dead, be.addr())
	cl := hpClient()
	for i := 0; i < 6; i++ {
		resp, err := cl.Get(env.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	if v := env.metric(`sluice_upstream_requests_total{upstream="` + dead + `",result="retried"}`); v < 1 {
		t.Errorf("retried = %v, want ≥ 1", v)
	}
	if v := env.metric(`sluice_upstream_requests_total{upstream="` + dead + `",result="dial_error"}`); v < 1 {
		t.Errorf("dial errors = %v, want ≥ 1", v)
	}
	hpSettled(t, env)
}

// A POST is retried after a dial failure too: nothing reached the dead
// upstream, and its body, still unread at the client side, reaches the
// live one whole.
func TestHTTPRetryPostAfterDialFailure(t *testing.T) {
	var got atomic.Int64
	be := echoBodyServer(t, &got)
	dead := hpDeadAddr(t)
	env := hpStart(t, HTTPConfig{MaxFails: -1}, dead, be.addr())
	postsRetried(t, env, hpClient(), env.url("/"), &got, dead, func(i int) string { return fmt.Sprintf("post body %d", i) })
	hpSettled(t, env)
}

// echoBodyServer answers each request with its body, counting them.
func echoBodyServer(t *testing.T, got *atomic.Int64) *hpBackend {
	return hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Add(1)
		w.Write(b)
	}))
}

// postsRetried sends six POSTs through env to [dead, echoBodyServer] and
// checks each came back whole and the dead upstream's retries were counted.
func postsRetried(t *testing.T, env *hpEnv, cl *http.Client, url string, got *atomic.Int64, dead string, body func(int) string) {
	t.Helper()
	for i := 0; i < 6; i++ {
		want := body(i)
		resp, err := cl.Post(url, "text/plain", strings.NewReader(want))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("POST %d: %d, %d bytes, want 200 and the %d bytes sent", i, resp.StatusCode, len(b), len(want))
		}
	}
	if got.Load() != 6 {
		t.Errorf("upstream served %d POSTs, want 6", got.Load())
	}
	if v := env.metric(`sluice_upstream_requests_total{upstream="` + dead + `",result="retried"}`); v < 1 {
		t.Errorf("retried = %v, want ≥ 1", v)
	}
}

// staleServer answers the first request of each connection with keep-alive
// and drops the connection when a second request arrives on it: the race of
// a pooled connection the upstream closed while the request was on its way.
func staleServer(t *testing.T, served *atomic.Int64) string {
	return hpRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		// The whole first request, body included, is read before the
		// answer: an answer that beats the body's last byte makes the
		// proxy drop the connection instead of pooling it.
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		served.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if _, err := hpReadHead(br); err != nil {
			return
		}
		c.(*net.TCPConn).SetLinger(0) // the request is lost: reset
	})
}

// A GET on a stale pooled connection is retried on a fresh one; a POST is
// not (the upstream may have acted on it) and gets 502.
func TestHTTPRetryStalePooledConn(t *testing.T) {
	var served atomic.Int64
	up := staleServer(t, &served)
	env := hpStart(t, HTTPConfig{Retries: 1}, up)
	c, br := hpRaw(t, env.addr)
	get := func(method string) *http.Response {
		t.Helper()
		if method == "POST" {
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
		} else {
			fmt.Fprintf(c, "%s / HTTP/1.1\r\nHost: x\r\n\r\n", method)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		return resp
	}
	if r := get("GET"); r.StatusCode != 200 {
		t.Fatalf("first GET: %d", r.StatusCode)
	}
	if r := get("GET"); r.StatusCode != 200 {
		t.Fatalf("GET on the stale connection: %d, want 200 after a retry", r.StatusCode)
	}
	if served.Load() != 2 {
		t.Fatalf("upstream served %d, want 2", served.Load())
	}
	if r := get("POST"); r.StatusCode != 502 {
		t.Fatalf("POST on the stale connection: %d, want 502 (never retried)", r.StatusCode)
	}
	if served.Load() != 2 {
		t.Fatalf("upstream served %d after the POST, want 2", served.Load())
	}
	recs := env.log.wait(t, 3)
	if recs[1]["attempts"] != int64(2) || recs[2]["attempts"] != int64(1) || recs[2]["end"] != "upstream_reset" {
		t.Errorf("access log: %v / %v", recs[1], recs[2])
	}
	hpSettled(t, env)
}

// A stale connection with a small PUT body: the body is held and resent.
func TestHTTPRetryStaleWithBody(t *testing.T) {
	var served atomic.Int64
	got := make(chan string, 4)
	up := hpRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for i := 0; ; i++ {
			head, err := hpReadHead(br)
			if err != nil {
				return
			}
			if i == 1 {
				c.(*net.TCPConn).SetLinger(0)
				return
			}
			body := ""
			if strings.Contains(head, "Content-Length: 5") {
				b := make([]byte, 5)
				io.ReadFull(br, b)
				body = string(b)
			}
			got <- body
			served.Add(1)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	env := hpStart(t, HTTPConfig{}, up)
	cl := hpClient()
	for i, body := range []string{"", "12345"} {
		req, _ := http.NewRequest("PUT", env.url("/"), strings.NewReader(body))
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("PUT %d: %d", i, resp.StatusCode)
		}
	}
	<-got
	if b := <-got; b != "12345" {
		t.Fatalf("retried PUT body = %q", b)
	}
}

// Passive health: after MaxFails consecutive failures an upstream is
// skipped; after the cooldown it is tried again and, now healthy, serves.
func TestHTTPHealthEjectionAndReadmission(t *testing.T) {
	good := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "good") }))
	bad := hpDeadAddr(t)
	env := hpStart(t, HTTPConfig{MaxFails: 2, FailCooldown: 300 * time.Millisecond, Retries: -1}, bad, good.addr())
	cl := hpClient()
	count := func(n int) (ok, failed int) {
		for i := 0; i < n; i++ {
			resp, err := cl.Get(env.url("/"))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ok++
			} else {
				failed++
			}
		}
		return
	}
	if ok, failed := count(12); failed != 2 || ok != 10 {
		t.Fatalf("before ejection settles: %d ok, %d failed; want 10 and 2", ok, failed)
	}
	if v := env.metric(`sluice_upstream_ejections_total{upstream="` + bad + `"}`); v != 1 {
		t.Fatalf("ejections = %v", v)
	}
	if v := env.metric(`sluice_upstream_available{upstream="` + bad + `"}`); v != 0 {
		t.Fatalf("available = %v while ejected", v)
	}
	// Bring the bad one back to life on the same address.
	ln, err := net.Listen("tcp", bad)
	if err != nil {
		t.Skipf("cannot re-listen on %s: %v", bad, err)
	}
	revived := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "revived") })}
	go revived.Serve(ln)
	defer revived.Close()
	time.Sleep(350 * time.Millisecond)
	seen := map[string]int{}
	for i := 0; i < 6; i++ {
		resp, err := cl.Get(env.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen[string(b)]++
	}
	if seen["revived"] == 0 || seen["good"] == 0 {
		t.Fatalf("after the cooldown: %v; want both upstreams serving", seen)
	}
}

// Active health checks mark an upstream down and up again.
func TestHTTPActiveHealthCheck(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if !healthy.Load() {
				http.Error(w, "sick", 503)
				return
			}
			io.WriteString(w, "fine")
			return
		}
		io.WriteString(w, "served")
	}))
	env := hpStart(t, HTTPConfig{HealthPath: "/healthz", HealthInterval: 30 * time.Millisecond, HealthFails: 2}, be.addr())
	u := env.h.Upstreams()[0]
	hpEventually(t, "a passing check", func() bool {
		return env.metric(`sluice_upstream_health_checks_total{upstream="`+be.addr()+`",result="ok"}`) >= 1
	})
	if !u.Available() {
		t.Fatal("upstream not available while healthy")
	}
	healthy.Store(false)
	hpEventually(t, "upstream marked down", func() bool { return !u.Available() })
	healthy.Store(true)
	hpEventually(t, "upstream marked up", func() bool { return u.Available() })
}

// An upstream that closes in the middle of its response head, or of a
// chunk-size line: the proxy learns at the FIN, not at a timeout.
func TestHTTPUpstreamClosesMidHead(t *testing.T) {
	for _, tc := range []struct{ name, resp string }{
		{"head", "HTTP/1.1 200 OK\r\nContent-Le"},
		{"chunk line", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := hpRawServer(t, func(c net.Conn) {
				if _, err := hpReadHead(bufio.NewReader(c)); err != nil {
					return
				}
				io.WriteString(c, tc.resp)
			})
			env := hpStart(t, HTTPConfig{ResponseHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second, Retries: -1}, up)
			start := time.Now()
			resp, err := hpClient().Get(env.url("/"))
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if tc.name == "head" && resp.StatusCode != 502 {
					t.Fatalf("status %d, want 502", resp.StatusCode)
				}
			}
			if tc.name == "chunk line" && err == nil {
				t.Fatal("truncated chunked body read without error")
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v: the FIN was not noticed", d)
			}
		})
	}
}

// Heads and bodies cut into single bytes on both sides.
func TestHTTPByteByByte(t *testing.T) {
	up := hpRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			head, err := hpReadHead(br)
			if err != nil {
				return
			}
			if !strings.Contains(head, "Content-Length: 3") {
				return
			}
			b := make([]byte, 3)
			io.ReadFull(br, b)
			resp := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n3;ext=1\r\n" + string(b) + "\r\n2\r\n!!\r\n0\r\nX-T: v\r\n\r\n"
			for i := 0; i < len(resp); i++ {
				c.Write([]byte{resp[i]})
				time.Sleep(100 * time.Microsecond)
			}
		}
	})
	env := hpStart(t, HTTPConfig{}, up)
	c, br := hpRaw(t, env.addr)
	c.SetNoDelay(true)
	for round := 0; round < 2; round++ {
		req := "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
		for i := 0; i < len(req); i++ {
			c.Write([]byte{req[i]})
			time.Sleep(100 * time.Microsecond)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != "abc!!" || resp.Header.Get("X-A") != "b" || resp.Trailer.Get("X-T") != "v" {
			t.Fatalf("round %d: %q %v header %v trailer %v", round, b, err, resp.Header, resp.Trailer)
		}
	}
}
