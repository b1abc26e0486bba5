package h1_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

type reqWant struct {
	method, target string
	form           h1.TargetForm
	minor          int
	body           h1.BodyKind
	cl             int64
	close          bool
	expect, upg    bool
	host, auth     string
	fields         int
}

var requestCases = []struct {
	name string
	in   string
	want reqWant
}{
	{"RFC9112 3.2.1 origin-form", "GET /where?q=now HTTP/1.1\nHost: www.example.org\n\n",
		reqWant{"GET", "/where?q=now", h1.OriginForm, 1, h1.BodyNone, -1, false, false, false, "www.example.org", "", 1}},
	{"RFC9112 3.2.2 absolute-form", "GET http://www.example.org/pub/WWW/TheProject.html HTTP/1.1\nHost: www.example.org\n\n",
		reqWant{"GET", "http://www.example.org/pub/WWW/TheProject.html", h1.AbsoluteForm, 1, h1.BodyNone, -1, false, false, false, "www.example.org", "www.example.org", 1}},
	{"RFC9112 3.2.3 authority-form", "CONNECT www.example.com:80 HTTP/1.1\nHost: www.example.com:80\n\n",
		reqWant{"CONNECT", "www.example.com:80", h1.AuthorityForm, 1, h1.BodyNone, -1, false, false, false, "www.example.com:80", "www.example.com:80", 1}},
	{"RFC9112 3.2.4 asterisk-form", "OPTIONS * HTTP/1.1\nHost: www.example.org:8001\n\n",
		reqWant{"OPTIONS", "*", h1.AsteriskForm, 1, h1.BodyNone, -1, false, false, false, "www.example.org:8001", "", 1}},
	{"RFC9112 3.2.2 absolute-form with query and port", "GET https://[2001:db8::1]:8443/?x=1 HTTP/1.1\nHost: h\n\n",
		reqWant{"GET", "https://[2001:db8::1]:8443/?x=1", h1.AbsoluteForm, 1, h1.BodyNone, -1, false, false, false, "h", "[2001:db8::1]:8443", 1}},
	{"RFC9110 10.1.1 Expect", "PUT /somewhere/fun HTTP/1.1\nHost: origin.example.com\nContent-Type: video/h264\nContent-Length: 1234567890987\nExpect: 100-continue\n\n",
		reqWant{"PUT", "/somewhere/fun", h1.OriginForm, 1, h1.BodyLength, 1234567890987, false, true, false, "origin.example.com", "", 4}},
	{"RFC9110 7.8 Upgrade", "GET /hello HTTP/1.1\nHost: www.example.com\nConnection: upgrade\nUpgrade: websocket\n\n",
		reqWant{"GET", "/hello", h1.OriginForm, 1, h1.BodyNone, -1, false, false, true, "www.example.com", "", 3}},
	{"upgrade without connection option", "GET / HTTP/1.1\nHost: a\nUpgrade: websocket\n\n",
		reqWant{"GET", "/", h1.OriginForm, 1, h1.BodyNone, -1, false, false, false, "a", "", 2}},
	{"RFC9110 7.8 Upgrade ignored in HTTP/1.0", "GET / HTTP/1.0\nConnection: upgrade, keep-alive\nUpgrade: websocket\n\n",
		reqWant{"GET", "/", h1.OriginForm, 0, h1.BodyNone, -1, false, false, false, "", "", 2}},
	{"RFC9110 10.1.1 Expect ignored in HTTP/1.0", "POST / HTTP/1.0\nExpect: 100-continue\nContent-Length: 1\n\n",
		reqWant{"POST", "/", h1.OriginForm, 0, h1.BodyLength, 1, true, false, false, "", "", 2}},
	{"chunked", "POST /upload HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n",
		reqWant{"POST", "/upload", h1.OriginForm, 1, h1.BodyChunked, -1, false, false, false, "a", "", 2}},
	{"chunked case-insensitive, OWS", "POST / HTTP/1.1\nHost: a\nTransfer-Encoding:  Chunked \n\n",
		reqWant{"POST", "/", h1.OriginForm, 1, h1.BodyChunked, -1, false, false, false, "a", "", 2}},
	{"identical Content-Length lines collapse", "POST / HTTP/1.1\nHost: a\nContent-Length: 3\nContent-Length: 3\n\n",
		reqWant{"POST", "/", h1.OriginForm, 1, h1.BodyLength, 3, false, false, false, "a", "", 3}},
	{"Content-Length leading zeros", "POST / HTTP/1.1\nHost: a\nContent-Length: 007\n\n",
		reqWant{"POST", "/", h1.OriginForm, 1, h1.BodyLength, 7, false, false, false, "a", "", 2}},
	{"Content-Length zero", "POST / HTTP/1.1\nHost: a\nContent-Length: 0\n\n",
		reqWant{"POST", "/", h1.OriginForm, 1, h1.BodyLength, 0, false, false, false, "a", "", 2}},
	{"HTTP/1.0 default close", "GET / HTTP/1.0\n\n",
		reqWant{"GET", "/", h1.OriginForm, 0, h1.BodyNone, -1, true, false, false, "", "", 0}},
	{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\nConnection: Keep-Alive\n\n",
		reqWant{"GET", "/", h1.OriginForm, 0, h1.BodyNone, -1, false, false, false, "", "", 1}},
	{"HTTP/1.1 close", "GET / HTTP/1.1\nHost: a\nConnection: foo, close\n\n",
		reqWant{"GET", "/", h1.OriginForm, 1, h1.BodyNone, -1, true, false, false, "a", "", 2}},
	{"close wins over keep-alive", "GET / HTTP/1.0\nConnection: keep-alive\nConnection: close\n\n",
		reqWant{"GET", "/", h1.OriginForm, 0, h1.BodyNone, -1, true, false, false, "", "", 2}},
	{"empty Host allowed", "GET / HTTP/1.1\nHost:\n\n",
		reqWant{"GET", "/", h1.OriginForm, 1, h1.BodyNone, -1, false, false, false, "", "", 1}},
	{"extension method, obs-text value", "PROPFIND /d/ HTTP/1.1\nHost: a\nX-Name: caf\xc3\xa9\tx\n\n",
		reqWant{"PROPFIND", "/d/", h1.OriginForm, 1, h1.BodyNone, -1, false, false, false, "a", "", 2}},
	{"lenient target characters", "GET /a|b/{c}?q=^`%20 HTTP/1.1\nHost: a\n\n",
		reqWant{"GET", "/a|b/{c}?q=^`%20", h1.OriginForm, 1, h1.BodyNone, -1, false, false, false, "a", "", 1}},
}

