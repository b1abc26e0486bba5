package h1_test

import (
	"fmt"
	"testing"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

func TestAppendHeads(t *testing.T) {
	b := h1.AppendRequestLine(nil, "GET", []byte("/x?y"), 1)
	b = h1.AppendHeader(b, "Host", "example.com")
	b = h1.AppendContentLength(b, 1234567)
	b = h1.AppendEndOfHead(b)
	if want := "GET /x?y HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1234567\r\n\r\n"; string(b) != want {
		t.Errorf("request head %q", b)
	}
	b = h1.AppendStatusLine(nil, 0, 404, h1.StatusText(404))
	if string(b) != "HTTP/1.0 404 Not Found\r\n" {
		t.Errorf("status line %q", b)
	}
	b = h1.AppendStatusLine(nil, 1, 599, "")
	if string(b) != "HTTP/1.1 599 \r\n" {
		t.Errorf("status line without reason %q", b)
	}
	for _, code := range []int{100, 101, 200, 204, 206, 301, 304, 400, 404, 413, 414, 431, 500, 501, 502, 503, 504} {
		if h1.StatusText(code) == "" {
			t.Errorf("no reason for %d", code)
		}
	}
	if h1.StatusText(299) != "" {
		t.Error("unregistered code has a reason")
	}
}

func TestValidators(t *testing.T) {
	if !h1.ValidFieldName("X-Forwarded-For") || h1.ValidFieldName("") || h1.ValidFieldName("a b") || h1.ValidFieldName([]byte("a:b")) {
		t.Error("ValidFieldName")
	}
	if !h1.ValidFieldValue("a\tb c") || !h1.ValidFieldValue("") || h1.ValidFieldValue("a\r\nb") || h1.ValidFieldValue(" a") || h1.ValidFieldValue("a\x00") {
		t.Error("ValidFieldValue")
	}
	if !h1.ValidMethod("PATCH") || h1.ValidMethod("GE T") {
		t.Error("ValidMethod")
	}
}

func TestHopByHopRewrite(t *testing.T) {
	in := []byte(crlf("GET /a HTTP/1.1\n" +
		"Host: example.com\n" +
		"Connection: keep-alive, X-Private, Content-Length, host\n" +
		"Keep-Alive: timeout=5\n" +
		"Proxy-Connection: keep-alive\n" +
		"TE: trailers\n" +
		"Trailer: X-Sum\n" +
		"Upgrade: h2c\n" +
		"x-private: secret\n" +
		"Accept: */*\n" +
		"Content-Length: 0\n" +
		"content-length: 0\n\n"))
	var p h1.Parser
	var r h1.Request
	_, err := p.ParseRequest(&r, in)
	mustNil(t, err)
	for name, want := range map[string]bool{
		"connection": true, "Keep-Alive": true, "proxy-connection": true, "te": true, "trailer": true,
		"Transfer-Encoding": true, "upgrade": true, "X-PRIVATE": true,
		"Host": false, "Content-Length": false, "Accept": false,
	} {
		if got := r.Headers.IsHopByHop([]byte(name)); got != want {
			t.Errorf("IsHopByHop(%s) = %v", name, got)
		}
	}
	out := h1.AppendRequestLine(nil, r.Method, r.Target, 1)
	out = h1.AppendEndToEnd(out, &r.Headers)
	out = h1.AppendHeader(out, "Via", "1.1 sluice")
	out = h1.AppendEndOfHead(out)
	want := crlf("GET /a HTTP/1.1\nHost: example.com\nAccept: */*\nContent-Length: 0\nVia: 1.1 sluice\n\n")
	if string(out) != want {
		t.Errorf("rewritten head:\n%s\nwant:\n%s", out, want)
	}
}

// Example shows a proxy's whole exchange on one connection pair: parse the
// request head, rewrite it for upstream, stream the body, parse the
// response head and stream its body back.
func Example() {
	var (
		p        h1.Parser
		req      h1.Request
		resp     h1.Response
		dec      h1.BodyDecoder
		upstream []byte
	)
	client := []byte("POST /api HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive\r\nContent-Length: 4\r\n\r\nping")

	n, err := p.ParseRequest(&req, client) // 1. request head
	if err != nil {
		return // answer h1.StatusFor(err), close
	}
	upstream = h1.AppendRequestLine(upstream, req.Method, req.Target, 1) // 2. rewrite
	upstream = h1.AppendEndToEnd(upstream, &req.Headers)
	upstream = h1.AppendHeader(upstream, "Via", "1.1 sluice")
	upstream = h1.AppendEndOfHead(upstream)
	dec.ForRequest(&req) // 3. stream the body
	for buf := client[n:]; !dec.Done(); {
		data, k, err := dec.Decode(buf)
		if err != nil {
			return // ErrNeedMore: wait for bytes; else 400 and close
		}
		upstream = append(upstream, data...)
		buf = buf[k:]
	}
	fmt.Printf("%q\n", upstream)

	server := []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npong\r\n0\r\n\r\n")
	n, err = p.ParseResponse(&resp, server, req.MethodClass()) // 4. response head
	if err != nil {
		return // answer 502, close upstream
	}
	down := h1.AppendStatusLine(nil, 1, resp.Status, resp.Reason)
	down = h1.AppendEndToEnd(down, &resp.Headers)
	down = h1.AppendHeader(down, "Transfer-Encoding", "chunked")
	down = h1.AppendEndOfHead(down)
	dec.ForResponse(&resp) // 5. stream the response body, re-chunked
	for buf := server[n:]; !dec.Done(); {
		data, k, err := dec.Decode(buf)
		if err != nil {
			return
		}
		down = h1.AppendChunk(down, data)
		buf = buf[k:]
	}
	down = h1.AppendLastChunk(down, dec.Trailers())
	fmt.Printf("%q\n", down)
	// Output:
	// "POST /api HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\nVia: 1.1 sluice\r\n\r\nping"
	// "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npong\r\n0\r\n\r\n"
}

func TestAppendEndToEndManyConnectionLines(t *testing.T) {
	in := crlf("GET / HTTP/1.1\nHost: a\nConnection: a\nConnection: b\nConnection: c\nConnection: d\nConnection: e\n" +
		"A: 1\nB: 2\nE: 5\nF: 6\n\n")
	var p h1.Parser
	var r h1.Request
	_, err := p.ParseRequest(&r, []byte(in))
	mustNil(t, err)
	if got := string(h1.AppendEndToEnd(nil, &r.Headers)); got != "Host: a\r\nF: 6\r\n" {
		t.Errorf("got %q", got)
	}
}
