package proxy

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestHTTPGetThroughProxy(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s %s", r.Method, r.URL.RequestURI())
	}))
	env := hpStart(t, HTTPConfig{}, be.addr())
	resp, err := hpClient().Get(env.url("/a/b?c=d"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello GET /a/b?c=d" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if v := resp.Header.Get("Via"); v != "1.1 sluice" {
		t.Errorf("response Via = %q", v)
	}
}

// Sequential requests on one client connection reuse one upstream
// connection; concurrent clients need no more upstream connections than
// requests in flight.
func TestHTTPKeepAliveReuse(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	env := hpStart(t, HTTPConfig{}, be.addr())
	cl := hpClient()
	var clientConns int
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if !i.Reused {
			clientConns++
		}
	}}
	for i := 0; i < 50; i++ {
		req, _ := http.NewRequest("GET", env.url("/"), nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if clientConns != 1 {
		t.Errorf("client connections = %d, want 1", clientConns)
	}
	if n := be.conns.Load(); n != 1 {
		t.Errorf("upstream connections = %d, want 1 (keep-alive reuse)", n)
	}
	// 8 concurrent clients × 20 requests: at most 8 upstream connections
	// per loop could ever be needed.
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := hpClient()
			for i := 0; i < 20; i++ {
				resp, err := c.Get(env.url("/"))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if n := be.conns.Load(); n > 1+8*2 {
		t.Errorf("upstream connections = %d after 160 concurrent requests; pooling is not reusing", n)
	}
	if v := env.metric(`sluice_upstream_requests_total{upstream="` + be.addr() + `",result="ok"}`); v != 210 {
		t.Errorf("upstream ok results = %v, want 210", v)
	}
	if v := env.metric(`sluice_http_requests_total{proto="http/1.1",code="200"}`); v != 210 {
		t.Errorf("requests 200 = %v, want 210", v)
	}
	hpSettled(t, env)
	if v := env.metric(`sluice_upstream_pool_connections{upstream="` + be.addr() + `",state="idle"}`); v < 1 {
		t.Errorf("idle pooled connections = %v after the load, want ≥ 1", v)
	}
}

// Chunked both ways: a chunked request body reaches the upstream whole,
// and a chunked (streamed) response reaches the client whole.
func TestHTTPChunkedBothWays(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) != 1 || r.TransferEncoding[0] != "chunked" {
			http.Error(w, fmt.Sprintf("request TE = %v, CL = %d", r.TransferEncoding, r.ContentLength), 400)
			return
		}
		data, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("X-Trailer-In", r.Trailer.Get("X-Sum"))
		// Flushing forces a chunked response.
		for i := 0; i < 4; i++ {
			w.Write(data)
			w.(http.Flusher).Flush()
		}
	}))
	env := hpStart(t, HTTPConfig{}, be.addr())
	payload := bytes.Repeat([]byte("chunky"), 5000)
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(payload); i += 7000 {
			pw.Write(payload[i:min(i+7000, len(payload))])
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", env.url("/echo"), pr)
	req.Trailer = http.Header{"X-Sum": nil}
	go func() {}()
	req.Trailer.Set("X-Sum", "abc")
	resp, err := hpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	if len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("response TE = %v", resp.TransferEncoding)
	}
	if !bytes.Equal(got, bytes.Repeat(payload, 4)) {
		t.Fatalf("body: %d bytes, want %d", len(got), 4*len(payload))
	}
}

// Expect: 100-continue is passed through: the upstream's 100 reaches the
// client, which then sends the body.
func TestHTTPExpectContinue(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Expect") != "100-continue" {
			http.Error(w, "no expect", 400)
			return
		}
		data, _ := io.ReadAll(r.Body) // net/http sends 100 Continue here
		w.Write(data)
	}))
	env := hpStart(t, HTTPConfig{}, be.addr())
	c, br := hpRaw(t, env.addr)
	io.WriteString(c, "PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line %q, %v; want 100 Continue", line, err)
	}
	if l, _ := br.ReadString('\n'); l != "\r\n" {
		t.Fatalf("after 100: %q", l)
	}
	io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	// And with net/http's client, which waits for the 100.
	req, _ := http.NewRequest("PUT", env.url("/up"), strings.NewReader("world"))
	req.Header.Set("Expect", "100-continue")
	cl := hpClient()
	cl.Transport.(*http.Transport).ExpectContinueTimeout = 5e9
	resp, err = cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "world" {
		t.Fatalf("net/http: got %d %q", resp.StatusCode, body)
	}
}

// Ten pipelined requests on one raw connection are answered in order.
func TestHTTPPipelining(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s:%s", r.URL.Path, b)
			return
		}
		io.WriteString(w, r.URL.Path)
	}))
	env := hpStart(t, HTTPConfig{}, be.addr())
	c, br := hpRaw(t, env.addr)
	var all strings.Builder
	for i := 0; i < 10; i++ {
		if i%3 == 1 {
			fmt.Fprintf(&all, "POST /r%d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nb%02d", i, i)
		} else {
			fmt.Fprintf(&all, "GET /r%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		}
	}
	if _, err := io.WriteString(c, all.String()); err != nil { // one write: all ten arrive together
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		want := fmt.Sprintf("/r%d", i)
		if i%3 == 1 {
			want += fmt.Sprintf(":b%02d", i)
		}
		if string(body) != want {
			t.Fatalf("response %d = %q, want %q", i, body, want)
		}
	}
}

// 10 MiB up and 10 MiB down, compared by sha256.
func TestHTTPLargeBodies(t *testing.T) {
	const size = 10 << 20
	down := make([]byte, size)
	rand.Read(down)
	downSum := sha256.Sum256(down)
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" {
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(down)
	}))
	env := hpStart(t, HTTPConfig{}, be.addr())
	cl := hpClient()
	resp, err := cl.Get(env.url("/down"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || !bytes.Equal(h.Sum(nil), downSum[:]) {
		t.Fatalf("download: %d bytes, err %v, sha256 match %v", n, err, bytes.Equal(h.Sum(nil), downSum[:]))
	}
	up := make([]byte, size)
	rand.Read(up)
	upSum := sha256.Sum256(up)
	req, _ := http.NewRequest("PUT", env.url("/up"), bytes.NewReader(up))
	resp, err = cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%d %x", size, upSum); string(body) != want {
		t.Fatalf("upload: upstream saw %q, want %q", body, want)
	}
	// Chunked upload of the same bytes (unknown length).
	req, _ = http.NewRequest("PUT", env.url("/up"), io.MultiReader(bytes.NewReader(up)))
	resp, err = cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%d %x", size, upSum); string(body) != want {
		t.Fatalf("chunked upload: upstream saw %q, want %q", body, want)
	}
}