func TestParseRequestTable(t *testing.T) {
	for _, tt := range requestCases {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(crlf(tt.in))
			var p h1.Parser
			var r h1.Request
			n, err := p.ParseRequest(&r, in)
			mustNil(t, err)
			if n != len(in) {
				t.Errorf("n = %d, want %d", n, len(in))
			}
			got := reqWant{string(r.Method), string(r.Target), r.Form, r.Minor, r.Body, r.ContentLength,
				r.Close, r.Expect100, r.Upgrade, string(r.Host), string(r.Authority), r.Headers.Len()}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestHeaderLookup(t *testing.T) {
	var p h1.Parser
	var r h1.Request
	_, err := p.ParseRequest(&r, []byte(browserRequest))
	mustNil(t, err)
	h := &r.Headers
	if got := string(h.Get("user-agent")); !strings.HasPrefix(got, "Mozilla/5.0") {
		t.Errorf("Get(user-agent) = %q", got)
	}
	if h.Get("x-missing") != nil || h.Has("x-missing") {
		t.Error("missing field found")
	}
	if !h.HasToken("accept-encoding", "BR") || h.HasToken("accept-encoding", "b") {
		t.Error("HasToken")
	}
	if i := h.Index("sec-fetch-mode", 0); i < 0 || string(h.Fields()[i].Value) != "no-cors" {
		t.Errorf("Index = %d", i)
	}
	// Field values are sub-slices of the input, not copies.
	in := []byte(browserRequest)
	_, err = p.ParseRequest(&r, in)
	mustNil(t, err)
	in[bytes.Index(in, []byte("www.example.com"))] = 'W'
	if string(r.Host) != "Www.example.com" {
		t.Errorf("Host = %q, want a view of the input", r.Host)
	}
}

func TestPipelinedRequests(t *testing.T) {
	var in []byte
	var want []string
	for i := range 10 {
		var msg string
		switch i % 3 {
		case 0:
			msg = fmt.Sprintf("GET /r%d HTTP/1.1\r\nHost: a\r\n\r\n", i)
		case 1:
			msg = fmt.Sprintf("POST /r%d HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nbody%d", i, i)
		case 2:
			msg = fmt.Sprintf("PUT /r%d HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1;x=y\r\n%d\r\n0\r\nT: %d\r\n\r\n", i, i, i)
		}
		in = append(in, msg...)
		want = append(want, fmt.Sprintf("/r%d", i))
	}
	var p h1.Parser
	var r h1.Request
	var d h1.BodyDecoder
	buf := in
	for i := range 10 {
		n, err := p.ParseRequest(&r, buf)
		mustNil(t, err)
		if string(r.Target) != want[i] {
			t.Fatalf("request %d target %q, want %q", i, r.Target, want[i])
		}
		buf = buf[n:]
		d.ForRequest(&r)
		body, trailers, k, err := decodeAll(&d, buf, false)
		mustNil(t, err)
		switch i % 3 {
		case 1:
			if string(body) != fmt.Sprintf("body%d", i) {
				t.Errorf("request %d body %q", i, body)
			}
		case 2:
			if string(body) != fmt.Sprintf("abc%d", i) || trailers != fmt.Sprintf("T=\"%d\";", i) {
				t.Errorf("request %d body %q trailers %q", i, body, trailers)
			}
		}
		buf = buf[k:]
	}
	if len(buf) != 0 {
		t.Fatalf("%d bytes left over", len(buf))
	}
	if _, err := p.ParseRequest(&r, buf); err != h1.ErrNeedMore {
		t.Fatalf("empty input: %v", err)
	}
}

// TestSplitEverywhere feeds every prefix of a message in turn to one
// Parser, as a connection receiving one byte at a time would, and also
// restarts at every split point with a fresh Parser: every prefix shorter
// than the head is ErrNeedMore and the result is always the same.
func TestSplitEverywhere(t *testing.T) {
	inputs := []string{
		browserRequest,
		crlf("POST /x HTTP/1.1\nHost: a\nContent-Length: 3\n\nabcGET"),
		crlf("GET http://[::1]:80/ HTTP/1.0\nConnection: keep-alive\n\n"),
		crlf("OPTIONS * HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n"),
	}
	for _, s := range inputs {
		in := []byte(s)
		var ref h1.Request
		var p h1.Parser
		headLen, err := p.ParseRequest(&ref, in)
		mustNil(t, err)
		want := reqSummary(&ref)

		// One byte at a time, resuming.
		var r h1.Request
		for k := 0; k <= len(in); k++ {
			n, err := p.ParseRequest(&r, in[:k])
			if k < headLen {
				if err != h1.ErrNeedMore || n != 0 {
					t.Fatalf("prefix %d of %q: n=%d err=%v", k, s, n, err)
				}
				continue
			}
			mustNil(t, err)
			if n != headLen || reqSummary(&r) != want {
				t.Fatalf("prefix %d: n=%d\n%s\nwant\n%s", k, n, reqSummary(&r), want)
			}
			break
		}
		// Two pieces: the prefix, then everything.
		for k := 0; k < headLen; k++ {
			var p h1.Parser
			if _, err := p.ParseRequest(&r, in[:k]); err != h1.ErrNeedMore {
				t.Fatalf("prefix %d: %v", k, err)
			}
			n, err := p.ParseRequest(&r, in)
			if err != nil || n != headLen || reqSummary(&r) != want {
				t.Fatalf("split %d: n=%d err=%v", k, n, err)
			}
		}
	}
}

func TestParseResponse(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		method h1.MethodClass
		want   string // first line of respSummary
	}{
		{"RFC9112 4 status line", "HTTP/1.1 200 OK\nContent-Length: 2\n\n", h1.MethodOther,
			`1.1 200 "OK" body=content-length cl=2 close=false upgrade=false`},
		{"reason with spaces", "HTTP/1.1 404 Not Found Here\nContent-Length: 0\n\n", h1.MethodOther,
			`1.1 404 "Not Found Here" body=content-length cl=0 close=false upgrade=false`},
		{"missing reason, SP kept", "HTTP/1.1 200 \nContent-Length: 0\n\n", h1.MethodOther,
			`1.1 200 "" body=content-length cl=0 close=false upgrade=false`},
		{"missing reason and SP tolerated", "HTTP/1.1 200\nContent-Length: 0\n\n", h1.MethodOther,
			`1.1 200 "" body=content-length cl=0 close=false upgrade=false`},
		{"until close", "HTTP/1.1 200 OK\n\n", h1.MethodOther,
			`1.1 200 "OK" body=until-close cl=-1 close=true upgrade=false`},
		{"chunked", "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n", h1.MethodOther,
			`1.1 200 "OK" body=chunked cl=-1 close=false upgrade=false`},
		{"HEAD: no body despite CL", "HTTP/1.1 200 OK\nContent-Length: 10\n\n", h1.MethodHEAD,
			`1.1 200 "OK" body=none cl=-1 close=false upgrade=false`},
		{"204", "HTTP/1.1 204 No Content\n\n", h1.MethodOther,
			`1.1 204 "No Content" body=none cl=-1 close=false upgrade=false`},
		{"304 with CL", "HTTP/1.1 304 Not Modified\nContent-Length: 100\n\n", h1.MethodOther,
			`1.1 304 "Not Modified" body=none cl=-1 close=false upgrade=false`},
		{"100 continue", "HTTP/1.1 100 Continue\n\n", h1.MethodOther,
			`1.1 100 "Continue" body=none cl=-1 close=false upgrade=false`},
		{"101 switching", "HTTP/1.1 101 Switching Protocols\nConnection: upgrade\nUpgrade: websocket\n\n", h1.MethodOther,
			`1.1 101 "Switching Protocols" body=none cl=-1 close=false upgrade=true`},
		{"CONNECT 200: tunnel, no body", "HTTP/1.1 200 Connection established\n\n", h1.MethodCONNECT,
			`1.1 200 "Connection established" body=none cl=-1 close=false upgrade=false`},
		{"CONNECT 200 ignores framing fields", "HTTP/1.1 200 OK\nContent-Length: x\nTransfer-Encoding: gzip\n\n", h1.MethodCONNECT,
			`1.1 200 "OK" body=none cl=-1 close=false upgrade=false`},
		{"CONNECT 407 has a body", "HTTP/1.1 407 Proxy Authentication Required\nContent-Length: 3\n\n", h1.MethodCONNECT,
			`1.1 407 "Proxy Authentication Required" body=content-length cl=3 close=false upgrade=false`},
		{"HTTP/1.0 default close", "HTTP/1.0 200 OK\nContent-Length: 1\n\n", h1.MethodOther,
			`1.0 200 "OK" body=content-length cl=1 close=true upgrade=false`},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\nContent-Length: 1\nConnection: keep-alive\n\n", h1.MethodOther,
			`1.0 200 "OK" body=content-length cl=1 close=false upgrade=false`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(crlf(tt.in))
			var p h1.Parser
			var r h1.Response
			n, err := p.ParseResponse(&r, in, tt.method)
			mustNil(t, err)
			if n != len(in) {
				t.Errorf("n = %d, want %d", n, len(in))
			}
			if got, _, _ := strings.Cut(respSummary(&r), "\n"); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			for k := 0; k < len(in); k++ {
				if _, err := p.ParseResponse(&r, in[:k], tt.method); err != h1.ErrNeedMore {
					t.Fatalf("prefix %d: %v", k, err)
				}
			}
		})
	}
}

