package proxy

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// An HTTP/1.1 client that reads slowly pauses its upstream attempt with
// the rest of a read still unparsed: the response reader stops there,
// keeps it (chunk lines cut anywhere), and goes on from it on resume.
// Thousands of small chunks arrive many to a read; the body and its
// trailer must arrive whole and in order, and the upstream must have
// been paused (the path this covers) at least once.
func TestHTTPSlowReaderChunkedResumesMidRead(t *testing.T) {
	var body, framed []byte
	for i := 0; len(body) < 4<<20; i++ {
		n := 1 + (i*7919)%3000
		chunk := make([]byte, n)
		for j := range chunk {
			chunk[j] = byte(len(body) + j)
		}
		body = append(body, chunk...)
		framed = h1.AppendChunk(framed, chunk)
	}
	sum := fmt.Sprintf("%08x", crc32.ChecksumIEEE(body))
	framed = append(framed, "0\r\nX-Sum: "+sum+"\r\n\r\n"...)
	head := []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n")
	up := hpRawServer(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		for {
			n, err := readUntil(c, buf, []byte("\r\n\r\n"))
			if err != nil {
				return
			}
			if bytes.HasPrefix(buf[:n], []byte("GET /warm ")) {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				continue
			}
			c.Write(append(append([]byte(nil), head...), framed...)) // one write: many chunks per read
		}
	})
	env := hpStartEngine(t, HTTPConfig{}, engine.Config{Loops: 1, HighWater: 64 << 10, LowWater: 16 << 10}, up)
	c, br := hpRaw(t, env.addr)
	c.SetReadBuffer(16 << 10)
	get := func(path string) *http.Response {
		t.Helper()
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	warm := get("/warm") // pools the upstream connection: the next request does not pause for a dial
	io.Copy(io.Discard, warm.Body)
	warm.Body.Close()
	pauses := env.metric("sluice_read_pauses_total")

	resp := get("/big")
	got := make([]byte, 0, len(body))
	buf := make([]byte, 8<<10)
	since := 0
	for {
		n, err := resp.Body.Read(buf)
		got = append(got, buf[:n]...)
		if since += n; since >= 128<<10 {
			since = 0
			time.Sleep(2 * time.Millisecond) // slower than the upstream: sluice's output backs up
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
	}
	if !bytes.Equal(got, body) {
		i := 0
		for i < len(got) && i < len(body) && got[i] == body[i] {
			i++
		}
		t.Fatalf("body: %d bytes, want %d; first difference at %d", len(got), len(body), i)
	}
	if v := resp.Trailer.Get("X-Sum"); v != sum {
		t.Errorf("trailer X-Sum %q, want %q", v, sum)
	}
	if d := env.metric("sluice_read_pauses_total") - pauses; d < 1 {
		t.Errorf("the upstream was never paused (read pauses +%v): the test did not cover the pause", d)
	}
}
