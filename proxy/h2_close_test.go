package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// h2Pattern is a deterministic body for checksums.
func h2Pattern(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(12, 12))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Issue #12, defect 2: when the last stream of an HTTP/2 connection ends
// from the upstream side, the connection must close at once if the client
// has half-closed (close_notify) or the drain's final GOAWAY is out; the
// check ran only from the connection's own callbacks, so the FIN waited
// for the next housekeeping tick (up to a second).
func TestH2CloseWhenLastStreamEndsFromUpstream(t *testing.T) {
	const size = 8 << 20
	body := h2Pattern(size)
	want := sha256.Sum256(body)
	release := make(chan struct{})
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/held" {
			<-release
		}
		w.Header().Set("Content-Length", "8388608")
		w.Write(body)
	}))
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	for _, tc := range []string{"close_notify", "drain"} {
		t.Run(tc, func(t *testing.T) {
			env := h2Start(t, HTTPConfig{}, be.addr())
			r := rawH2Dial(t, env.tlsAddr, true, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
			if err := r.fr.WriteWindowUpdate(0, 1<<31-1-65535); err != nil {
				t.Fatal(err)
			}
			if tc == "close_notify" {
				r.get(1, "/big")
				// close_notify: a half-close, the response still comes.
				if err := r.c.(*tls.Conn).CloseWrite(); err != nil {
					t.Fatal(err)
				}
			} else {
				r.get(1, "/held")
				hpEventually(t, "the stream open", func() bool { return env.metric("sluice_http2_streams_active") == 1 })
				go env.e.Drain(context.Background())
				// The two GOAWAYs (rawH2.next answers the PING), then the body.
				goaways := 0
				for goaways < 2 {
					f, err := r.next()
					if err != nil {
						t.Fatal(err)
					}
					if _, ok := f.(*http2.GoAwayFrame); ok {
						goaways++
					}
				}
				close(release)
			}
			h := sha256.New()
			got := 0
			var last time.Time
			for last.IsZero() {
				f, err := r.next()
				if err != nil {
					t.Fatalf("after %d bytes: %v", got, err)
				}
				if d, ok := f.(*http2.DataFrame); ok {
					h.Write(d.Data())
					got += len(d.Data())
					if d.StreamEnded() {
						last = time.Now()
					}
				}
			}
			if got != size || [32]byte(h.Sum(nil)) != want {
				t.Fatalf("got %d bytes (want %d), checksum match %v", got, size, [32]byte(h.Sum(nil)) == want)
			}
			// Only the end of the connection may follow: close_notify, FIN.
			for {
				f, err := r.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("after the response: %v", err)
				}
				if _, ok := f.(*http2.GoAwayFrame); !ok {
					t.Fatalf("after the response: %T", f)
				}
			}
			// The tick is a second with the default timeouts; the FIN
			// must come with the last stream's end, not with the tick.
			if gap := time.Since(last); gap > 200*time.Millisecond {
				t.Fatalf("FIN %v after the last byte", gap)
			}
		})
	}
}