func TestResponseErrors(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"HTTP/1.1 20 OK\n\n", h1.ErrBadStatusLine},
		{"HTTP/1.1 2000 OK\n\n", h1.ErrBadStatusLine},
		{"HTTP/1.1 099 X\n\n", h1.ErrBadStatusLine},
		{"HTTP/1.1 600 X\n\n", h1.ErrBadStatusLine},
		{"HTTP/1.1 200 O\x01K\n\n", h1.ErrBadStatusLine},
		{"HTTP/2.0 200 OK\n\n", h1.ErrUnsupportedVersion},
		{"HTTP/1.2 200 OK\n\n", h1.ErrUnsupportedVersion},
		{"HTTP/1.1200 OK\n\n", h1.ErrBadStatusLine},
		{"http/1.1 200 OK\n\n", h1.ErrBadStatusLine},
		{"HTTP/1.1 200 OK\nContent-Length: 1\nTransfer-Encoding: chunked\n\n", h1.ErrCLAndTE},
		{"HTTP/1.1 200 OK\nTransfer-Encoding: gzip\n\n", h1.ErrChunkedNotFinal},
		{"HTTP/1.1 200 OK\nTransfer-Encoding: gzip, chunked\n\n", h1.ErrUnsupportedTransferCoding},
		{"HTTP/1.0 200 OK\nTransfer-Encoding: chunked\n\n", h1.ErrTransferEncodingHTTP10},
		{"HTTP/1.1 304 OK\nContent-Length: 1\nContent-Length: 2\n\n", h1.ErrCLMismatch},
		{"HTTP/1.1 200 OK\nX: a\n b\n\n", h1.ErrObsFold},
	}
	for _, tt := range tests {
		var p h1.Parser
		var r h1.Response
		_, err := p.ParseResponse(&r, []byte(crlf(tt.in)), h1.MethodOther)
		if err != tt.want {
			t.Errorf("%q: err = %v, want %v", tt.in, err, tt.want)
		}
	}
}

