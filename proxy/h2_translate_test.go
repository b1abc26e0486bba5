package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// The HTTP/1.1 head an HTTP/2 request becomes, and the HTTP/2 response an
// HTTP/1.1 one becomes, field by field.
func TestH2HeaderTranslation(t *testing.T) {
	heads := make(chan string, 1)
	up := hpRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		heads <- head.String()
		io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: X-Hop, close\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n"+
			"Set-Cookie: s=1\r\nVia: 1.1 upstream\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"+
			"5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n")
	})
	env := h2Start(t, HTTPConfig{}, up)
	r := rawH2Dial(t, env.tlsAddr, true)
	err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndStream: true, EndHeaders: true,
		BlockFragment: r.block(":method", "GET", ":scheme", "https", ":authority", "example.test:8443", ":path", "/p?q=1",
			"cookie", "a=1", "user-agent", "raw/1", "cookie", "b=2", "te", "trailers",
			"x-forwarded-for", "1.2.3.4", "x-forwarded-proto", "lies", "via", "1.1 other", "x-custom", "v")})
	if err != nil {
		t.Fatal(err)
	}
	var head string
	select {
	case head = <-heads:
	case <-time.After(10 * time.Second):
		t.Fatal("no request upstream")
	}
	lines := strings.Split(strings.TrimSuffix(head, "\r\n\r\n"), "\r\n")
	if lines[0] != "GET /p?q=1 HTTP/1.1" || lines[1] != "Host: example.test:8443" {
		t.Fatalf("request line and Host: %q", lines[:2])
	}
	// The client is no trusted proxy: its X-Forwarded-* are replaced.
	want := []string{"user-agent: raw/1", "x-custom: v", "Cookie: a=1; b=2", "X-Forwarded-For: 127.0.0.1",
		"X-Forwarded-Proto: https", "X-Forwarded-Host: example.test:8443", "X-Request-Id: ID", "Via: 1.1 other, 2.0 sluice"}
	got := lines[2:]
	for i, l := range got {
		if id, ok := strings.CutPrefix(l, "X-Request-Id: "); ok && len(id) == 24 && strings.Trim(id, "0123456789abcdef") == "" {
			got[i] = "X-Request-Id: ID"
		}
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("upstream fields:\n got %q\nwant %q", got, want)
	}
	fields := map[string][]string{}
	var body string
	var trailers map[string]string
	for done := false; !done; {
		f, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if fields[":status"] == nil {
				for _, hf := range f.Fields {
					fields[hf.Name] = append(fields[hf.Name], hf.Value)
				}
			} else {
				trailers = map[string]string{}
				for _, hf := range f.Fields {
					trailers[hf.Name] = hf.Value
				}
			}
			done = f.StreamEnded()
		case *http2.DataFrame:
			body += string(f.Data())
			done = f.StreamEnded()
		case *http2.RSTStreamFrame:
			t.Fatalf("reset: %v", f.ErrCode)
		}
	}
	for _, hop := range []string{"connection", "x-hop", "keep-alive", "transfer-encoding", "trailer", "content-length"} {
		if fields[hop] != nil {
			t.Errorf("response field %s was forwarded: %v", hop, fields[hop])
		}
	}
	if v := fields["via"]; len(v) != 1 || v[0] != "1.1 upstream, 1.1 sluice" {
		t.Errorf("via %q", v)
	}
	if v := fields["set-cookie"]; len(v) != 1 || v[0] != "s=1" {
		t.Errorf("set-cookie %q", v)
	}
	if body != "hello" {
		t.Errorf("body %q", body)
	}
	if len(trailers) != 1 || trailers["x-checksum"] != "abc" {
		t.Errorf("trailers %v, want x-checksum", trailers)
	}
}

