package h2

import (
	"testing"

	"golang.org/x/net/http2/hpack"
)

// Steady-state allocations of the hot paths of a Conn.

func TestConnDataPathAllocs(t *testing.T) {
	h := &consumeHandler{}
	c := NewConn(Server, Config{}, h, t0)
	h.c = c
	in := append([]byte(ClientPreface), appendSettings(nil)...)
	in = append(in, appendSettingsAck(nil)...)
	in = append(in, appendHeaders(nil, 1, false, true, typicalPostBlock())...)
	if _, err := c.Feed(t0, in); err != nil {
		t.Fatal(err)
	}
	frame := appendData(nil, 1, false, make([]byte, 1024))
	out := make([]byte, 0, 1<<16)
	n := testing.AllocsPerRun(1000, func() {
		if _, err := c.Feed(t0, frame); err != nil {
			t.Fatal(err)
		}
		out = c.AppendOutput(out[:0])
	})
	if n != 0 {
		t.Fatalf("DATA receive path: %v allocs per frame", n)
	}
}

type respondHandler struct {
	NopHandler
	c *Conn
}

var status204 = []hpack.HeaderField{{Name: ":status", Value: "204"}}

func (h *respondHandler) OnHeaders(id uint32, _ *Headers) { h.c.WriteHeaders(id, status204, true) }

// TestConnRequestAllocs: a request whose fields the peer's encoder has
// indexed (the common case from the second request on) is decoded,
// validated, delivered and answered without allocating.
func TestConnRequestAllocs(t *testing.T) {
	h := &respondHandler{}
	c := openedServer(t, h)
	h.c = c
	peer := newPeerEncoder()
	id := uint32(1)
	var frame, out []byte
	fields := typicalRequest()
	next := func() {
		frame = appendHeaders(frame[:0], id, true, true, peer.encode(fields))
		id += 2
	}
	next()
	c.Feed(t0, frame) // first request fills the dynamic tables
	out = c.AppendOutput(out[:0])
	n := testing.AllocsPerRun(1000, func() {
		next()
		if _, err := c.Feed(t0, frame); err != nil {
			t.Fatal(err)
		}
		out = c.AppendOutput(out[:0])
	})
	if n != 0 {
		t.Fatalf("request path: %v allocs per request", n)
	}
}

type peerEncoder struct {
	enc *hpack.Encoder
	buf blockWriter
}

func newPeerEncoder() *peerEncoder {
	p := &peerEncoder{}
	p.enc = hpack.NewEncoder(&p.buf)
	return p
}

func (p *peerEncoder) encode(fields []hpack.HeaderField) []byte {
	p.buf.b = p.buf.b[:0]
	for _, f := range fields {
		p.enc.WriteField(f)
	}
	return p.buf.b
}