func TestLimits(t *testing.T) {
	long := strings.Repeat("a", 9000)
	var counted []string
	p := h1.Parser{Config: h1.Config{CountError: func(r string) { counted = append(counted, r) }}}
	var r h1.Request
	check := func(in string, want error, status int) {
		t.Helper()
		_, err := p.ParseRequest(&r, []byte(in))
		if err != want || h1.StatusFor(err) != status {
			t.Errorf("err = %v (status %d), want %v (%d)", err, h1.StatusFor(err), want, status)
		}
	}
	// The 414 is found before the request line ends, and after.
	check("GET /"+long, h1.ErrRequestLineTooLong, 414)
	check("GET /"+long+" HTTP/1.1\r\nHost: a\r\n\r\n", h1.ErrRequestLineTooLong, 414)
	// A line of exactly the limit is fine.
	exact := "GET /" + strings.Repeat("a", h1.DefaultMaxRequestLine-len("GET / HTTP/1.1")) + " HTTP/1.1"
	check(exact+"\r\nHost: a\r\n\r\n", nil, 0)
	check("GET / HTTP/1.1\r\nHost: a\r\n"+strings.Repeat("X-Long: "+long+"\r\n", 4), h1.ErrHeadTooLarge, 431)
	check("GET / HTTP/1.1\r\nHost: a\r\n"+strings.Repeat("X-Long: "+long+"\r\n", 4)+"\r\n", h1.ErrHeadTooLarge, 431)
	check("GET / HTTP/1.1\r\nHost: a\r\n"+strings.Repeat("X: 1\r\n", 99)+"\r\n", nil, 0)
	check("GET / HTTP/1.1\r\nHost: a\r\n"+strings.Repeat("X: 1\r\n", 100)+"\r\n", h1.ErrTooManyFields, 431)
	if len(counted) != 5 || counted[0] != "request_line_too_long" || counted[4] != "too_many_fields" {
		t.Errorf("CountError saw %v", counted)
	}
	// Smaller configured limits.
	p = h1.Parser{Config: h1.Config{MaxHeadBytes: 64, MaxFields: 2, MaxRequestLine: 16}}
	check("GET /0123456789ab HTTP/1.1\r\n", h1.ErrRequestLineTooLong, 414)
	check("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", h1.ErrTooManyFields, 431)
	check("GET / HTTP/1.1\r\nHost: a\r\nA: "+strings.Repeat("x", 60), h1.ErrHeadTooLarge, 431)
}

