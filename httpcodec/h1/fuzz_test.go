package h1_test

import (
	"bufio"
	"bytes"
	"io"
	"maps"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// maxFuzzInput keeps inputs inside one bufio buffer for net/http and well
// below the point where net/http's chunked reader applies its own
// "too much non-data" budget (16 KiB), which sluice does not have.
const maxFuzzInput = 16 << 10

// requestSeeds are the inputs of the table tests plus requests built with
// our own encoders.
func requestSeeds() []string {
	seeds := []string{browserRequest}
	for _, c := range requestCases {
		seeds = append(seeds, crlf(c.in))
	}
	for _, c := range smugglingCases {
		seeds = append(seeds, c.in)
	}
	var h h1.Headers
	h.Add([]byte("X-Sum"), []byte("1"))
	b := h1.AppendRequestLine(nil, "POST", "/up?x=%41", 1)
	b = h1.AppendHeader(b, "Host", "example.com:8080")
	b = h1.AppendHeader(b, "Transfer-Encoding", "chunked")
	b = h1.AppendHeader(b, "Trailer", "X-Sum")
	b = h1.AppendEndOfHead(b)
	b = h1.AppendChunk(b, []byte("hello"))
	b = h1.AppendLastChunk(b, &h)
	seeds = append(seeds, string(b))
	b = h1.AppendRequestLine(nil, "PUT", "http://a.example/x", 0)
	b = h1.AppendHeader(b, "Connection", "keep-alive")
	b = h1.AppendContentLength(b, 3)
	b = h1.AppendHeader(b, "Pragma", "no-cache")
	b = h1.AppendEndOfHead(b)
	seeds = append(seeds, string(b)+"abcGET / HTTP/1.1\r\nHost: b\r\n\r\n")
	return seeds
}

// FuzzRequest checks sluice against net/http's ReadRequest: what sluice
// accepts (head and body) net/http must accept and read the same way.
// sluice rejecting what net/http accepts is fine: it is meant to be stricter.
func FuzzRequest(f *testing.F) {
	for _, s := range requestSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { compareWithNetHTTP(t, data) })
}

// compareWithNetHTTP is FuzzRequest's property. It reports whether sluice
// accepted the whole message, so that the two parsers were compared.
func compareWithNetHTTP(t *testing.T, data []byte) bool {
	if len(data) > maxFuzzInput {
		return false
	}
	{
		var p h1.Parser
		var r h1.Request
		n, err := p.ParseRequest(&r, data)
		if err != nil {
			if err != h1.ErrNeedMore && h1.StatusFor(err) < 400 {
				t.Fatalf("error %v without a 4xx/5xx status", err)
			}
			return false
		}
		// Resuming after a short prefix gives the same head.
		var p2 h1.Parser
		var r2 h1.Request
		if _, err := p2.ParseRequest(&r2, data[:n/2]); err != h1.ErrNeedMore && n > 1 {
			t.Fatalf("prefix: %v", err)
		}
		if n2, err := p2.ParseRequest(&r2, data); err != nil || n2 != n || reqSummary(&r2) != reqSummary(&r) {
			t.Fatalf("resumed parse differs: %v", err)
		}

		var d h1.BodyDecoder
		d.ForRequest(&r)
		body, _, k, err := decodeAll(&d, data[n:], false)
		if err != nil {
			return false // sluice rejects the body, or it is incomplete
		}
		trailers := map[string][]string{}
		for _, f := range d.Trailers().Fields() {
			key := http.CanonicalHeaderKey(string(f.Name))
			trailers[key] = append(trailers[key], string(f.Value))
		}

		br := bufio.NewReaderSize(bytes.NewReader(data), 2*maxFuzzInput)
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("sluice accepted, net/http rejected: %v\n%q", err, data)
		}
		stdBody, err := io.ReadAll(req.Body)
		if err != nil {
			t.Fatalf("sluice accepted the body, net/http rejected it: %v\n%q", err, data)
		}
		if consumed := len(data) - br.Buffered(); consumed != n+k {
			t.Fatalf("message length: sluice %d, net/http %d\n%q", n+k, consumed, data)
		}

		if req.Method != string(r.Method) || req.RequestURI != string(r.Target) ||
			req.ProtoMajor != 1 || req.ProtoMinor != r.Minor {
			t.Fatalf("request line: net/http %q %q %q\n%s", req.Method, req.RequestURI, req.Proto, reqSummary(&r))
		}
		wantHost := string(r.Host)
		if r.Authority != nil {
			wantHost = string(r.Authority)
		}
		if req.Host != wantHost {
			t.Fatalf("host: net/http %q, sluice %q", req.Host, wantHost)
		}
		if got := sluiceHeaderMap(&r); !maps.EqualFunc(got, req.Header, slices.Equal) {
			t.Fatalf("fields:\nsluice  %q\nnet/http %q", got, req.Header)
		}
		if req.Close != r.Close {
			t.Fatalf("keep-alive: net/http close=%v, sluice close=%v", req.Close, r.Close)
		}
		wantCL := r.ContentLength
		if r.Body == h1.BodyNone {
			wantCL = 0
		}
		if req.ContentLength != wantCL || !bytes.Equal(stdBody, body) {
			t.Fatalf("body: net/http cl=%d %q, sluice cl=%d %q", req.ContentLength, stdBody, wantCL, body)
		}
		stdTrailers := map[string][]string{}
		for key, v := range req.Trailer {
			if v != nil {
				stdTrailers[key] = v
			}
		}
		if !maps.EqualFunc(trailers, stdTrailers, slices.Equal) {
			t.Fatalf("trailers: sluice %q, net/http %q", trailers, stdTrailers)
		}
	}
	return true
}

