package h1_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http/httputil"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

func TestChunkedDecode(t *testing.T) {
	tests := []struct {
		name, in, body, trailers string
	}{
		// RFC 9112 §7.1 grammar, piece by piece.
		{"single chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", ""},
		{"upper and lower hex", "A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij", ""},
		{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", ""},
		{"extensions ignored", "5;name=value;flag;q=\"a \\\"b\\\" ;c\"\r\nhello\r\n0;last\r\n\r\n", "hello", ""},
		{"BWS inside extensions", "5; a = b ;c\r\nhello\r\n0\r\n\r\n", "hello", ""},
		{"empty body", "0\r\n\r\n", "", ""},
		{"RFC9112 7.1.2 trailers", "4\r\nWiki\r\n0\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\nX-Sum:  abc \r\n\r\n", "Wiki",
			`Expires="Wed, 21 Oct 2015 07:28:00 GMT";X-Sum="abc";`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in + "NEXT")
			var d h1.BodyDecoder
			d.Reset(h1.BodyChunked, -1)
			body, trailers, n, err := decodeAll(&d, in, false)
			mustNil(t, err)
			if string(body) != tt.body || trailers != tt.trailers || n != len(tt.in) {
				t.Errorf("body %q trailers %q n %d; want %q %q %d", body, trailers, n, tt.body, tt.trailers, len(tt.in))
			}
			// net/http agrees on the data.
			std, err := io.ReadAll(httputil.NewChunkedReader(strings.NewReader(tt.in)))
			if err != nil || string(std) != tt.body {
				t.Errorf("net/http: %q, %v", std, err)
			}
			// Every split point, with the decoder resuming on the rest.
			for k := 0; k <= len(tt.in); k++ {
				d.Reset(h1.BodyChunked, -1)
				b1, _, n1, err := decodeAll(&d, in[:k], false)
				if err != nil && err != h1.ErrNeedMore {
					t.Fatalf("split %d: %v", k, err)
				}
				b2, tr2, n2, err := decodeAll(&d, in[n1:], false)
				if err != nil || string(b1)+string(b2) != tt.body || tr2 != tt.trailers || n1+n2 != len(tt.in) {
					t.Fatalf("split %d: %q+%q %q %d+%d %v", k, b1, b2, tr2, n1, n2, err)
				}
			}
		})
	}
}

func TestLengthAndCloseBodies(t *testing.T) {
	var d h1.BodyDecoder
	d.Reset(h1.BodyLength, 5)
	data, n, err := d.Decode([]byte("hel"))
	if string(data) != "hel" || n != 3 || err != nil || d.Done() || d.Remaining() != 2 {
		t.Fatalf("%q %d %v", data, n, err)
	}
	if _, _, err := d.Decode(nil); err != h1.ErrNeedMore {
		t.Fatalf("empty input: %v", err)
	}
	data, n, err = d.Decode([]byte("loGET /"))
	if string(data) != "lo" || n != 2 || err != nil || !d.Done() {
		t.Fatalf("%q %d %v", data, n, err)
	}
	if data, n, err := d.Decode([]byte("more")); data != nil || n != 0 || err != nil {
		t.Fatalf("after done: %q %d %v", data, n, err)
	}

	d.Reset(h1.BodyLength, 5)
	d.Decode([]byte("abc"))
	if err := d.EOF(); err != h1.ErrUnexpectedEOF {
		t.Fatalf("truncated CL body: %v", err)
	}
	d.Reset(h1.BodyLength, 0)
	if !d.Done() || d.EOF() != nil {
		t.Fatal("zero length body")
	}
	d.Reset(h1.BodyNone, -1)
	if !d.Done() {
		t.Fatal("no body")
	}

	d.Reset(h1.BodyUntilClose, -1)
	data, n, err = d.Decode([]byte("anything"))
	if string(data) != "anything" || n != 8 || err != nil || d.Done() {
		t.Fatalf("%q %d %v", data, n, err)
	}
	if err := d.EOF(); err != nil || !d.Done() {
		t.Fatalf("until close: %v", err)
	}

	d.Reset(h1.BodyChunked, -1)
	d.Decode([]byte("5\r\nhel"))
	if err := d.EOF(); err != h1.ErrUnexpectedEOF {
		t.Fatalf("truncated chunked body: %v", err)
	}
}

