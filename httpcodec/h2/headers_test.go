package h2

import (
	"testing"

	"golang.org/x/net/http2/hpack"
)

// TestRequestValidation runs each malformed request of RFC 9113 §8.2-8.3
// through a server Conn: each must be answered with RST_STREAM
// PROTOCOL_ERROR, never reach the caller, and leave the connection usable.
func TestRequestValidation(t *testing.T) {
	base := func(extra ...hpack.HeaderField) []hpack.HeaderField { return reqFields(extra...) }
	tests := []struct {
		name   string
		fields []hpack.HeaderField
		valid  bool
	}{
		{"valid", base(), true},
		{"valid with te trailers", base(hf("te", "trailers")), true},
		{"valid OPTIONS *", []hpack.HeaderField{hf(":method", "OPTIONS"), hf(":scheme", "https"), hf(":authority", "a"), hf(":path", "*")}, true},
		{"valid CONNECT", []hpack.HeaderField{hf(":method", "CONNECT"), hf(":authority", "example.com:443")}, true},
		{"valid host equal to authority", base(hf("host", "EXAMPLE.com")), true},
		{"valid non-http scheme path", []hpack.HeaderField{hf(":method", "GET"), hf(":scheme", "foo"), hf(":path", "bar")}, true},
		{"valid empty value", base(hf("x-empty", "")), true},
		{"missing :method", []hpack.HeaderField{hf(":scheme", "https"), hf(":path", "/")}, false},
		{"missing :scheme", []hpack.HeaderField{hf(":method", "GET"), hf(":path", "/")}, false},
		{"missing :path", []hpack.HeaderField{hf(":method", "GET"), hf(":scheme", "https")}, false},
		{"empty :path", []hpack.HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "")}, false},
		{"path not origin-form", []hpack.HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "x")}, false},
		{"* for GET", []hpack.HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "*")}, false},
		{"duplicate :path", base(hf(":path", "/again")), false},
		{"pseudo after regular", append(base(hf("accept", "*/*")), hf(":path", "/x")), false},
		{"unknown pseudo", base(hf(":foo", "bar")), false},
		{":status in request", base(hf(":status", "200")), false},
		{":protocol not enabled", []hpack.HeaderField{hf(":method", "CONNECT"), hf(":protocol", "websocket"), hf(":scheme", "https"), hf(":authority", "a"), hf(":path", "/")}, false},
		{"CONNECT with :path", []hpack.HeaderField{hf(":method", "CONNECT"), hf(":authority", "a:1"), hf(":path", "/")}, false},
		{"CONNECT without :authority", []hpack.HeaderField{hf(":method", "CONNECT")}, false},
		{"uppercase name", base(hf("Accept", "x")), false},
		{"space in name", base(hf("x y", "z")), false},
		{"colon in name", base(hf("x:y", "z")), false},
		{"empty name", base(hf("", "z")), false},
		{"non-ASCII name", base(hf("x\xff", "z")), false},
		{"NUL in value", base(hf("x", "a\x00b")), false},
		{"CR in value", base(hf("x", "a\rb")), false},
		{"LF in value", base(hf("x", "a\nb")), false},
		{"leading space", base(hf("x", " a")), false},
		{"trailing tab", base(hf("x", "a\t")), false},
		{"connection", base(hf("connection", "keep-alive")), false},
		{"keep-alive", base(hf("keep-alive", "timeout=5")), false},
		{"proxy-connection", base(hf("proxy-connection", "keep-alive")), false},
		{"transfer-encoding", base(hf("transfer-encoding", "chunked")), false},
		{"upgrade", base(hf("upgrade", "websocket")), false},
		{"te gzip", base(hf("te", "gzip")), false},
		{"content-length not a number", base(hf("content-length", "12a")), false},
		{"content-length negative", base(hf("content-length", "-1")), false},
		{"content-length conflicting", base(hf("content-length", "1"), hf("content-length", "2")), false},
		{"content-length with END_STREAM", base(hf("content-length", "5")), false},
		{"userinfo in authority", []hpack.HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":authority", "user@example.com"), hf(":path", "/")}, false},
		{"host differs from authority", base(hf("host", "evil.com")), false},
		{"two hosts", base(hf("host", "example.com"), hf("host", "example.com")), false},
		{"bad method token", []hpack.HeaderField{hf(":method", "GE T"), hf(":scheme", "https"), hf(":path", "/")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := newTestConn(t, Server, Config{})
			tc.writeHeaders(1, true, tt.fields...)
			if tt.valid {
				tc.wantEvent(event{kind: "headers", id: 1, es: true})
			} else {
				tc.wantRST(1, ErrCodeProtocol)
			}
			tc.wantIdle()
			// The connection carries on, and the refused stream is
			// remembered as reset by us: its late frames are ignored.
			tc.writeData(1, true, "")
			tc.wantIdleOrClosed(tt.valid)
			tc.openRequest(3, true)
		})
	}
}

