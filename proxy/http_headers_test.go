package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h1"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// headerEcho answers with the request's Host, target and header fields as JSON.
func headerEcho(w http.ResponseWriter, r *http.Request) {
	h := map[string][]string{}
	for k, v := range r.Header {
		h[k] = v
	}
	h["_Host"] = []string{r.Host}
	h["_URI"] = []string{r.RequestURI}
	h["_Proto"] = []string{r.Proto}
	w.Header().Set("Connection", "X-Resp-Drop")
	w.Header().Set("X-Resp-Drop", "secret")
	w.Header().Set("Keep-Alive", "timeout=5")
	w.Header().Set("X-Resp-Keep", "yes")
	json.NewEncoder(w).Encode(h)
}

func TestHTTPHeaderRewriting(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(headerEcho))
	env := hpStart(t, HTTPConfig{}, be.addr())
	c, br := hpRaw(t, env.addr)
	io.WriteString(c, "GET /p?q=1 HTTP/1.1\r\n"+
		"Host: Example.TEST:8080\r\n"+
		"Connection: keep-alive, X-Drop-Me\r\n"+
		"X-Drop-Me: gone\r\n"+
		"Keep-Alive: timeout=10\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"TE: trailers\r\n"+
		"Upgrade: h2c\r\n"+
		"X-Forwarded-For: 203.0.113.7\r\n"+
		"X-Forwarded-For: 198.51.100.1\r\n"+
		"X-Forwarded-Proto: https\r\n"+
		"X-Forwarded-Host: spoofed.example\r\n"+
		"Via: 1.0 corp-proxy\r\n"+
		"X-Keep: kept\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string][]string
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	one := func(k string) string { return strings.Join(got[k], "|") }
	for _, k := range []string{"Connection", "X-Drop-Me", "Keep-Alive", "Proxy-Connection", "Te", "Upgrade"} {
		if _, ok := got[k]; ok {
			t.Errorf("hop-by-hop %s reached the upstream: %v", k, got[k])
		}
	}
	want := map[string]string{
		"_Host":             "Example.TEST:8080",
		"_URI":              "/p?q=1",
		"_Proto":            "HTTP/1.1",
		"X-Forwarded-For":   "127.0.0.1", // the client is no trusted proxy: its list is replaced
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  "Example.TEST:8080",
		"Via":               "1.0 corp-proxy, 1.1 sluice",
		"X-Keep":            "kept",
	}
	for k, v := range want {
		if one(k) != v {
			t.Errorf("upstream saw %s = %q, want %q", k, one(k), v)
		}
	}
	// Response side: hop-by-hop fields and Connection-listed ones dropped.
	for _, k := range []string{"X-Resp-Drop", "Keep-Alive"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("response kept hop-by-hop %s: %q", k, v)
		}
	}
	if resp.Header.Get("Connection") != "" || resp.Header.Get("X-Resp-Keep") != "yes" || resp.Header.Get("Via") != "1.1 sluice" {
		t.Errorf("response header: %v", resp.Header)
	}
}

func TestHTTPRewriteHostAndAbsoluteForm(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(headerEcho))
	env := hpStart(t, HTTPConfig{RewriteHost: true, NoXForwarded: true}, be.addr())
	c, br := hpRaw(t, env.addr)
	// Absolute form: the target's authority is the host (RFC 9112 §3.2.2),
	// and the upstream gets origin form.
	io.WriteString(c, "GET http://abs.example/x/y?z HTTP/1.1\r\nHost: ignored.example\r\n\r\n"+
		"GET http://abs.example?only-query HTTP/1.1\r\nHost: abs.example\r\n\r\n")
	for _, wantURI := range []string{"/x/y?z", "/?only-query"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string][]string
		json.NewDecoder(resp.Body).Decode(&got)
		if got["_Host"][0] != be.addr() || got["_URI"][0] != wantURI {
			t.Errorf("RewriteHost: upstream saw Host %q URI %q; want %q %q", got["_Host"], got["_URI"], be.addr(), wantURI)
		}
		if _, ok := got["X-Forwarded-For"]; ok {
			t.Errorf("NoXForwarded: X-Forwarded-For sent")
		}
	}
}