// 10 MiB each way through HTTP/1.1 upstreams, sha256 compared: a request
// body with a known length (Content-Length upstream) and one without
// (chunked upstream), and a response with a Content-Length and a chunked
// one.
func TestH2Bodies10MiB(t *testing.T) {
	const size = 10 << 20
	blob := make([]byte, size)
	rand.Read(blob)
	sum := sha256.Sum256(blob)
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/up":
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x %v %d", n, h.Sum(nil), r.TransferEncoding, r.ContentLength)
		case "/down-cl":
			w.Header().Set("Content-Length", fmt.Sprint(size))
			w.Write(blob)
		case "/down-chunked":
			for off := 0; off < size; off += 1 << 20 {
				w.Write(blob[off : off+1<<20])
				w.(http.Flusher).Flush()
			}
		}
	}))
	env := h2Start(t, HTTPConfig{}, be.addr())
	for _, c := range []struct {
		name string
		cl   *http.Client
		url  func(string) string
	}{{"h2c", h2cClient(), env.h2cURL}, {"tls", h2TLSClient(), env.tlsURL}} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := c.cl.Post(c.url("/up"), "application/octet-stream", bytes.NewReader(blob))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprintf("%d %x [] %d", size, sum, size); string(got) != want {
				t.Fatalf("upload with length: %q, want %q", got, want)
			}
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(func() error { _, err := pw.Write(blob); return err }()) }()
			resp, err = c.cl.Post(c.url("/up"), "application/octet-stream", pr)
			if err != nil {
				t.Fatal(err)
			}
			got, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprintf("%d %x [chunked] -1", size, sum); string(got) != want {
				t.Fatalf("upload without length: %q, want %q", got, want)
			}
			for _, p := range []string{"/down-cl", "/down-chunked"} {
				resp, err := c.cl.Get(c.url(p))
				if err != nil {
					t.Fatal(err)
				}
				h := sha256.New()
				n, err := io.Copy(h, resp.Body)
				resp.Body.Close()
				if err != nil || n != size || !bytes.Equal(h.Sum(nil), sum[:]) {
					t.Fatalf("%s: %d bytes, %v, digest match %v", p, n, err, bytes.Equal(h.Sum(nil), sum[:]))
				}
			}
		})
	}
	hpSettled(t, env.hpEnv)
}

// Request trailers from an HTTP/2 client reach an HTTP/1.1 upstream in the
// last chunk; response trailers from its last chunk come back as HTTP/2
// trailers.
func TestH2TrailersBothWays(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Echo-Trailer")
		w.WriteHeader(200)
		w.Write(body)
		w.(http.Flusher).Flush()
		w.Header().Set("X-Echo-Trailer", r.Trailer.Get("X-Req-Trailer"))
	}))
	env := h2Start(t, HTTPConfig{}, be.addr())
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", env.h2cURL("/t"), pr)
	req.Trailer = http.Header{"X-Req-Trailer": nil}
	go func() {
		io.WriteString(pw, "payload")
		req.Trailer.Set("X-Req-Trailer", "sent-after-body")
		pw.Close()
	}()
	resp, err := h2cClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "payload" || resp.Trailer.Get("X-Echo-Trailer") != "sent-after-body" {
		t.Fatalf("body %q trailers %v", body, resp.Trailer)
	}
}

// Upstream failures are per stream: 502 for a dead upstream, 504 for a
// slow one, while another stream on the same connection succeeds.
func TestH2UpstreamErrorsPerStream(t *testing.T) {
	good := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "good") }))
	slow := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	env := h2Start(t, HTTPConfig{
		ResponseHeaderTimeout: 300 * time.Millisecond,
		Retries:               -1,
		Routes: []Route{
			{PathPrefix: "/", Upstreams: []string{good.addr()}},
			{PathPrefix: "/dead", Upstreams: []string{hpDeadAddr(t)}},
			{PathPrefix: "/slow", Upstreams: []string{slow.addr()}},
		},
	})
	cl := h2TLSClient()
	type res struct {
		path string
		code int
		body string
	}
	out := make(chan res, 3)
	for _, p := range []string{"/dead", "/slow", "/ok"} {
		go func() {
			resp, err := cl.Get(env.tlsURL(p))
			if err != nil {
				out <- res{p, -1, err.Error()}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			out <- res{p, resp.StatusCode, string(b)}
		}()
	}
	got := map[string]res{}
	for range 3 {
		r := <-out
		got[r.path] = r
	}
	if r := got["/dead"]; r.code != 502 || r.body != "502 Bad Gateway\n" {
		t.Errorf("/dead: %+v", r)
	}
	if r := got["/slow"]; r.code != 504 || r.body != "504 Gateway Timeout\n" {
		t.Errorf("/slow: %+v", r)
	}
	if r := got["/ok"]; r.code != 200 || r.body != "good" {
		t.Errorf("/ok: %+v", r)
	}
	recs := env.log.wait(t, 3)
	for _, rec := range recs {
		if rec["proto"] != "HTTP/2.0" {
			t.Errorf("access log proto %v", rec["proto"])
		}
	}
	for code, want := range map[string]float64{"200": 1, "502": 1, "504": 1} {
		if v := env.metric(`sluice_http_requests_total{proto="h2",code="` + code + `"}`); v != want {
			t.Errorf("requests_total h2 %s = %v, want %v", code, v, want)
		}
	}
	hpSettled(t, env.hpEnv)
	hpEventually(t, "no active stream", func() bool { return env.metric("sluice_http2_streams_active") == 0 })
}

