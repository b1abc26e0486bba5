package h2

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// typicalRequest is what a browser sends for a page.
func typicalRequest() []hpack.HeaderField {
	return []hpack.HeaderField{
		hf(":method", "GET"),
		hf(":scheme", "https"),
		hf(":authority", "www.example.com"),
		hf(":path", "/products/list?page=2&sort=price"),
		hf("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
		hf("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
		hf("accept-language", "en-US,en;q=0.5"),
		hf("accept-encoding", "gzip, deflate, br, zstd"),
		hf("referer", "https://www.example.com/products/list?page=1"),
		hf("cookie", "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark"),
		hf("sec-fetch-dest", "document"),
		hf("sec-fetch-mode", "navigate"),
		hf("upgrade-insecure-requests", "1"),
	}
}

func typicalRequestBlock() []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range typicalRequest() {
		enc.WriteField(f)
	}
	return buf.Bytes()
}

// benchCase is one frame to parse or encode. The xnet hooks (x/net's
// Framer as the baseline) are set by xnet_test.go.
type benchCase struct {
	name    string
	frame   []byte
	payload []byte
	encode  func(dst []byte) []byte
}

var (
	xnetParse  func(b *testing.B, frame []byte)
	xnetEncode func(b *testing.B, name string, payload []byte)
)

func benchCases() []benchCase {
	d1 := bytes.Repeat([]byte{'d'}, 1<<10)
	d16 := bytes.Repeat([]byte{'d'}, 16<<10)
	block := typicalRequestBlock()
	return []benchCase{
		{"DATA-1KiB", appendData(nil, 1, false, d1), d1, func(dst []byte) []byte { return appendData(dst, 1, false, d1) }},
		{"DATA-16KiB", appendData(nil, 1, false, d16), d16, func(dst []byte) []byte { return appendData(dst, 1, false, d16) }},
		{"HEADERS-request", appendHeaders(nil, 1, true, true, block), block, func(dst []byte) []byte { return appendHeaders(dst, 1, true, true, block) }},
	}
}

func BenchmarkFrameParse(b *testing.B) {
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			b.Run("sluice", func(b *testing.B) {
				var fr framer
				b.ReportAllocs()
				b.SetBytes(int64(len(bc.frame)))
				for b.Loop() {
					if _, _, err := fr.ReadFrame(bc.frame); err != nil {
						b.Fatal(err)
					}
				}
			})
			if xnetParse != nil {
				b.Run("xnet", func(b *testing.B) { xnetParse(b, bc.frame) })
			}
		})
	}
}

func BenchmarkFrameEncode(b *testing.B) {
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			b.Run("sluice", func(b *testing.B) {
				dst := make([]byte, 0, len(bc.frame))
				b.ReportAllocs()
				b.SetBytes(int64(len(bc.frame)))
				for b.Loop() {
					dst = bc.encode(dst[:0])
				}
			})
			if xnetEncode != nil {
				b.Run("xnet", func(b *testing.B) { xnetEncode(b, bc.name, bc.payload) })
			}
		})
	}
}

// BenchmarkConnData measures the whole receive path of a server Conn for
// DATA frames: parse, state, flow control, delivery, Consumed and the
// WINDOW_UPDATEs it earns.
func BenchmarkConnData(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		b.Run(sizeName(size), func(b *testing.B) {
			h := &consumeHandler{}
			c := NewConn(Server, Config{}, h, t0)
			h.c = c
			in := append([]byte(ClientPreface), appendSettings(nil)...)
			in = append(in, appendSettingsAck(nil)...)
			in = append(in, appendHeaders(nil, 1, false, true, typicalPostBlock())...)
			if _, err := c.Feed(t0, in); err != nil {
				b.Fatal(err)
			}
			frame := appendData(nil, 1, false, bytes.Repeat([]byte{'d'}, size))
			out := make([]byte, 0, 1<<16)
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if _, err := c.Feed(t0, frame); err != nil {
					b.Fatal(err)
				}
				out = c.AppendOutput(out[:0])
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1<<10 {
		return itoa(n>>10) + "KiB"
	}
	return itoa(n) + "B"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func typicalPostBlock() []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range postFields() {
		enc.WriteField(f)
	}
	return buf.Bytes()
}

type consumeHandler struct {
	NopHandler
	c *Conn
}

func (h *consumeHandler) OnData(id uint32, data []byte, es bool) { h.c.Consumed(id, len(data)) }

// BenchmarkConnRequest measures a server Conn handling one request whose
// fields the peer's HPACK encoder has indexed, and answering it with a
// 204: decode, validate, open, deliver, encode, close.
func BenchmarkConnRequest(b *testing.B) {
	h := &respondHandler{}
	h.c = openedServer(b, h)
	benchRequests(b, h.c)
}

// openedServer returns a server Conn past the preface and the SETTINGS
// exchange, its events going to h.
func openedServer(tb testing.TB, h Handler) *Conn {
	c := NewConn(Server, Config{}, h, t0)
	in := append([]byte(ClientPreface), appendSettings(nil)...)
	in = append(in, appendSettingsAck(nil)...)
	if _, err := c.Feed(t0, in); err != nil {
		tb.Fatal(err)
	}
	return c
}

// benchRequests feeds c one request per iteration, its fields indexed by
// the peer's encoder, and takes the output.
func benchRequests(b *testing.B, c *Conn) {
	peer := newPeerEncoder()
	fields := typicalRequest()
	id := uint32(1)
	var frame, out []byte
	b.ReportAllocs()
	for b.Loop() {
		frame = appendHeaders(frame[:0], id, true, true, peer.encode(fields))
		id += 2
		if _, err := c.Feed(t0, frame); err != nil {
			b.Fatal(err)
		}
		out = c.AppendOutput(out[:0])
	}
}

// fieldsHandler answers every request with the next of its field lists.
type fieldsHandler struct {
	NopHandler
	c     *Conn
	lists [][]hpack.HeaderField
	n     int
}

func (h *fieldsHandler) OnHeaders(id uint32, _ *Headers) {
	h.c.WriteHeaders(id, h.lists[h.n%len(h.lists)], true)
	h.n++
}

// BenchmarkConnResponseHeaders measures a server Conn taking an indexed
// request and answering with a proxy's typical response head (six fields
// the encoder has indexed): "repeat" sends the same head every time (the
// block cache answers), "alternate" switches between two heads, so every
// block goes through the HPACK encoder.
func BenchmarkConnResponseHeaders(b *testing.B) {
	head := func(ct string) []hpack.HeaderField {
		return []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "server", Value: "nginx/1.22.1"},
			{Name: "date", Value: "Thu, 26 Nov 2026 01:00:00 GMT"}, {Name: "content-type", Value: ct},
			{Name: "content-length", Value: "1024"}, {Name: "via", Value: "2 sluice"}}
	}
	for _, bc := range []struct {
		name  string
		lists [][]hpack.HeaderField
	}{
		{"repeat", [][]hpack.HeaderField{head("application/octet-stream")}},
		{"alternate", [][]hpack.HeaderField{head("application/octet-stream"), head("text/html")}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := &fieldsHandler{lists: bc.lists}
			h.c = openedServer(b, h)
			benchRequests(b, h.c)
		})
	}
}
