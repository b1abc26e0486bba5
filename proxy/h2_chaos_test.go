package proxy

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Many concurrent streams, each cancelled at a random point (before the
// head, mid-body, or never), against an HTTP/1.1 and an h2c upstream:
// afterwards every counter settles (no stream, attempt or busy upstream
// connection left) and new requests still work.
func TestH2ChaosCancels(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/small") {
			io.WriteString(w, "ok")
			return
		}
		io.Copy(io.Discard, r.Body)
		buf := make([]byte, 32<<10)
		for i := 0; i < 32; i++ {
			if _, err := w.Write(buf); err != nil {
				return
			}
			if i%8 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	h1 := hpServe(t, handler)
	h2 := h2cServe(t, handler)
	env := h2Start(t, HTTPConfig{Routes: []Route{
		{PathPrefix: "/", Upstreams: []string{h1.addr()}},
		{PathPrefix: "/c/", Upstreams: []string{h2.url()}},
	}})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := h2cClient()
			if g%2 == 1 {
				cl = h2TLSClient()
			}
			for i := 0; i < 25; i++ {
				path := "/big"
				if rand.IntN(2) == 0 {
					path = "/c/big"
				}
				ctx, cancel := context.WithCancel(context.Background())
				var body io.Reader
				if rand.IntN(3) == 0 {
					body = io.LimitReader(zeros{}, int64(rand.IntN(300<<10)))
				}
				req, _ := http.NewRequestWithContext(ctx, "POST", env.h2cURL(path), body)
				if g%2 == 1 {
					req, _ = http.NewRequestWithContext(ctx, "POST", env.tlsURL(path), body)
				}
				cut := rand.IntN(4) // 0: before the head, 1-2: mid-body, 3: never
				if cut == 0 {
					time.AfterFunc(time.Duration(rand.IntN(2000))*time.Microsecond, cancel)
				}
				resp, err := cl.Do(req)
				if err == nil {
					limit := int64(1 << 30)
					if cut == 1 || cut == 2 {
						limit = int64(rand.IntN(1 << 20))
					}
					io.Copy(io.Discard, io.LimitReader(resp.Body, limit))
					cancel()
					resp.Body.Close()
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	hpSettled(t, env.hpEnv)
	hpEventually(t, "no active stream", func() bool { return env.metric("sluice_http2_streams_active") == 0 })
	for _, p := range []string{"/small", "/c/small"} {
		resp, err := h2cClient().Get(env.h2cURL(p))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok" {
			t.Fatalf("%s after the chaos: %d, %d bytes", p, resp.StatusCode, len(b))
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