// TestDifferentialEdgeCases runs hand-picked corners of the request-target
// and Host grammars, which random mutation rarely builds, through the same
// comparison with net/http, and checks that sluice accepts them.
func TestDifferentialEdgeCases(t *testing.T) {
	accepted := []string{
		"GET http://a!$&'()*+,;=b.example/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://[::ffff:1.2.3.4]:0/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET https://a_b~c.example:00080/p?q HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET HTTP://A.EXAMPLE?x HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n",
		"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
		"GET //a//b/./../c?%7e HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /:@!$&'()*+,;=-._~%2F?/?:@ HTTP/1.1\r\nHost: a.b.c:1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: 127.0.0.1:65535\r\nConnection: Close\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: x, KEEP-ALIVE\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\nTrailer: X-A, X-B\r\n\r\n" +
			"1;a=\"\\\"\"\r\nx\r\n0\r\nX-A: 1\r\nx-b: 2\r\nX-C: 3\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 00\r\nContent-Length: 00\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\nX:\t \tv\t \r\nY:\r\n\r\n",
	}
	for _, in := range accepted {
		var p h1.Parser
		var r h1.Request
		if _, err := p.ParseRequest(&r, []byte(in)); err != nil {
			t.Errorf("%q: %v", in, err)
		}
		if !compareWithNetHTTP(t, []byte(in)) {
			t.Errorf("%q: not compared", in)
		}
	}
}

// sluiceHeaderMap renders r's fields the way net/http's ReadRequest leaves
// req.Header: canonical keys, Host removed, framing fields it consumes
// removed, duplicate Content-Length collapsed, Pragma: no-cache implying
// Cache-Control: no-cache.
func sluiceHeaderMap(r *h1.Request) map[string][]string {
	m := map[string][]string{}
	for _, f := range r.Headers.Fields() {
		key := http.CanonicalHeaderKey(string(f.Name))
		m[key] = append(m[key], string(f.Value))
	}
	delete(m, "Host")
	if r.Body == h1.BodyChunked {
		delete(m, "Transfer-Encoding")
		delete(m, "Trailer")
	}
	if cl := m["Content-Length"]; len(cl) > 1 {
		m["Content-Length"] = cl[:1]
	}
	if p := m["Pragma"]; len(p) > 0 && p[0] == "no-cache" && m["Cache-Control"] == nil {
		m["Cache-Control"] = []string{"no-cache"}
	}
	return m
}

