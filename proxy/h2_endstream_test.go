package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// A client that has sent its whole declared body but not yet END_STREAM
// (hyper's h2 client sends it in a DATA frame of its own, after the last
// chunk) gets the response and no RST_STREAM: hyper 0.14's h2 turned the
// RST_STREAM(NO_ERROR) sluice sent there into an error on a response it
// already held whole. A client still owing body bytes is told to stop
// with RST_STREAM(NO_ERROR), as RFC 9113 §8.1 allows.
func TestH2NoResetOnceTheDeclaredBodyIsIn(t *testing.T) {
	// An HTTP/1.1 upstream that echoes a body, or (/early) answers at
	// once and then only reads.
	addr := hpRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/early" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
				io.Copy(io.Discard, br)
				return
			}
			b, _ := io.ReadAll(req.Body)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(b), b)
		}
	})
	env := h2Start(t, HTTPConfig{}, addr)
	r := rawH2Dial(t, env.addr, false)

	post := func(id uint32, path, clen string) {
		r.writeBlock(id, r.block(":method", "POST", ":scheme", "http", ":authority", "test.local", ":path", path,
			"content-length", clen), false)
		if err := r.fr.WriteData(id, false, []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	// until reads frames of stream id up to its END_STREAM and returns a
	// RST_STREAM seen on the way or within quiet after it.
	until := func(id uint32, quiet time.Duration) *http2.RSTStreamFrame {
		t.Helper()
		var rst *http2.RSTStreamFrame
		ended := false
		for {
			if ended {
				r.c.SetReadDeadline(time.Now().Add(quiet))
			}
			f, err := r.next()
			if ended && errors.Is(err, os.ErrDeadlineExceeded) {
				r.c.SetReadDeadline(time.Now().Add(30 * time.Second))
				return rst
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("timed out waiting for the response")
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Header().StreamID != id {
				continue
			}
			switch f := f.(type) {
			case *http2.DataFrame:
				ended = ended || f.StreamEnded()
			case *http2.MetaHeadersFrame:
				ended = ended || f.StreamEnded()
			case *http2.RSTStreamFrame:
				rst = f
				if ended {
					r.c.SetReadDeadline(time.Now().Add(30 * time.Second))
					return rst
				}
				t.Fatalf("stream %d reset (%v) before its response ended", id, f.ErrCode)
			case *http2.GoAwayFrame:
				t.Fatalf("GOAWAY %v", f.ErrCode)
			}
		}
	}

	post(1, "/echo", "5")
	if rst := until(1, 300*time.Millisecond); rst != nil {
		t.Fatalf("RST_STREAM %v after a response to a request whose declared body was all sent", rst.ErrCode)
	}
	if err := r.fr.WriteData(1, true, nil); err != nil { // the END_STREAM, late
		t.Fatal(err)
	}

	post(3, "/early", "100000")
	rst := until(3, 2*time.Second)
	if rst == nil || rst.ErrCode != http2.ErrCodeNo {
		t.Fatalf("RST_STREAM after an early response to a request still owing its body: %v, want NO_ERROR", rst)
	}

	// The connection is whole: another request works.
	r.get(5, "/echo")
	if rst := until(5, 100*time.Millisecond); rst != nil {
		t.Fatalf("RST_STREAM %v on a GET", rst.ErrCode)
	}
}