// An upstream that dies mid-body makes the stream end with RST_STREAM
// (INTERNAL_ERROR), never with END_STREAM: for a Content-Length body and
// for a chunked one without its last chunk.
func TestH2UpstreamDiesMidBody(t *testing.T) {
	for _, c := range []struct {
		name string
		resp string
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 1000)},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n" + strings.Repeat("x", 1000) + "\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			up := hpRawServer(t, func(conn net.Conn) {
				bufio.NewReader(conn).ReadString('\n')
				io.WriteString(conn, c.resp)
				time.Sleep(50 * time.Millisecond)
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			})
			env := h2Start(t, HTTPConfig{}, up)
			r := rawH2Dial(t, env.addr, false)
			r.get(1, "/")
			n := 0
			for {
				f, err := r.next()
				if err != nil {
					t.Fatal(err)
				}
				if d, ok := f.(*http2.DataFrame); ok {
					n += len(d.Data())
					if d.StreamEnded() {
						t.Fatal("a truncated body ended with END_STREAM")
					}
				}
				if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamEnded() {
					t.Fatal("response ended with END_STREAM")
				}
				if rst, ok := f.(*http2.RSTStreamFrame); ok {
					if rst.ErrCode != http2.ErrCodeInternal || n != 1000 {
						t.Fatalf("RST_STREAM %v after %d bytes, want INTERNAL_ERROR after 1000", rst.ErrCode, n)
					}
					break
				}
			}
			// The connection stays usable.
			r.get(3, "/")
			hpEventually(t, "end log", func() bool { return len(env.log.all()) >= 1 })
			if rec := env.log.all()[0]; rec["end"] != "upstream_reset" {
				t.Errorf("access log end %v", rec["end"])
			}
		})
	}
}

// A client that resets a stream cancels its upstream exchange: the
// HTTP/1.1 upstream connection is closed (its request context ends), never
// pooled half-read, and the next request gets a fresh connection.
func TestH2ClientResetCancelsUpstream(t *testing.T) {
	var cancelled atomic.Int64
	started := make(chan struct{}, 4)
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			io.WriteString(w, "ok")
			return
		}
		if r.URL.Path == "/midbody" {
			w.Header().Set("Content-Length", "10000000")
			w.Write(make([]byte, 100000))
			w.(http.Flusher).Flush()
		}
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled.Add(1)
		case <-time.After(10 * time.Second):
		}
	}))
	env := h2Start(t, HTTPConfig{}, be.addr())
	cl := h2cClient()
	for i, p := range []string{"/wait", "/midbody"} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", env.h2cURL(p), nil)
		errc := make(chan error, 1)
		go func() {
			resp, err := cl.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			errc <- err
		}()
		<-started
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: client error %v", p, err)
		}
		hpEventually(t, "the upstream request cancelled", func() bool { return cancelled.Load() == int64(i+1) })
	}
	hpSettled(t, env.hpEnv)
	before := be.conns.Load()
	resp, err := cl.Get(env.h2cURL("/ok"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" || be.conns.Load() != before+1 {
		t.Fatalf("after the resets: %q, upstream connections %d -> %d (want a fresh one)", b, before, be.conns.Load())
	}
	if v := env.metric(`sluice_http2_rst_streams_total{direction="received",code="CANCEL"}`); v != 2 {
		t.Errorf("RST_STREAM received CANCEL = %v, want 2", v)
	}
	recs := env.log.wait(t, 3)
	if recs[0]["status"] != int64(499) || recs[0]["end"] != "client_abort" {
		t.Errorf("first access log record: %v", recs[0])
	}
}

// The HTTP/1.1 retry rules hold for HTTP/2 streams: a GET (and a PUT with
// its body) on a stale pooled upstream connection is retried on a fresh
// one; a POST is not and gets 502.
func TestH2RetryStalePooledConn(t *testing.T) {
	var served atomic.Int64
	up := staleServer(t, &served)
	env := h2Start(t, HTTPConfig{Retries: 1}, up)
	cl := h2cClient()
	do := func(method, body string) int {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, env.h2cURL("/"), rd)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := do("GET", ""); c != 200 {
		t.Fatalf("first GET: %d", c)
	}
	if c := do("GET", ""); c != 200 || served.Load() != 2 {
		t.Fatalf("GET on the stale connection: %d, served %d; want 200 after a retry", c, served.Load())
	}
	if c := do("PUT", "held body"); c != 200 || served.Load() != 3 {
		t.Fatalf("PUT on the stale connection: %d, served %d; want 200 after a retry", c, served.Load())
	}
	if c := do("POST", "body"); c != 502 || served.Load() != 3 {
		t.Fatalf("POST on the stale connection: %d, served %d; want 502, never retried", c, served.Load())
	}
	hpSettled(t, env.hpEnv)
}

