package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/tlsio"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// HTTP/2 test harness: sluice with a TLS listener (ALPN h2 and http/1.1)
// and a cleartext one (HTTP/1.1 and h2c with prior knowledge), x/net's
// HTTP/2 client on the other side.

type h2Env struct {
	*hpEnv
	tlsAddr string // TLS listener
}

// h2Start runs the proxy with both listeners.
func h2Start(t testing.TB, cfg HTTPConfig, upstreams ...string) *h2Env {
	t.Helper()
	return h2StartEngine(t, cfg, engine.Config{}, upstreams...)
}

func h2StartEngine(t testing.TB, cfg HTTPConfig, ecfg engine.Config, upstreams ...string) *h2Env {
	t.Helper()
	srv := testutil.TLSServer(t, testutil.SelfSigned(t), tlsio.ServerConfig{NextProtos: []string{"h2", "http/1.1"}})
	env := hpLaunch(t, cfg, ecfg, srv, upstreams...)
	return &h2Env{hpEnv: env, tlsAddr: env.e.Addr("tls")}
}

// h2cClient speaks HTTP/2 with prior knowledge over cleartext.
func h2cClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
		},
	}
}

// h2TLSClient speaks HTTP/2 over TLS (ALPN h2).
func h2TLSClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http2.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}},
		},
	}
}

func (env *h2Env) h2cURL(path string) string { return "http://" + env.addr + path }
func (env *h2Env) tlsURL(path string) string { return "https://" + env.tlsAddr + path }

// h2cBackend is an h2c (prior knowledge) upstream: x/net's http2.Server
// on every accepted connection. conns counts them.
type h2cBackend struct {
	addr  string
	conns atomic.Int64
	srv   *http2.Server
}

func h2cServe(t testing.TB, h http.Handler) *h2cBackend {
	t.Helper()
	return h2cServeWith(t, &http2.Server{}, h)
}

func h2cServeWith(t testing.TB, srv *http2.Server, h http.Handler) *h2cBackend {
	t.Helper()
	b := &h2cBackend{srv: srv}
	b.addr = testutil.Serve(t, func(c net.Conn) {
		b.conns.Add(1)
		srv.ServeConn(c, &http2.ServeConnOpts{Handler: h})
	})
	return b
}

func (b *h2cBackend) url() string { return "h2c://" + b.addr }

// rawH2 is a hand-driven HTTP/2 client (x/net's Framer) for tests that
// look at frames: GOAWAY, RST_STREAM, floods.
type rawH2 struct {
	t   testing.TB
	c   net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	hb  bytes.Buffer
	dec *hpack.Decoder
	// peer holds the server's first SETTINGS.
	peer map[http2.SettingID]uint32
}

// rawH2Dial connects (over TLS with ALPN h2 when tlsOn), sends the
// preface and a SETTINGS frame with settings, and reads the server's
// SETTINGS (acknowledging it).
func rawH2Dial(t testing.TB, addr string, tlsOn bool, settings ...http2.Setting) *rawH2 {
	t.Helper()
	var c net.Conn
	var err error
	if tlsOn {
		c, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := &rawH2{t: t, c: c}
	r.fr = http2.NewFramer(c, c)
	r.fr.MaxHeaderListSize = 1 << 20
	r.enc = hpack.NewEncoder(&r.hb)
	r.dec = hpack.NewDecoder(4096, nil)
	r.fr.ReadMetaHeaders = r.dec
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server preface: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			r.peer = map[http2.SettingID]uint32{}
			sf.ForeachSetting(func(s http2.Setting) error { r.peer[s.ID] = s.Val; return nil })
			r.fr.WriteSettingsAck()
			return r
		}
	}
}

// block encodes a header list given as name, value pairs.
func (r *rawH2) block(kv ...string) []byte {
	r.hb.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		r.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return append([]byte(nil), r.hb.Bytes()...)
}

// get opens stream id with a GET for path.
func (r *rawH2) get(id uint32, path string) {
	r.t.Helper()
	err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndStream: true, EndHeaders: true,
		BlockFragment: r.block(":method", "GET", ":scheme", "https", ":authority", "test.local", ":path", path)})
	if err != nil {
		r.t.Fatal(err)
	}
}

// next reads the next frame, answering PINGs on the way (unless it is
// asked for them) and acknowledging SETTINGS.
func (r *rawH2) next() (http2.Frame, error) {
	for {
		f, err := testutil.ReadH2Frame(r.fr)
		if err != nil {
			return nil, err
		}
		if _, ok := f.(*http2.SettingsFrame); !ok {
			return f, nil
		}
	}
}

// writeBlock sends a header block as HEADERS and as many CONTINUATION
// frames as the default frame size needs.
func (r *rawH2) writeBlock(id uint32, block []byte, endStream bool) {
	r.t.Helper()
	const max = 16384
	first := block[:min(len(block), max)]
	rest := block[len(first):]
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndStream: endStream, EndHeaders: len(rest) == 0,
		BlockFragment: first}); err != nil {
		r.t.Fatal(err)
	}
	for len(rest) > 0 {
		k := min(len(rest), max)
		if err := r.fr.WriteContinuation(id, k == len(rest), rest[:k]); err != nil {
			r.t.Fatal(err)
		}
		rest = rest[k:]
	}
}
