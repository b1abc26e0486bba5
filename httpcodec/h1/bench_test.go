package h1_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"testing"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// BenchmarkParseRequest parses a 14-field browser request head: sluice's
// parser beside net/http's ReadRequest over a bufio.Reader reset per
// iteration (which also builds the http.Request, its URL and header map).
func BenchmarkParseRequest(b *testing.B) {
	in := []byte(browserRequest)
	b.Run("sluice", func(b *testing.B) {
		var p h1.Parser
		var r h1.Request
		b.ReportAllocs()
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			if _, err := p.ParseRequest(&r, in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("net_http", func(b *testing.B) {
		rd := bytes.NewReader(in)
		br := bufio.NewReader(rd)
		b.ReportAllocs()
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			rd.Reset(in)
			br.Reset(rd)
			if _, err := http.ReadRequest(br); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParseResponse parses a typical response head, beside
// net/http's ReadResponse.
func BenchmarkParseResponse(b *testing.B) {
	in := []byte(typicalResponseHead)
	b.Run("sluice", func(b *testing.B) {
		var p h1.Parser
		var r h1.Response
		b.ReportAllocs()
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			if _, err := p.ParseResponse(&r, in, h1.MethodOther); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("net_http", func(b *testing.B) {
		rd := bytes.NewReader(in)
		br := bufio.NewReader(rd)
		req := &http.Request{Method: "GET"}
		b.ReportAllocs()
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			rd.Reset(in)
			br.Reset(rd)
			if _, err := http.ReadResponse(br, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkChunkedDecode decodes bodies sent as 8 KiB chunks. "sluice"
// returns sub-slices of the input (what the proxy forwards from);
// "sluice_copy" also copies them into a 32 KiB buffer, the work net/http's
// Read does; "net_http" is httputil.NewChunkedReader over a reused
// bufio.Reader, read into a 32 KiB buffer.
func BenchmarkChunkedDecode(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		payload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
		var wire []byte
		for off := 0; off < size; off += 8 << 10 {
			wire = h1.AppendChunk(wire, payload[off:min(off+8<<10, size)])
		}
		wire = h1.AppendLastChunk(wire, nil)
		name := strconv.Itoa(size>>10) + "KiB"
		if size >= 1<<20 {
			name = strconv.Itoa(size>>20) + "MiB"
		}
		b.Run(name+"/sluice", func(b *testing.B) {
			var d h1.BodyDecoder
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				d.Reset(h1.BodyChunked, -1)
				n := 0
				for buf := wire; !d.Done(); {
					data, k, err := d.Decode(buf)
					if err != nil {
						b.Fatal(err)
					}
					n += len(data)
					buf = buf[k:]
				}
				if n != size {
					b.Fatal(n)
				}
			}
		})
		b.Run(name+"/sluice_copy", func(b *testing.B) {
			var d h1.BodyDecoder
			sink := make([]byte, 32<<10)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				d.Reset(h1.BodyChunked, -1)
				for buf := wire; !d.Done(); {
					data, k, err := d.Decode(buf)
					if err != nil {
						b.Fatal(err)
					}
					for len(data) > 0 {
						c := copy(sink, data)
						data = data[c:]
					}
					buf = buf[k:]
				}
			}
		})
		b.Run(name+"/net_http", func(b *testing.B) {
			rd := bytes.NewReader(wire)
			br := bufio.NewReader(rd)
			sink := make([]byte, 32<<10)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				rd.Reset(wire)
				br.Reset(rd)
				cr := httputil.NewChunkedReader(br)
				n := 0
				for {
					k, err := cr.Read(sink)
					n += k
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				if n != size {
					b.Fatal(n)
				}
			}
		})
	}
}

// BenchmarkSerializeResponseHead writes an 8-line response head with the
// encoders, beside net/http's Header.Write (plus the status line) into a
// reused bytes.Buffer.
func BenchmarkSerializeResponseHead(b *testing.B) {
	b.Run("sluice", func(b *testing.B) {
		dst := make([]byte, 0, 1024)
		b.ReportAllocs()
		b.SetBytes(int64(len(typicalResponseHead)))
		for b.Loop() {
			dst = appendTypicalResponseHead(dst[:0])
		}
	})
	b.Run("net_http", func(b *testing.B) {
		h := http.Header{
			"Content-Type":   {"application/javascript"},
			"Content-Length": {"48213"},
			"Cache-Control":  {"public, max-age=31536000, immutable"},
			"Etag":           {`"5f2b-17a3c"`},
			"Last-Modified":  {"Tue, 07 May 2024 10:00:00 GMT"},
			"Vary":           {"Accept-Encoding"},
			"Date":           {"Wed, 08 May 2024 12:00:00 GMT"},
		}
		var buf bytes.Buffer
		b.ReportAllocs()
		b.SetBytes(int64(len(typicalResponseHead)))
		for b.Loop() {
			buf.Reset()
			buf.WriteString("HTTP/1.1 200 OK\r\n")
			if err := h.Write(&buf); err != nil {
				b.Fatal(err)
			}
			buf.WriteString("\r\n")
		}
	})
}

// BenchmarkRewriteRequestHead is the proxy's per-request work on a head:
// parse, drop hop-by-hop fields, add Via, serialize.
func BenchmarkRewriteRequestHead(b *testing.B) {
	in := []byte(browserRequest)
	var p h1.Parser
	var r h1.Request
	dst := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := p.ParseRequest(&r, in); err != nil {
			b.Fatal(err)
		}
		dst = h1.AppendRequestLine(dst[:0], r.Method, r.Target, 1)
		dst = h1.AppendEndToEnd(dst, &r.Headers)
		dst = h1.AppendHeader(dst, "Via", "1.1 sluice")
		dst = h1.AppendEndOfHead(dst)
	}
}