// An HTTP/2 POST is retried after a dial failure: its body waited,
// unconsumed, for the connection and goes whole to the live upstream.
func TestH2RetryPostAfterDialFailure(t *testing.T) {
	var got atomic.Int64
	be := echoBodyServer(t, &got)
	dead := hpDeadAddr(t)
	env := h2Start(t, HTTPConfig{MaxFails: -1}, dead, be.addr())
	postsRetried(t, env.hpEnv, h2cClient(), env.h2cURL("/"), &got, dead, func(i int) string {
		return strings.Repeat(fmt.Sprintf("post %d ", i), 1000)
	})
	hpSettled(t, env.hpEnv)
}

// Every request byte the client sends is credited back to its connection
// window exactly once, whatever happens to the stream: 40 uploads of 256
// KiB into errors (no route, a dead upstream, early responses) must not
// shrink the 1 MiB connection window, or the last upload would hang.
func TestH2ConnectionWindowNotLeaked(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/early" {
			io.WriteString(w, "early") // answers without reading the body
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	}))
	env := h2Start(t, HTTPConfig{Retries: -1, Routes: []Route{
		{Host: "ok.test", PathPrefix: "/", Upstreams: []string{be.addr()}},
		{Host: "dead.test", PathPrefix: "/", Upstreams: []string{hpDeadAddr(t)}},
	}})
	r := rawH2Dial(t, env.addr, false)
	chunk := make([]byte, 16384)
	id := uint32(1)
	post := func(host, path string) (string, string) {
		t.Helper()
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true,
			BlockFragment: r.block(":method", "POST", ":scheme", "http", ":authority", host, ":path", path)})
		status, body := "", ""
		sent := 0
		done := false
		for sent < 256<<10 || !done {
			if sent < 256<<10 {
				if err := r.fr.WriteData(id, sent+len(chunk) == 256<<10, chunk); err != nil {
					t.Fatal(err)
				}
				sent += len(chunk)
				continue
			}
			f, err := r.next()
			if err != nil {
				t.Fatal(err)
			}
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				if f.StreamID == id {
					status = f.PseudoValue("status")
					done = done || f.StreamEnded()
				}
			case *http2.DataFrame:
				if f.StreamID == id {
					body += string(f.Data())
					done = done || f.StreamEnded()
				}
			case *http2.RSTStreamFrame:
				if f.StreamID == id && status != "" {
					done = true
				}
			}
		}
		id += 2
		return status, body
	}
	for i := 0; i < 10; i++ {
		for _, c := range []struct{ host, path, status string }{
			{"nowhere.test", "/", "404"}, {"dead.test", "/", "502"}, {"ok.test", "/early", "200"}, {"ok.test", "/", "200"},
		} {
			if s, _ := post(c.host, c.path); s != c.status {
				t.Fatalf("round %d %s%s: status %q, want %s", i, c.host, c.path, s, c.status)
			}
		}
	}
	if _, b := post("ok.test", "/"); b != fmt.Sprint(256<<10) {
		t.Fatalf("last upload: %q", b)
	}
}

// HEAD keeps the upstream's Content-Length and sends no body.
func TestH2HeadKeepsContentLength(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "12345")
		if r.Method != "HEAD" {
			w.Write(make([]byte, 12345))
		}
	}))
	env := h2Start(t, HTTPConfig{}, be.addr())
	resp, err := h2cClient().Head(env.h2cURL("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != 12345 {
		t.Fatalf("%d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
}

// Expect: 100-continue from an HTTP/2 client: the HTTP/1.1 upstream's 100
// Continue comes back as an interim HEADERS, then the body goes.
func TestH2Expect100Continue(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body) // net/http sends 100 Continue here
		fmt.Fprintf(w, "got %q", b)
	}))
	env := h2Start(t, HTTPConfig{}, be.addr())
	r := rawH2Dial(t, env.addr, false)
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true,
		BlockFragment: r.block(":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/",
			"expect", "100-continue", "content-length", "4")})
	var statuses []string
	body := ""
	for done := false; !done; {
		f, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			statuses = append(statuses, f.PseudoValue("status"))
			if f.PseudoValue("status") == "100" {
				r.fr.WriteData(1, true, []byte("body"))
			}
		case *http2.DataFrame:
			body += string(f.Data())
			done = f.StreamEnded()
		}
	}
	if strings.Join(statuses, ",") != "100,200" || body != `got "body"` {
		t.Fatalf("statuses %v body %q", statuses, body)
	}
}