// FuzzChunked checks the chunked decoder against net/http's
// httputil.NewChunkedReader, round-trips the body and trailers through the
// chunked encoder, and checks that splitting the input anywhere changes
// nothing.
func FuzzChunked(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("5;a=b;c=\"d\\\"\"\r\nhello\r\n0\r\nT: 1\r\n\r\n"))
	f.Add(h1.AppendLastChunk(h1.AppendChunk(h1.AppendChunk(nil, []byte("abc")), bytes.Repeat([]byte("z"), 300)), nil))
	for _, c := range smugglingCases {
		if _, rest, ok := strings.Cut(c.in, "chunked\r\n\r\n"); ok {
			f.Add([]byte(rest))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		var d h1.BodyDecoder
		d.Reset(h1.BodyChunked, -1)
		body, trailers, k, err := decodeAll(&d, data, false)
		if err != nil {
			return
		}
		std, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(data[:k])))
		if err != nil {
			t.Fatalf("sluice accepted, net/http rejected: %v\n%q", err, data[:k])
		}
		if !bytes.Equal(std, body) {
			t.Fatalf("body: sluice %q, net/http %q", body, std)
		}
		// Round trip: re-encode what was decoded, decode it again.
		var re []byte
		d.Reset(h1.BodyChunked, -1)
		for buf := data[:k]; !d.Done(); {
			piece, n, err := d.Decode(buf)
			if err != nil {
				t.Fatalf("second decode: %v", err)
			}
			re = h1.AppendChunk(re, piece)
			buf = buf[n:]
		}
		re = h1.AppendLastChunk(re, d.Trailers())
		var d2 h1.BodyDecoder
		d2.Reset(h1.BodyChunked, -1)
		body2, trailers2, k2, err := decodeAll(&d2, re, false)
		if err != nil || k2 != len(re) || !bytes.Equal(body2, body) || trailers2 != trailers {
			t.Fatalf("round trip: %v\n%q\n%q", err, data[:k], re)
		}

		split := 0
		if len(data) > 0 {
			split = int(data[len(data)-1]) * k / 256
		}
		d.Reset(h1.BodyChunked, -1)
		b1, _, n1, err := decodeAll(&d, data[:split], false)
		if err != nil && err != h1.ErrNeedMore {
			t.Fatalf("prefix %d: %v", split, err)
		}
		b2, t2, n2, err := decodeAll(&d, data[n1:], false)
		if err != nil || n1+n2 != k || !bytes.Equal(append(b1, b2...), body) || t2 != trailers {
			t.Fatalf("split at %d: %v", split, err)
		}
	})
}

// FuzzRoundTrip parses, serializes with the encoders, and parses again:
// both parses must agree, for requests and for responses.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range requestSeeds() {
		f.Add([]byte(s))
	}
	f.Add([]byte(typicalResponseHead))
	f.Add([]byte("HTTP/1.0 404\r\nX:  a b \r\nConnection: keep-alive\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p h1.Parser
		var r1, r2 h1.Request
		if _, err := p.ParseRequest(&r1, data); err == nil {
			out := h1.AppendRequestHead(nil, &r1)
			n, err := p.ParseRequest(&r2, out)
			if err != nil || n != len(out) || reqSummary(&r1) != reqSummary(&r2) {
				t.Fatalf("request round trip: %v\n%s\n%s", err, reqSummary(&r1), reqSummary(&r2))
			}
		}
		var s1, s2 h1.Response
		if _, err := p.ParseResponse(&s1, data, h1.MethodOther); err == nil {
			out := h1.AppendResponseHead(nil, &s1)
			n, err := p.ParseResponse(&s2, out, h1.MethodOther)
			if err != nil || n != len(out) || respSummary(&s1) != respSummary(&s2) {
				t.Fatalf("response round trip: %v\n%s\n%s", err, respSummary(&s1), respSummary(&s2))
			}
		}
	})
}

// FuzzResponse checks response parsing against net/http's ReadResponse for
// a GET: what sluice accepts, net/http reads the same way.
func FuzzResponse(f *testing.F) {
	f.Add([]byte(typicalResponseHead))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\nuntil close"))
	f.Add([]byte("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n"))
	f.Add(appendTypicalResponseHead(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		var p h1.Parser
		var r h1.Response
		n, err := p.ParseResponse(&r, data, h1.MethodOther)
		if err != nil {
			return
		}
		var d h1.BodyDecoder
		d.ForResponse(&r)
		body, _, k, err := decodeAll(&d, data[n:], true)
		if err != nil {
			return
		}
		br := bufio.NewReaderSize(bytes.NewReader(data), 2*maxFuzzInput)
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("sluice accepted, net/http rejected: %v\n%q", err, data)
		}
		stdBody, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("sluice accepted the body, net/http rejected it: %v\n%q", err, data)
		}
		if consumed := len(data) - br.Buffered(); consumed != n+k {
			t.Fatalf("message length: sluice %d, net/http %d\n%q", n+k, consumed, data)
		}
		if resp.StatusCode != r.Status || resp.ProtoMinor != r.Minor || !bytes.Equal(stdBody, body) {
			t.Fatalf("net/http %d 1.%d %q; sluice %d 1.%d %q", resp.StatusCode, resp.ProtoMinor, stdBody, r.Status, r.Minor, body)
		}
		if resp.Close != r.Close {
			t.Fatalf("close: net/http %v, sluice %v\n%q", resp.Close, r.Close, data)
		}
	})
}
