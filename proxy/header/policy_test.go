package header

import (
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// kv is a field list as a test writes it: "Name: value" lines. HTTP/2
// sources get the names lower-cased.
type kv []string

func (l kv) h1() *h1.Headers {
	var h h1.Headers
	for _, f := range l {
		n, v, _ := strings.Cut(f, ": ")
		h.Add([]byte(n), []byte(v))
	}
	return &h
}

func (l kv) h2() []hpack.HeaderField {
	var hf []hpack.HeaderField
	for _, f := range l {
		n, v, _ := strings.Cut(f, ": ")
		hf = append(hf, hpack.HeaderField{Name: strings.ToLower(n), Value: v})
	}
	return hf
}

func (l kv) view(from Version) View {
	if from == HTTP2 {
		return H2(l.h2())
	}
	return H1(l.h1())
}

// h1Lines is an HTTP/1.1 head's start line and its fields, names
// lower-cased, as one "|"-joined string.
func h1Lines(t *testing.T, head []byte) (start, fields string) {
	t.Helper()
	s, ok := strings.CutSuffix(string(head), "\r\n\r\n")
	if !ok {
		t.Fatalf("head %q does not end with an empty line", head)
	}
	lines := strings.Split(s, "\r\n")
	for i, l := range lines[1:] {
		n, v, ok := strings.Cut(l, ": ")
		if !ok {
			t.Fatalf("bad field line %q", l)
		}
		lines[i+1] = strings.ToLower(n) + ": " + v
	}
	return lines[0], strings.Join(lines[1:], "|")
}

// h2Lines is the same for an HTTP/2 list: pseudo-header fields in start
// (":authority" excepted: it is listed as host, where HTTP/1.1 has Host).
func h2Lines(hf []hpack.HeaderField) (start, fields string) {
	var ps, fs []string
	for _, f := range hf {
		switch {
		case f.Name == ":authority":
			fs = append(fs, "host: "+f.Value)
		case strings.HasPrefix(f.Name, ":"):
			ps = append(ps, f.Name+"="+f.Value)
		default:
			fs = append(fs, f.Name+": "+f.Value)
		}
	}
	return strings.Join(ps, " "), strings.Join(fs, "|")
}

// pair is one protocol pair: the message came in as from, leaves as to.
type pair struct {
	name     string
	from, to Version
}

// check compares the fields with want (or wantBy[pr.name]), "{via}"
// standing for sluice's Via entry for the source protocol.
func (pr pair) check(t *testing.T, p *Policy, got, want string, wantBy map[string]string) {
	t.Helper()
	if w, ok := wantBy[pr.name]; ok {
		want = w
	}
	want = strings.ReplaceAll(want, "{via}", p.Via(pr.from))
	if got != want {
		t.Errorf("fields\n got %s\nwant %s", strings.ReplaceAll(got, "|", "\n     "), strings.ReplaceAll(want, "|", "\n     "))
	}
}

var reqPairs = []pair{
	{"h1→h1", HTTP11, HTTP11},
	{"h1→h2c", HTTP11, HTTP2},
	{"h2→h1", HTTP2, HTTP11},
	{"h2→h2c", HTTP2, HTTP2},
}

// encodeRequest forwards r from one protocol to another and returns the
// forwarded start line (or pseudo-headers) and fields.
func encodeRequest(t *testing.T, p *Policy, r *Request, to Version, fr Framing, keepCL bool) (start, fields string) {
	t.Helper()
	if to == HTTP2 {
		var s Scratch
		return h2Lines(p.AppendH2Request(nil, &s, r, keepCL))
	}
	return h1Lines(t, p.AppendH1Request(nil, r, &fr))
}

// TestRequestPolicyEveryPair runs each request rule over every protocol
// pair. "{via}" in a want stands for sluice's Via entry for the source
// protocol ("1.1 sluice" or "2.0 sluice").
func TestRequestPolicyEveryPair(t *testing.T) {
	const fwd = "x-forwarded-for: 10.0.0.1|x-forwarded-proto: https|x-forwarded-host: a.test|x-request-id: id1|via: {via}"
	spoofs := kv{"X-Forwarded-For: 1.2.3.4", "X-Forwarded-For: 5.6.7.8", "X-Forwarded-Proto: lies",
		"X-Forwarded-Host: spoof.test", "Forwarded: for=1.2.3.4", "Via: 1.0 corp", "X-Keep: k"}
	cases := []struct {
		name   string
		h1, h2 kv // the request's fields from each source (h2 nil: h1's, lower-cased)
		mod    func(r *Request)
		noXF   bool
		rw     bool                       // RewriteHost
		want   string                     // every pair
		wantBy map[string]string          // per pair, where they differ
		fr     func(from Version) Framing // HTTP/1.1 framing; nil: keep the length
	}{
		{name: "plain", h1: kv{"User-Agent: t", "Accept: */*"},
			want: "host: a.test|user-agent: t|accept: */*|" + fwd},
		{name: "hop-by-hop",
			h1: kv{"Connection: keep-alive, X-Drop", "X-Drop: gone", "Keep-Alive: 5", "Proxy-Connection: keep-alive",
				"TE: trailers", "Trailer: X-T", "Upgrade: h2c", "Transfer-Encoding: chunked", "X-Keep: k"},
			h2: kv{"te: trailers", "x-keep: k"},
			// te: trailers only between HTTP/2 hops (RFC 9113 §8.2.2).
			want:   "host: a.test|x-keep: k|" + fwd,
			wantBy: map[string]string{"h2→h2c": "host: a.test|te: trailers|x-keep: k|" + fwd}},
		{name: "Connection names neither Host nor Content-Length away",
			h1:   kv{"Host: a.test", "Connection: Host, Content-Length, X-A", "X-A: 1", "Content-Length: 3"},
			h2:   kv{"host: a.test", "content-length: 3"},
			want: "host: a.test|content-length: 3|" + fwd},
		{name: "untrusted forwarding fields are replaced", h1: spoofs,
			want: "host: a.test|x-keep: k|x-forwarded-for: 10.0.0.1|x-forwarded-proto: https|x-forwarded-host: a.test|" +
				"x-request-id: id1|via: 1.0 corp, {via}"},
		{name: "trusted forwarding fields stand", h1: spoofs, mod: func(r *Request) { r.Trusted = true },
			want: "host: a.test|x-forwarded-proto: lies|x-forwarded-host: spoof.test|forwarded: for=1.2.3.4|x-keep: k|" +
				"x-forwarded-for: 1.2.3.4, 5.6.7.8, 10.0.0.1|x-request-id: id1|via: 1.0 corp, {via}"},
		{name: "NoXForwarded passes them untouched", h1: spoofs, noXF: true,
			want: "host: a.test|x-forwarded-for: 1.2.3.4|x-forwarded-for: 5.6.7.8|x-forwarded-proto: lies|" +
				"x-forwarded-host: spoof.test|forwarded: for=1.2.3.4|x-keep: k|x-request-id: id1|via: 1.0 corp, {via}"},
		{name: "X-Request-Id is the caller's", h1: kv{"X-Request-Id: client's"},
			want: "host: a.test|" + fwd},
		{name: "no request id", h1: kv{"X-Request-Id: client's"}, mod: func(r *Request) { r.RequestID = "" },
			want: "host: a.test|x-forwarded-for: 10.0.0.1|x-forwarded-proto: https|x-forwarded-host: a.test|via: {via}"},
		{name: "route Host override", h1: kv{"Host: a.test"}, mod: func(r *Request) { r.HostOverride = "saas.test" },
			want: "host: saas.test|" + fwd},
		{name: "RewriteHost", h1: kv{"Host: a.test"}, rw: true,
			want: "host: up.test:81|" + fwd},
		{name: "no host: the upstream's", mod: func(r *Request) { r.Authority = "" },
			want: "host: up.test:81|x-forwarded-for: 10.0.0.1|x-forwarded-proto: https|x-request-id: id1|via: {via}"},
		{name: "cookie crumbs", h1: kv{"Cookie: a=1; b=2"}, h2: kv{"cookie: a=1", "x-k: v", "cookie: b=2"},
			want: "host: a.test|cookie: a=1; b=2|" + fwd,
			wantBy: map[string]string{
				"h2→h1":  "host: a.test|x-k: v|cookie: a=1; b=2|" + fwd, // RFC 9113 §8.2.3
				"h2→h2c": "host: a.test|cookie: a=1|x-k: v|cookie: b=2|" + fwd,
			}},
		{name: "sec-websocket-key of an HTTP/2 client", h1: kv{"Sec-WebSocket-Key: k"},
			want:   "host: a.test|sec-websocket-key: k|" + fwd,
			wantBy: map[string]string{"h2→h1": "host: a.test|" + fwd}},
		{name: "repeated Content-Length sent once", h1: kv{"Content-Length: 5", "Content-Length: 5"},
			want: "host: a.test|content-length: 5|" + fwd},
		{name: "framing: sluice's length", h1: kv{"Content-Length: 5"},
			fr:     func(Version) Framing { return Framing{SetLength: true, Length: 7} },
			want:   "host: a.test|content-length: 5|" + fwd,
			wantBy: map[string]string{"h1→h1": "host: a.test|content-length: 7|" + fwd, "h2→h1": "host: a.test|content-length: 7|" + fwd}},
		{name: "framing: chunked",
			fr:     func(Version) Framing { return Framing{Chunked: true} },
			want:   "host: a.test|" + fwd,
			wantBy: map[string]string{"h1→h1": "host: a.test|transfer-encoding: chunked|" + fwd, "h2→h1": "host: a.test|transfer-encoding: chunked|" + fwd}},
		{name: "framing: upgrade", h1: kv{"Connection: upgrade", "Upgrade: websocket"}, h2: kv{},
			fr: func(from Version) Framing {
				if from == HTTP2 {
					return Framing{WebSocketKey: "K"}
				}
				return Framing{Upgrade: true}
			},
			want: "host: a.test|" + fwd,
			wantBy: map[string]string{
				"h1→h1": "host: a.test|connection: upgrade|upgrade: websocket|" + fwd,
				"h2→h1": "host: a.test|connection: Upgrade|upgrade: websocket|sec-websocket-key: K|" + fwd,
			}},
	}
	for _, tc := range cases {
		p := NewPolicy("sluice", tc.rw, tc.noXF)
		for _, pr := range reqPairs {
			t.Run(tc.name+"/"+pr.name, func(t *testing.T) {
				fields := tc.h1
				if pr.from == HTTP2 && tc.h2 != nil {
					fields = tc.h2
				}
				r := Request{Method: "GET", Target: "/p?q", Authority: "a.test", From: pr.from, Fields: fields.view(pr.from),
					ClientIP: "10.0.0.1", Scheme: "https", RequestID: "id1", UpstreamHost: "up.test:81", UpstreamScheme: "http"}
				if tc.mod != nil {
					tc.mod(&r)
				}
				fr := Framing{KeepContentLength: true}
				if tc.fr != nil {
					fr = tc.fr(pr.from)
				}
				start, got := encodeRequest(t, p, &r, pr.to, fr, true)
				pr.check(t, p, got, tc.want, tc.wantBy)
				wantStart := "GET /p?q HTTP/1.1"
				if pr.to == HTTP2 {
					wantStart = ":method=GET :scheme=http :path=/p?q"
				}
				if start != wantStart {
					t.Errorf("start %q, want %q", start, wantStart)
				}
			})
		}
	}
}

var respPairs = []pair{
	{"h1→h1", HTTP11, HTTP11},
	{"h1→h2", HTTP11, HTTP2},
	{"h2c→h1", HTTP2, HTTP11},
	{"h2c→h2", HTTP2, HTTP2},
}

// TestResponsePolicyEveryPair: the response rules over every pair.
func TestResponsePolicyEveryPair(t *testing.T) {
	p := NewPolicy("sluice", false, false)
	cases := []struct {
		name   string
		status int
		h1, h2 kv
		fr     Framing // toward HTTP/1.1
		keepCL bool    // toward HTTP/2
		want   string
		wantBy map[string]string
	}{
		{name: "hop-by-hop dropped, Via appended", status: 200,
			h1: kv{"Connection: X-Hop, close", "X-Hop: secret", "Keep-Alive: timeout=5", "Set-Cookie: s=1",
				"Via: 1.1 upstream", "Transfer-Encoding: chunked", "Trailer: X-C", "Upgrade: h2c"},
			h2:   kv{"set-cookie: s=1", "via: 1.1 upstream", "trailer: x-c"},
			want: "set-cookie: s=1|via: 1.1 upstream, {via}"},
		{name: "Content-Length once", status: 200, h1: kv{"Content-Length: 2", "Content-Length: 2", "X-A: b"},
			fr: Framing{KeepContentLength: true}, keepCL: true, want: "content-length: 2|x-a: b|via: {via}"},
		{name: "Content-Length dropped when re-framed", status: 200, h1: kv{"Content-Length: 2", "X-A: b"},
			fr:     Framing{Chunked: true, Close: true},
			want:   "x-a: b|via: {via}",
			wantBy: map[string]string{"h1→h1": "x-a: b|connection: close|transfer-encoding: chunked|via: {via}", "h2c→h1": "x-a: b|connection: close|transfer-encoding: chunked|via: {via}"}},
		{name: "sluice's length", status: 200, h1: kv{"X-A: b"}, fr: Framing{SetLength: true, KeepAlive: true},
			want:   "x-a: b|via: {via}",
			wantBy: map[string]string{"h1→h1": "x-a: b|content-length: 0|connection: keep-alive|via: {via}", "h2c→h1": "x-a: b|content-length: 0|connection: keep-alive|via: {via}"}},
		// RFC 9110 §7.6.3: Via in each message forwarded, interim ones too.
		{name: "interim", status: 103, h1: kv{"Link: </s.css>; rel=preload"}, want: "link: </s.css>; rel=preload|via: {via}"},
		{name: "upgrade", status: 101, h1: kv{"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Accept: a"},
			fr: Framing{Upgrade: true}, want: "sec-websocket-accept: a|via: {via}",
			wantBy: map[string]string{"h1→h1": "sec-websocket-accept: a|connection: upgrade|upgrade: websocket|via: {via}"}},
	}
	for _, tc := range cases {
		for _, pr := range respPairs {
			if tc.status == 101 && pr.name != "h1→h1" {
				continue // only HTTP/1.1 upgrades (RFC 9113 §8.6)
			}
			t.Run(tc.name+"/"+pr.name, func(t *testing.T) {
				fields := tc.h1
				if pr.from == HTTP2 && tc.h2 != nil {
					fields = tc.h2
				}
				r := Response{Status: tc.status, From: pr.from, Fields: fields.view(pr.from)}
				var start, got string
				if pr.to == HTTP2 {
					start, got = h2Lines(p.AppendH2Response(nil, nil, &r, tc.keepCL))
				} else {
					start, got = h1Lines(t, p.AppendH1Response(nil, &r, &tc.fr))
				}
				pr.check(t, p, got, tc.want, tc.wantBy)
				wantStart := ":status=" + StatusString(tc.status)
				if pr.to == HTTP11 {
					wantStart = "HTTP/1.1 " + StatusString(tc.status) + " " + h1.StatusText(tc.status)
				}
				if start != wantStart {
					t.Errorf("start %q, want %q", start, wantStart)
				}
			})
		}
	}
}

// An HTTP/1.1 upstream's reason phrase is kept; HTTP/1.0 is named in Via.
func TestResponseReasonAndVersion(t *testing.T) {
	p := NewPolicy("gw", false, false)
	r := Response{Status: 200, Reason: "Fine", From: H1Version(0), Fields: H1(kv{"Via: 1.0 a"}.h1())}
	got := string(p.AppendH1Response(nil, &r, &Framing{}))
	if want := "HTTP/1.1 200 Fine\r\nVia: 1.0 a, 1.0 gw\r\n\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestTrailersEveryPair: one trailer rule, whichever way they go.
func TestTrailersEveryPair(t *testing.T) {
	in := kv{"Grpc-Status: 0", "Content-Length: 5", "Host: x", "Content-Type: a/b", "TE: trailers",
		"Trailer: x", "Content-Encoding: gzip", "X-Sum: abc"}
	for _, from := range []Version{HTTP11, HTTP2} {
		tv := in.view(from)
		got := string(AppendLastChunk(nil, tv))
		if want := "0\r\ngrpc-status: 0\r\nx-sum: abc\r\n\r\n"; strings.ToLower(got) != want {
			t.Errorf("from %d to HTTP/1.1: %q, want %q", from, got, want)
		}
		_, fs := h2Lines(AppendH2Trailers(nil, nil, tv))
		if want := "grpc-status: 0|x-sum: abc"; fs != want {
			t.Errorf("from %d to HTTP/2: %q, want %q", from, fs, want)
		}
	}
	// HTTP/2 allows values HTTP/1.1 cannot carry: those stay out of a chunk.
	got := string(AppendLastChunk(nil, H2([]hpack.HeaderField{{Name: "x-bad", Value: "a\x01b"}, {Name: "x-ok", Value: "1"}})))
	if got != "0\r\nx-ok: 1\r\n\r\n" {
		t.Errorf("bad value: %q", got)
	}
	if got := string(AppendLastChunk(nil, H1(nil))); got != "0\r\n\r\n" {
		t.Errorf("no trailers: %q", got)
	}
}

// The fixed hop-by-hop names are the codec's (h1.IsHopByHopName).
func TestKindAgreesWithCodec(t *testing.T) {
	for _, n := range []string{"Connection", "keep-alive", "PROXY-CONNECTION", "te", "Trailer", "transfer-encoding",
		"Upgrade", "Host", "x-forwarded-for", "via", "cookie", "content-length", "x-custom", ":path", ""} {
		if got, want := KindOf(n).hop(), h1.IsHopByHopName([]byte(n)); got != want {
			t.Errorf("%q: hop %v, codec %v", n, got, want)
		}
	}
	if KindOf(":path") != Pseudo || KindOf("X-Forwarded-Proto") != XForwardedProto || KindOf("Sec-WebSocket-Key") != WebSocketKey {
		t.Error("KindOf misclassifies")
	}
}

func TestValidHost(t *testing.T) {
	for s, want := range map[string]bool{
		"api.saas.example": true, "10.0.0.1:8443": true, "[::1]:80": true, "a_b": true,
		"": false, "a b": false, "a/b": false, "a\r\nX: y": false, strings.Repeat("a", 256): false,
	} {
		if ValidHost(s) != want {
			t.Errorf("ValidHost(%q) = %v", s, !want)
		}
	}
}

// The encoders allocate nothing but the one string an HTTP/2 list of
// copied fields shares.
func TestEncodeAllocs(t *testing.T) {
	p := NewPolicy("sluice", false, false)
	req := kv{"Host: a.test", "User-Agent: t", "Accept: */*", "Via: 1.0 x"}.h1()
	resp := kv{"Content-Length: 5", "Content-Type: text/plain"}.h1()
	h2resp := kv{"content-type: text/plain", "server: s"}.h2()
	dst := make([]byte, 0, 1024)
	hf := make([]hpack.HeaderField, 0, 16)
	var s Scratch
	r := Request{Method: "GET", Target: "/", Authority: "a.test", From: HTTP11, Fields: H1(req), ClientIP: "1.2.3.4",
		Scheme: "http", RequestID: "id", UpstreamHost: "u"}
	for _, tc := range []struct {
		name string
		max  float64
		f    func()
	}{
		{"h1 request", 0, func() { dst = p.AppendH1Request(dst[:0], &r, &Framing{KeepContentLength: true}) }},
		{"h1 response", 0, func() {
			dst = p.AppendH1Response(dst[:0], &Response{Status: 200, From: HTTP11, Fields: H1(resp)}, &Framing{KeepContentLength: true})
		}},
		{"h1 → h2 response", 1, func() {
			hf = p.AppendH2Response(hf[:0], &s, &Response{Status: 200, From: HTTP11, Fields: H1(resp)}, true)
		}},
		{"h2 → h2 response", 0, func() {
			hf = p.AppendH2Response(hf[:0], &s, &Response{Status: 200, From: HTTP2, Fields: H2(h2resp)}, true)
		}},
	} {
		tc.f()
		if n := testing.AllocsPerRun(100, tc.f); n > tc.max {
			t.Errorf("%s: %.1f allocations, want ≤ %.0f", tc.name, n, tc.max)
		}
	}
}

// A probe sluice makes itself has no forwarding fields and no Via, in
// either protocol.
func TestOwnRequest(t *testing.T) {
	o := Own{Method: "GET", Path: "/healthz", Host: "up.test:81", Scheme: "http", UserAgent: "probe"}
	if got, want := string(o.AppendH1(nil)), "GET /healthz HTTP/1.1\r\nHost: up.test:81\r\nUser-Agent: probe\r\nConnection: close\r\n\r\n"; got != want {
		t.Errorf("HTTP/1.1: %q, want %q", got, want)
	}
	start, fields := h2Lines(o.H2())
	if start != ":method=GET :scheme=http :path=/healthz" || fields != "host: up.test:81|user-agent: probe" {
		t.Errorf("HTTP/2: %q %q", start, fields)
	}
}