// HTTP/1.0 clients: keep-alive only when asked, with Connection: keep-alive
// in the response; Host comes from the upstream when the client sent none.
func TestHTTPVersion10Client(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(headerEcho))
	env := hpStart(t, HTTPConfig{}, be.addr())
	c, br := hpRaw(t, env.addr)
	io.WriteString(c, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string][]string
	json.NewDecoder(resp.Body).Decode(&got)
	io.Copy(io.Discard, resp.Body)
	if resp.Header.Get("Connection") != "keep-alive" || got["_Host"][0] != be.addr() || got["Via"][0] != "1.0 sluice" {
		t.Fatalf("1.0 keep-alive: Connection %q, Host %q, Via %q", resp.Header.Get("Connection"), got["_Host"], got["Via"])
	}
	io.WriteString(c, "GET /b HTTP/1.0\r\nHost: h\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if !resp.Close {
		t.Fatalf("1.0 without keep-alive: response does not close (%v)", resp.Header)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection not closed: %v", err)
	}
}

// Malformed and oversized requests: the proxy answers the status h1 names,
// closes, and never contacts the upstream.
func TestHTTPClientErrors(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(headerEcho))
	env := hpStart(t, HTTPConfig{MaxRequestLine: 1024}, be.addr())
	many := strings.Repeat("X-Many: v\r\n", 150)
	cases := []struct {
		name, req string
		code      int
	}{
		{"cl-te smuggling", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"te-cl smuggling", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400},
		{"double cl", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400},
		{"bare lf", "GET / HTTP/1.1\nHost: x\n\n", 400},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"gzip te", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"long line", "GET /" + strings.Repeat("a", 2000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"many fields", "GET / HTTP/1.1\r\nHost: x\r\n" + many + "\r\n", 431},
		{"big head", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 40<<10) + "\r\n\r\n", 431},
		{"connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405},
		{"bad chunk", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, br := hpRaw(t, env.addr)
			go io.WriteString(c, tc.req)
			resp, err := http.ReadResponse(br, nil)
			if tc.code == 0 {
				// A body framing error after the head went upstream: the
				// exchange fails; whatever the client gets, no 2xx.
				if err == nil && resp.StatusCode < 300 {
					t.Fatalf("bad chunk got %d", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			wantBody := fmt.Sprintf("%d %s\n", tc.code, h1.StatusText(tc.code))
			if resp.StatusCode != tc.code || string(body) != wantBody || tc.code != 405 && !resp.Close {
				t.Fatalf("got %d close=%v %q, want %d %q and close", resp.StatusCode, resp.Close, body, tc.code, wantBody)
			}
			if tc.code != 405 {
				if _, err := br.ReadByte(); err == nil {
					t.Fatal("connection still open after a malformed request")
				}
			}
		})
	}
	if n := be.conns.Load(); n > 1 {
		t.Errorf("upstream saw %d connections; malformed heads must not reach it", n)
	}
}

// Header timeout: a client that sends part of a head gets 408 and a close;
// one that sends nothing is closed silently.
func TestHTTPHeaderTimeout(t *testing.T) {
	env := hpStart(t, HTTPConfig{HeaderTimeout: 100 * time.Millisecond}, hpDeadAddr(t))
	c, br := hpRaw(t, env.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost:")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 408 || !resp.Close {
		t.Fatalf("partial head: %v %v", resp, err)
	}
	c2, br2 := hpRaw(t, env.addr)
	_ = c2
	start := time.Now()
	if b, err := br2.ReadByte(); err != io.EOF {
		t.Fatalf("silent client: read %q %v, want EOF", b, err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("silent client closed after %v", time.Since(start))
	}
}

// Keep-alive idle timeout closes the client connection between requests.
func TestHTTPIdleTimeout(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	env := hpStart(t, HTTPConfig{IdleTimeout: 100 * time.Millisecond}, be.addr())
	c, br := hpRaw(t, env.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("want EOF at idle timeout, got %v", err)
	}
	if d := time.Since(start); d < 80*time.Millisecond || d > 3*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

// Drain: the idle keep-alive connection closes at once; the request in
// flight completes, with Connection: close; then nothing is left.
func TestHTTPDrain(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "done "+r.URL.Path)
	}))
	env := hpStart(t, HTTPConfig{}, be.addr())
	idle, idleBr := hpRaw(t, env.addr)
	io.WriteString(idle, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(idleBr, nil); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	busy, busyBr := hpRaw(t, env.addr)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := env.e.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := idleBr.ReadByte(); err != io.EOF {
		t.Fatalf("idle keep-alive connection: %v, want EOF at drain", err)
	}
	idle.Close() // as a client does: the proxy's linger ends at our FIN
	close(release)
	resp, err := http.ReadResponse(busyBr, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "done /slow" || !resp.Close {
		t.Fatalf("in-flight response: %q close=%v", b, resp.Close)
	}
	if _, err := busyBr.ReadByte(); err != io.EOF {
		t.Fatalf("after the last response: %v, want EOF", err)
	}
	busy.Close()
	select {
	case <-env.e.Idle():
	case <-time.After(5 * time.Second):
		t.Fatalf("engine not idle after drain: %d connections live", env.e.Live())
	}
	hpSettled(t, env)
	if u := env.h.Upstreams()[0]; u.IdleConns.Load() != 0 {
		t.Errorf("%d pooled connections left after drain", u.IdleConns.Load())
	}
}

// Routes: host match first, then longest prefix; any-host routes as
// fallback; 404 when nothing matches.
func TestHTTPRouting(t *testing.T) {
	mk := func(name string) string {
		return hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })).addr()
	}
	a, b, c, d := mk("a"), mk("b"), mk("c"), mk("d")
	var routes []Route
	for _, s := range []string{
		"/api=" + a,
		"/api/v2/=http://" + b + "/",
		"shop.example=" + c,
		"shop.example/static=" + d,
	} {
		r, err := ParseRoute(s)
		if err != nil {
			t.Fatal(err)
		}
		routes = append(routes, r)
	}
	env := hpStart(t, HTTPConfig{Routes: routes})
	cl := hpClient()
	for _, tc := range []struct{ host, path, want string }{
		{"x", "/api", "a"},
		{"x", "/apix", "a"},
		{"x", "/api/v2/users", "b"},
		{"x", "/api/v2", "a"},
		{"SHOP.example.", "/anything", "c"},
		{"shop.example:8443", "/static/app.js", "d"},
		{"shop.example", "/api/v2/x", "c"}, // the host's routes win, "/" included
		{"other", "/nothing", "404 Not Found\n"},
	} {
		req, _ := http.NewRequest("GET", env.url(tc.path), nil)
		req.Host = tc.host
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tc.want {
			t.Errorf("%s%s → %q, want %q", tc.host, tc.path, body, tc.want)
		}
	}
}

