package testutil

import (
	"bytes"
	"io"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// ReadH2Frame reads the next frame from a hand-driven HTTP/2 peer's
// framer, acknowledging a SETTINGS and answering a PING on the way; the
// frame is returned either way, for the caller to look at too.
func ReadH2Frame(fr *http2.Framer) (http2.Frame, error) {
	f, err := fr.ReadFrame()
	if err != nil {
		return nil, err
	}
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if !f.IsAck() {
			fr.WriteSettingsAck()
		}
	case *http2.PingFrame:
		if !f.IsAck() {
			fr.WritePing(true, f.Data)
		}
	}
	return f, nil
}

// HeaderBlock HPACK-encodes header lists for a hand-driven HTTP/2 peer,
// one encoder (and so one dynamic table) per connection.
type HeaderBlock struct {
	buf bytes.Buffer
	enc *hpack.Encoder
}

// Encode returns the block for a header list given as name, value pairs,
// in a slice of its own.
func (h *HeaderBlock) Encode(kv ...string) []byte {
	if h.enc == nil {
		h.enc = hpack.NewEncoder(&h.buf)
	}
	h.buf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		h.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return append([]byte(nil), h.buf.Bytes()...)
}

// H2Conn is a hand-driven HTTP/2 client connection (x/net's Framer) for
// tests that look at frames.
type H2Conn struct {
	Fr *http2.Framer
	HeaderBlock
}

// StartH2 writes the client preface and a SETTINGS frame carrying
// settings on c; header blocks are decoded into MetaHeadersFrames.
func StartH2(c io.ReadWriter, settings ...http2.Setting) (*H2Conn, error) {
	h := &H2Conn{Fr: http2.NewFramer(c, c)}
	h.Fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return nil, err
	}
	return h, h.Fr.WriteSettings(settings...)
}

// Get opens stream id with a GET of path on an https authority, the
// request's end with its headers.
func (h *H2Conn) Get(id uint32, authority, path string) error {
	return h.Fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndStream: true, EndHeaders: true,
		BlockFragment: h.Encode(":method", "GET", ":scheme", "https", ":authority", authority, ":path", path)})
}

// Next reads the next frame (see ReadH2Frame).
func (h *H2Conn) Next() (http2.Frame, error) { return ReadH2Frame(h.Fr) }