func TestStatusFor(t *testing.T) {
	if h1.StatusFor(nil) != 0 || h1.StatusFor(h1.ErrNeedMore) != 0 {
		t.Error("nil/ErrNeedMore")
	}
	if h1.StatusFor(h1.ErrUnsupportedTransferCoding) != 501 || h1.StatusFor(errors.New("x")) != 400 {
		t.Error("statuses")
	}
	if h1.StatusFor(fmt.Errorf("wrapped: %w", h1.ErrHeadTooLarge)) != 431 {
		t.Error("wrapped")
	}
}

// TestMisuseDoesNotPanic passes a Parser a different buffer after
// ErrNeedMore without calling Reset. The results are unspecified, but the
// parser must not panic or read out of bounds.
func TestMisuseDoesNotPanic(t *testing.T) {
	pieces := []string{"GET / HTTP/1.1\r\n", "Host: a\r\n", "\r\n", "\n", "\r", "X: 1\r\n", " ", "POST", "\r\n\r\n", "HTTP/1.1 200 OK\r\n"}
	r := newRand()
	var p h1.Parser
	var req h1.Request
	var resp h1.Response
	var d h1.BodyDecoder
	for range 20000 {
		var a, b []byte
		for range r.IntN(6) {
			a = append(a, pieces[r.IntN(len(pieces))]...)
		}
		for range r.IntN(8) {
			b = append(b, pieces[r.IntN(len(pieces))]...)
		}
		switch r.IntN(3) {
		case 0:
			p.ParseRequest(&req, a)
			p.ParseRequest(&req, b)
		case 1:
			d.Reset(h1.BodyChunked, -1)
			for _, in := range [][]byte{[]byte("0\r\n"), a, b, a} {
				d.Decode(in)
			}
		default:
			p.ParseResponse(&resp, a, h1.MethodOther)
			p.ParseResponse(&resp, b, h1.MethodOther)
		}
	}
}