// curl as the client, over plain HTTP.
func TestHTTPCurl(t *testing.T) {
	curl := testutil.NeedTool(t, "curl")
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s body=%d te=%v", r.Proto, r.Method, r.URL.Path, len(b), r.TransferEncoding)
	}))
	env := hpStart(t, HTTPConfig{}, be.addr())
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, curl, append([]string{"-sS", "--max-time", "8"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	if got := run(env.url("/x"), env.url("/y")); got != "HTTP/1.1 GET /x body=0 te=[]HTTP/1.1 GET /y body=0 te=[]" {
		t.Errorf("two GETs on one connection: %q", got)
	}
	if got := run("--data-binary", "hello", env.url("/post")); got != "HTTP/1.1 POST /post body=5 te=[]" {
		t.Errorf("POST: %q", got)
	}
	if got := run("-H", "Transfer-Encoding: chunked", "--data-binary", strings.Repeat("z", 100000), env.url("/chunked")); got != "HTTP/1.1 POST /chunked body=100000 te=[chunked]" {
		t.Errorf("chunked POST: %q", got)
	}
	if got := run("--http1.0", env.url("/old")); got != "HTTP/1.1 GET /old body=0 te=[]" {
		t.Errorf("HTTP/1.0: %q", got)
	}
	if got := run("-o", "/dev/null", "-w", "%{http_code}", "-I", env.url("/head")); got != "200" {
		t.Errorf("HEAD: %q", got)
	}
	if got := run("-H", "Expect: 100-continue", "--data-binary", strings.Repeat("e", 2000), env.url("/expect")); got != "HTTP/1.1 POST /expect body=2000 te=[]" {
		t.Errorf("Expect: %q", got)
	}
}

// A slow client downloading 64 MiB: the proxy's output buffer stays near
// the engine's high-water mark because it stops reading the upstream.
func TestHTTPBackpressureSlowReader(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB transfer")
	}
	const size = 64 << 20
	block := make([]byte, 256<<10)
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		for left := size; left > 0; left -= len(block) {
			if _, err := w.Write(block[:min(left, len(block))]); err != nil {
				return
			}
		}
	}))
	env := hpStartEngine(t, HTTPConfig{}, engine.Config{HighWater: 256 << 10, LowWater: 64 << 10}, be.addr())
	nc, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.(*net.TCPConn).SetReadBuffer(64 << 10)
	nc.SetDeadline(time.Now().Add(40 * time.Second))
	io.WriteString(nc, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	var (
		mu        sync.Mutex
		maxBuf    float64
		maxHeap   uint64
		stop      = make(chan struct{})
		sampled   = make(chan struct{})
		ms        runtime.MemStats
		heapStart uint64
	)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heapStart = ms.HeapInuse
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			v := env.metric("sluice_output_buffered_bytes")
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			mu.Lock()
			maxBuf = max(maxBuf, v)
			maxHeap = max(maxHeap, m.HeapInuse)
			mu.Unlock()
		}
	}()
	br := bufio.NewReaderSize(nc, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	var got, sinceNap int64
	for {
		n, err := resp.Body.Read(buf)
		got += int64(n)
		sinceNap += int64(n)
		if err != nil {
			break
		}
		if sinceNap >= 512<<10 {
			sinceNap = 0
			time.Sleep(time.Millisecond) // at most ~500 MiB/s: the proxy's output backs up
		}
	}
	close(stop)
	<-sampled
	if got != size {
		t.Fatalf("received %d bytes, want %d", got, size)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("max engine output buffered: %.0f bytes; heap in use grew by at most %d KiB", maxBuf, (int64(maxHeap)-int64(heapStart))/1024)
	if maxBuf > 4<<20 {
		t.Errorf("output buffer reached %.0f bytes: backpressure did not hold the upstream", maxBuf)
	}
	if grow := int64(maxHeap) - int64(heapStart); grow > 32<<20 {
		t.Errorf("heap grew by %d MiB during a 64 MiB transfer", grow>>20)
	}
}

func TestHTTPAccessLog(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(201)
		w.Write(append(b, b...))
	}))
	env := hpStart(t, HTTPConfig{}, be.addr())
	req, _ := http.NewRequest("POST", env.url("/log/me?x=1"), strings.NewReader("12345"))
	req.Host = "logged.example"
	resp, err := hpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r := env.log.wait(t, 1)[0]
	want := map[string]any{
		"msg": "request", "method": "POST", "path": "/log/me?x=1", "host": "logged.example", "proto": "HTTP/1.1",
		"status": int64(201), "bytes_in": int64(5), "bytes_out": int64(10), "upstream": be.addr(),
		"attempts": int64(1), "end": "ok", "client": "127.0.0.1",
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("access log %s = %v (%T), want %v", k, r[k], r[k], v)
		}
	}
	if d, ok := r["duration"].(time.Duration); !ok || d <= 0 {
		t.Errorf("duration = %v", r["duration"])
	}
	if d, ok := r["upstream_header"].(time.Duration); !ok || d <= 0 || d > r["duration"].(time.Duration) {
		t.Errorf("upstream_header = %v", r["upstream_header"])
	}
	// A request the client abandons is logged as client_abort, 499.
	release := make(chan struct{})
	defer close(release)
	be2 := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	env2 := hpStart(t, HTTPConfig{}, be2.addr())
	c, _ := hpRaw(t, env2.addr)
	io.WriteString(c, "GET /abandon HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	c.SetLinger(0)
	c.Close()
	r = env2.log.wait(t, 1)[0]
	if r["end"] != "client_abort" || r["status"] != int64(499) {
		t.Errorf("abandoned request logged as %v", r)
	}
	hpSettled(t, env2)
}