// finalFields reuses the previous translation only for the very same head
// bytes and body framing, and translates anything else afresh.
func TestH2FinalFieldsCache(t *testing.T) {
	h, err := NewHTTP(HTTPConfig{Routes: []Route{{PathPrefix: "/", Upstreams: []string{"http://127.0.0.1:1"}}}}, NewMetrics(metrics.NewSet()))
	if err != nil {
		t.Fatal(err)
	}
	hc := &h2Conn{h: h}
	translate := func(raw string, mc h1.MethodClass) []hpack.HeaderField {
		t.Helper()
		var p h1.Parser
		var resp h1.Response
		resp.Reset()
		b := []byte(raw)
		n, err := p.ParseResponse(&resp, b, mc)
		if err != nil || n != len(b) {
			t.Fatalf("parse %q: %d, %v", raw, n, err)
		}
		return hc.finalFields(&resp, b)
	}
	str := func(f []hpack.HeaderField) string {
		var sb strings.Builder
		for _, x := range f {
			fmt.Fprintf(&sb, "%s: %s\n", x.Name, x.Value)
		}
		return sb.String()
	}
	a := "HTTP/1.1 200 OK\r\nServer: a\r\nDate: d1\r\nContent-Length: 2\r\n\r\n"
	want := ":status: 200\nserver: a\ndate: d1\ncontent-length: 2\nvia: 1.1 sluice\n"
	if got := str(translate(a, h1.MethodOther)); got != want {
		t.Fatalf("first translation:\n%s\nwant\n%s", got, want)
	}
	f := translate(a, h1.MethodOther)
	if str(f) != want || &f[0] != &hc.lastHF[0] {
		t.Fatalf("the same head again was not served from the cache:\n%s", str(f))
	}
	b := strings.Replace(a, "d1", "d2", 1)
	if got := str(translate(b, h1.MethodOther)); got != strings.Replace(want, "d1", "d2", 1) {
		t.Fatalf("a new Date was not translated:\n%s", got)
	}
	// Same bytes, other framing (HEAD): translated again, not reused.
	translate(b, h1.MethodOther)
	if f := translate(b, h1.MethodHEAD); &f[0] == &hc.lastHF[0] {
		t.Fatal("a HEAD response reused the GET translation (another body framing)")
	}
	if hc.lastBody != h1.BodyNone {
		t.Fatalf("cache keyed on body kind %v after a HEAD response, want none", hc.lastBody)
	}
	// A head longer than maxCachedHead is never cached.
	big := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("v", maxCachedHead) + "\r\nContent-Length: 0\r\n\r\n"
	translate(big, h1.MethodOther)
	if hc.lastOK {
		t.Fatal("a head over maxCachedHead was cached")
	}
}

// Interim responses carry Via like final ones (RFC 9110 §7.6.3: in each
// message forwarded), from an HTTP/1.1 and from an h2c upstream; toward
// HTTP/2 clients they used to go without it.
func TestH2InterimResponsesCarryVia(t *testing.T) {
	h1Up := hpRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readBlock(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	h2Up := h2cServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</s.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "ok")
	}))
	for _, tc := range []struct{ up, via string }{{h1Up, "1.1 sluice"}, {h2Up.url(), "2.0 sluice"}} {
		env := h2Start(t, HTTPConfig{}, tc.up)
		r := rawH2Dial(t, env.tlsAddr, true)
		r.get(1, "/hints")
		var heads []map[string]string
		for done := false; !done; {
			f, err := r.next()
			if err != nil {
				t.Fatalf("%s: %v", tc.up, err)
			}
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				m := map[string]string{}
				for _, hf := range f.Fields {
					m[hf.Name] = hf.Value
				}
				heads = append(heads, m)
				done = f.StreamEnded()
			case *http2.DataFrame:
				done = f.StreamEnded()
			case *http2.RSTStreamFrame:
				t.Fatalf("%s: reset %v", tc.up, f.ErrCode)
			}
		}
		if len(heads) != 2 || heads[0][":status"] != "103" || heads[1][":status"] != "200" {
			t.Fatalf("%s: heads %v, want 103 then 200", tc.up, heads)
		}
		if heads[0]["link"] == "" || heads[0]["via"] != tc.via || heads[1]["via"] != tc.via {
			t.Errorf("%s: 103 %v, 200 %v: want via %q on both", tc.up, heads[0], heads[1], tc.via)
		}
	}
}
