package h1_test

import (
	"testing"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// These guard the hot paths: once a connection's Request, Response and
// BodyDecoder have grown their field slices, nothing allocates.

func TestAllocsParseRequest(t *testing.T) {
	in := []byte(browserRequest)
	var p h1.Parser
	var r h1.Request
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := p.ParseRequest(&r, in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ParseRequest: %v allocs/op", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		h := &r.Headers
		if h.Get("cookie") == nil || !h.Has("Accept") || !h.HasToken("accept-encoding", "br") ||
			h.IsHopByHop([]byte("Cookie")) || h.Index("sec-fetch-dest", 0) < 0 {
			t.Fatal("lookup")
		}
	})
	if allocs != 0 {
		t.Errorf("header lookups: %v allocs/op", allocs)
	}
	if r.Headers.Len() != 14 {
		t.Errorf("%d fields", r.Headers.Len())
	}
}

func TestAllocsParseRequestResumed(t *testing.T) {
	in := []byte(browserRequest)
	var p h1.Parser
	var r h1.Request
	allocs := testing.AllocsPerRun(100, func() {
		p.ParseRequest(&r, in[:100])
		p.ParseRequest(&r, in[:300])
		if _, err := p.ParseRequest(&r, in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("resumed ParseRequest: %v allocs/op", allocs)
	}
}

func TestAllocsResponse(t *testing.T) {
	in := []byte(typicalResponseHead)
	var p h1.Parser
	var r h1.Response
	dst := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := p.ParseResponse(&r, in, h1.MethodOther); err != nil {
			t.Fatal(err)
		}
		dst = h1.AppendResponseHead(dst[:0], &r)
	})
	if allocs != 0 {
		t.Errorf("ParseResponse+AppendResponseHead: %v allocs/op", allocs)
	}
}

func TestAllocsSerializeResponseHead(t *testing.T) {
	dst := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		dst = appendTypicalResponseHead(dst[:0])
	})
	if allocs != 0 {
		t.Errorf("serialize response head: %v allocs/op", allocs)
	}
	if string(dst) != typicalResponseHead {
		t.Errorf("got %q", dst)
	}
}

func TestAllocsRewriteAndBody(t *testing.T) {
	in := []byte(browserRequest)
	body := h1.AppendLastChunk(h1.AppendChunk(nil, make([]byte, 4096)), nil)
	var p h1.Parser
	var r h1.Request
	var d h1.BodyDecoder
	dst := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		p.ParseRequest(&r, in)
		dst = h1.AppendRequestLine(dst[:0], r.Method, r.Target, 1)
		dst = h1.AppendEndToEnd(dst, &r.Headers)
		dst = h1.AppendHeader(dst, "Via", "1.1 sluice")
		dst = h1.AppendEndOfHead(dst)
		d.Reset(h1.BodyChunked, -1)
		for buf := body; !d.Done(); {
			_, n, err := d.Decode(buf)
			if err != nil {
				t.Fatal(err)
			}
			buf = buf[n:]
		}
	})
	if allocs != 0 {
		t.Errorf("rewrite + chunked decode: %v allocs/op", allocs)
	}
}

// appendTypicalResponseHead builds typicalResponseHead the way a server
// or proxy would, with the encoders.
func appendTypicalResponseHead(dst []byte) []byte {
	dst = h1.AppendStatusLine(dst, 1, 200, h1.StatusText(200))
	dst = h1.AppendHeader(dst, "Content-Type", "application/javascript")
	dst = h1.AppendContentLength(dst, 48213)
	dst = h1.AppendHeader(dst, "Cache-Control", "public, max-age=31536000, immutable")
	dst = h1.AppendHeader(dst, "Etag", `"5f2b-17a3c"`)
	dst = h1.AppendHeader(dst, "Last-Modified", "Tue, 07 May 2024 10:00:00 GMT")
	dst = h1.AppendHeader(dst, "Vary", "Accept-Encoding")
	dst = h1.AppendHeader(dst, "Date", "Wed, 08 May 2024 12:00:00 GMT")
	return h1.AppendEndOfHead(dst)
}