// Error responses to HEAD carry no body, and keep the connection.
func TestHTTPErrorResponseToHEAD(t *testing.T) {
	env := hpStart(t, HTTPConfig{Retries: -1}, hpDeadAddr(t))
	c, br := hpRaw(t, env.addr)
	io.WriteString(c, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
	if err != nil || resp.StatusCode != 502 {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	resp, err = http.ReadResponse(bufio.NewReader(br), nil)
	if err != nil || resp.StatusCode != 502 {
		t.Fatalf("GET after HEAD: %v %v", resp, err)
	}
}

// readBlock reads CRLF lines up to an empty one and returns them.
func readBlock(br *bufio.Reader) ([]string, error) {
	var lines []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return lines, err
		}
		if l == "\r\n" {
			return lines, nil
		}
		lines = append(lines, strings.TrimSuffix(l, "\r\n"))
	}
}

// Trailers follow the one trailer rule both ways (RFC 9110 §6.5.1): the
// fields that frame, route or describe the content never travel as
// trailers, even between two HTTP/1.1 peers whose parser accepts them
// (an HTTP/1.1 hop used to pass them on as received). Host and the
// framing fields the parser refuses itself.
func TestHTTPTrailersOnlyThoseThatMayTravel(t *testing.T) {
	upTrailers := make(chan []string, 1)
	up := hpRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readBlock(br); err != nil { // the head
			return
		}
		for { // chunks: size line, data line, up to the last one
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if l == "0\r\n" {
				break
			}
			br.ReadString('\n')
		}
		tr, err := readBlock(br)
		if err != nil {
			return
		}
		upTrailers <- tr
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n"+
			"0\r\nX-Resp-Sum: 2\r\nConnection: close\r\nContent-Type: text/evil\r\nContent-Encoding: gzip\r\n\r\n")
	})
	env := hpStart(t, HTTPConfig{}, up)
	c, br := hpRaw(t, env.addr)
	io.WriteString(c, "POST /t HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"5\r\nhello\r\n0\r\nX-Sum: 1\r\nContent-Type: text/evil\r\nTE: trailers\r\nUpgrade: evil\r\n\r\n")
	select {
	case tr := <-upTrailers:
		if strings.Join(tr, "|") != "X-Sum: 1" {
			t.Errorf("upstream got trailers %q, want only X-Sum", tr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no request body upstream")
	}
	head, err := readBlock(br)
	if err != nil || len(head) == 0 || head[0] != "HTTP/1.1 200 OK" {
		t.Fatalf("response head %q: %v", head, err)
	}
	var body []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		if l == "0\r\n" {
			break
		}
		body = append(body, l)
	}
	tr, err := readBlock(br)
	if err != nil || strings.Join(tr, "|") != "X-Resp-Sum: 2" {
		t.Errorf("client got trailers %q (%v), want only X-Resp-Sum", tr, err)
	}
}

// An HTTP/1.1 client's request with a repeated Content-Length (identical
// values, which the parser accepts) reaches an h2c upstream with one
// content-length, as it reaches an HTTP/1.1 upstream (RFC 9110 §8.6).
func TestHTTPToH2CContentLengthOnce(t *testing.T) {
	got := make(chan []string, 1)
	up := rawH2CServer(t, func(u *rawUp) {
		f, err := u.request(nil)
		if err != nil {
			return
		}
		var cl []string
		for _, hf := range f.Fields {
			if hf.Name == "content-length" {
				cl = append(cl, hf.Value)
			}
		}
		got <- cl
		for { // the body, to its END_STREAM
			fr, err := u.fr.ReadFrame()
			if err != nil {
				return
			}
			if d, ok := fr.(*http2.DataFrame); ok && d.StreamEnded() {
				break
			}
		}
		u.respond(f.StreamID, "ok")
	})
	env := hpStart(t, HTTPConfig{}, "h2c://"+up)
	c, br := hpRaw(t, env.addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc")
	select {
	case cl := <-got:
		if len(cl) != 1 || cl[0] != "3" {
			t.Errorf("h2c upstream got content-length %q, want one \"3\"", cl)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no request upstream")
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Errorf("response %d %q", resp.StatusCode, b)
	}
}