func TestChunkedErrorsAreSticky(t *testing.T) {
	var d h1.BodyDecoder
	d.Reset(h1.BodyChunked, -1)
	if _, _, err := d.Decode([]byte("zz\r\n")); err != h1.ErrBadChunkSize {
		t.Fatal(err)
	}
	if _, _, err := d.Decode([]byte("5\r\nhello\r\n0\r\n\r\n")); err != h1.ErrBadChunkSize {
		t.Fatalf("second call: %v", err)
	}
}

func TestTrailerLimits(t *testing.T) {
	d := h1.BodyDecoder{Config: h1.Config{MaxTrailerBytes: 32, MaxFields: 2}}
	d.Reset(h1.BodyChunked, -1)
	_, _, _, err := decodeAll(&d, []byte("0\r\nA: "+strings.Repeat("x", 40)), false)
	if err != h1.ErrTrailerTooLarge {
		t.Errorf("unterminated: %v", err)
	}
	d.Reset(h1.BodyChunked, -1)
	_, _, _, err = decodeAll(&d, []byte("0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), false)
	if err != h1.ErrTooManyFields {
		t.Errorf("count: %v", err)
	}
}

func TestChunkedEncodeRoundTrip(t *testing.T) {
	var trailers h1.Headers
	trailers.Add([]byte("Digest"), []byte("sha-256=abc"))
	for _, size := range []int{1, 15, 16, 255, 4096, 70000} {
		payload := bytes.Repeat([]byte("x"), size)
		var wire []byte
		for off := 0; off < size; off += 1000 {
			wire = h1.AppendChunk(wire, payload[off:min(off+1000, size)])
		}
		wire = h1.AppendChunk(wire, nil) // no-op
		wire = h1.AppendLastChunk(wire, &trailers)

		var d h1.BodyDecoder
		d.Reset(h1.BodyChunked, -1)
		body, tr, n, err := decodeAll(&d, wire, false)
		if err != nil || !bytes.Equal(body, payload) || n != len(wire) || tr != `Digest="sha-256=abc";` {
			t.Fatalf("size %d: %v n=%d/%d tr=%q", size, err, n, len(wire), tr)
		}
		std, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(wire)))
		if err != nil || !bytes.Equal(std, payload) {
			t.Fatalf("net/http read our encoding: %v", err)
		}
	}
	if got := string(h1.AppendChunkHeader(nil, 0xabc)); got != "abc\r\n" {
		t.Errorf("AppendChunkHeader = %q", got)
	}
	if got := string(h1.AppendLastChunk(nil, nil)); got != "0\r\n\r\n" {
		t.Errorf("AppendLastChunk = %q", got)
	}
}

func ExampleBodyDecoder() {
	var p h1.Parser
	var req h1.Request
	var dec h1.BodyDecoder
	buf := []byte("POST /upload HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n")
	n, err := p.ParseRequest(&req, buf)
	if err != nil {
		fmt.Println(h1.StatusFor(err))
		return
	}
	buf = buf[n:]
	dec.ForRequest(&req)
	for !dec.Done() {
		data, n, err := dec.Decode(buf)
		if errors.Is(err, h1.ErrNeedMore) {
			break // read more into buf and continue
		}
		if err != nil {
			fmt.Println(h1.StatusFor(err))
			return
		}
		if len(data) > 0 {
			fmt.Printf("%q\n", data) // forward upstream
		}
		buf = buf[n:]
	}
	fmt.Printf("left: %q\n", buf)
	// Output:
	// "hello"
	// " world"
	// left: "GET / HTTP/1.1\r\n"
}