// wantIdleOrClosed: after a valid request with END_STREAM, a further DATA
// is a connection error; after a refused one it is ignored.
func (tc *testConn) wantIdleOrClosed(valid bool) {
	tc.t.Helper()
	if valid {
		// Reset the helper's view: the DATA above hit a half-closed stream.
		tc.wantRST(1, ErrCodeStreamClosed)
		tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeStreamClosed, by: ByCodec})
	}
	tc.wantIdle()
}

func TestExtendedConnect(t *testing.T) {
	tc := newTestConn(t, Server, Config{EnableConnectProtocol: true})
	if !tc.c.LocalSettings().EnableConnectProtocol {
		t.Fatal("not advertised")
	}
	tc.writeHeaders(1, false, hf(":method", "CONNECT"), hf(":protocol", "websocket"), hf(":scheme", "https"), hf(":authority", "a"), hf(":path", "/chat"))
	e := tc.wantEvent(event{kind: "headers", id: 1})
	if e.hdr.Protocol != "websocket" {
		t.Fatalf("protocol %q", e.hdr.Protocol)
	}
	// :protocol needs CONNECT.
	tc.writeHeaders(3, true, reqFields(hf(":protocol", "websocket"))...)
	tc.wantRST(3, ErrCodeProtocol)
}

func TestContentLengthMismatch(t *testing.T) {
	t.Run("more data than declared", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.writeHeaders(1, false, postFields(hf("content-length", "3"))...)
		tc.wantEvent(event{kind: "headers", id: 1})
		tc.writeData(1, false, "abcd")
		tc.wantRST(1, ErrCodeProtocol)
		tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeProtocol, by: ByCodec})
		tc.wantIdle()
	})
	t.Run("less data at END_STREAM", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.writeHeaders(1, false, postFields(hf("content-length", "3"))...)
		tc.wantEvent(event{kind: "headers", id: 1})
		tc.writeData(1, false, "ab")
		tc.wantEvent(event{kind: "data", id: 1, data: "ab"})
		tc.writeData(1, true, "")
		tc.wantRST(1, ErrCodeProtocol)
		tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeProtocol, by: ByCodec})
	})
	t.Run("less data at trailers", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.writeHeaders(1, false, postFields(hf("content-length", "3"))...)
		tc.wantEvent(event{kind: "headers", id: 1})
		tc.writeHeaders(1, true, hf("x-t", "1"))
		tc.wantRST(1, ErrCodeProtocol)
		tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeProtocol, by: ByCodec})
	})
	t.Run("exact", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.writeHeaders(1, false, postFields(hf("content-length", "3"))...)
		tc.wantEvent(event{kind: "headers", id: 1})
		tc.writeData(1, true, "abc")
		tc.wantEvent(event{kind: "data", id: 1, data: "abc", es: true})
		tc.wantIdle()
	})
	t.Run("response", func(t *testing.T) {
		tc := newTestConn(t, Client, Config{})
		tc.c.OpenStream(reqFields(), true)
		tc.wantHeaders(1, true)
		tc.writeHeaders(1, false, hf(":status", "200"), hf("content-length", "2"))
		tc.wantEvent(event{kind: "headers", id: 1})
		tc.writeData(1, true, "abc")
		tc.wantRST(1, ErrCodeProtocol)
		tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeProtocol, by: ByCodec})
	})
}

func TestOutgoingValidation(t *testing.T) {
	tc := newTestConn(t, Client, Config{})
	for _, fields := range [][]hpack.HeaderField{
		{hf(":method", "GET"), hf(":path", "/")},
		reqFields(hf("Host", "x")),
		reqFields(hf("connection", "close")),
		reqFields(hf("x", "a\nb")),
		append(reqFields(hf("a", "b")), hf(":path", "/")),
	} {
		if _, err := tc.c.OpenStream(fields, true); err == nil {
			t.Errorf("OpenStream accepted %v", fields)
		} else if _, ok := err.(*HeaderError); !ok {
			t.Errorf("error %T, want *HeaderError", err)
		}
	}
	tc.wantIdle()
	// Nothing was sent, so the next valid request still gets id 1.
	if id, err := tc.c.OpenStream(reqFields(), true); id != 1 || err != nil {
		t.Fatalf("%d %v", id, err)
	}
}

func TestPeerMaxHeaderListSizeOnSend(t *testing.T) {
	tc := newRawTestConn(t, Client, Config{})
	tc.drain()
	tc.writeFrame(appendSettings(nil, setting{settingMaxHeaderListSize, 200}))
	if _, err := tc.c.OpenStream(reqFields(hf("x-big", bigString(200))), true); err != ErrHeaderListTooLarge {
		t.Fatalf("got %v", err)
	}
}

func TestValidateAllocs(t *testing.T) {
	fields := typicalRequest()
	var h Headers
	if n := testing.AllocsPerRun(100, func() {
		h.reset()
		if r := validateRequest(fields, false, &h); r != "" {
			t.Fatal(r)
		}
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}
