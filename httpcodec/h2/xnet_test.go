// Baselines and peers from golang.org/x/net/http2 itself. It adds an "xnet" sub-benchmark beside each of ours and x/net's
// Server.ServeConn and Transport.NewClientConn to the interop peers.

package h2

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2"
)

func init() {
	xnetParse = func(b *testing.B, frame []byte) {
		r := bytes.NewReader(frame)
		fr := http2.NewFramer(io.Discard, r)
		fr.SetReuseFrames() // as x/net's own server does
		b.ReportAllocs()
		b.SetBytes(int64(len(frame)))
		for b.Loop() {
			r.Reset(frame)
			if _, err := fr.ReadFrame(); err != nil {
				b.Fatal(err)
			}
		}
	}
	xnetEncode = func(b *testing.B, name string, payload []byte) {
		var buf bytes.Buffer
		fr := http2.NewFramer(&buf, nil)
		b.ReportAllocs()
		b.SetBytes(int64(frameHeaderLen + len(payload)))
		headers := strings.HasPrefix(name, "HEADERS")
		for b.Loop() {
			buf.Reset()
			var err error
			if headers {
				err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: payload, EndStream: true, EndHeaders: true})
			} else {
				err = fr.WriteData(1, false, payload)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	peerServers = append(peerServers, peerServer{"x-net-http2", func(t *testing.T, nc net.Conn, h http.Handler) {
		go new(http2.Server).ServeConn(nc, &http2.ServeConnOpts{Handler: h})
		t.Cleanup(func() { nc.Close() })
	}})
	peerClients = append(peerClients, peerClient{"x-net-http2", func(t *testing.T, dial func() net.Conn) http.RoundTripper {
		tr := &http2.Transport{
			AllowHTTP: true, // h2c with prior knowledge: "TLS" dial returns a plain pipe
			DialTLSContext: func(context.Context, string, string, *tls.Config) (net.Conn, error) {
				return dial(), nil
			},
		}
		t.Cleanup(tr.CloseIdleConnections)
		return tr
	}})
}

// TestXNetFramerReadsOurFrames cross-checks our encoder against x/net's
// parser for every frame type.
func TestXNetFramerReadsOurFrames(t *testing.T) {
	var b []byte
	b = appendSettings(b, setting{settingMaxConcurrentStreams, 10})
	b = appendSettingsAck(b)
	b = appendHeadersFrame(b, headersParams{StreamID: 1, Fragment: typicalRequestBlock(), EndHeaders: true, Padded: true, PadLength: 7, HasPriority: true, Priority: priority{StreamDep: 0, Weight: 9}})
	b = appendDataPadded(b, 1, false, []byte("padded"), 5)
	b = appendData(b, 1, true, []byte("data"))
	b = appendPriority(b, 3, priority{StreamDep: 1, Exclusive: true, Weight: 3})
	b = appendRSTStream(b, 3, ErrCodeCancel)
	b = appendPing(b, false, [8]byte{1})
	b = appendWindowUpdate(b, 0, 1000)
	b = appendGoAway(b, 1, ErrCodeNo, []byte("bye"))
	fr := http2.NewFramer(io.Discard, bytes.NewReader(b))
	want := []string{"SETTINGS", "SETTINGS", "HEADERS", "DATA", "DATA", "PRIORITY", "RST_STREAM", "PING", "WINDOW_UPDATE", "GOAWAY"}
	for i, w := range want {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got := f.Header().Type.String(); got != w {
			t.Fatalf("frame %d: %s, want %s", i, got, w)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			if d := string(f.Data()); d != "padded" && d != "data" {
				t.Fatalf("data %q", d)
			}
		case *http2.HeadersFrame:
			if !bytes.Equal(f.HeaderBlockFragment(), typicalRequestBlock()) || f.Priority.Weight != 9 {
				t.Fatal("headers differ")
			}
		case *http2.GoAwayFrame:
			if string(f.DebugData()) != "bye" {
				t.Fatal("debug differs")
			}
		}
	}
}
