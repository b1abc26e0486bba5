package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"

	exch "github.com/sluice-proxy/sluice/proxy/exchange"
	"github.com/sluice-proxy/sluice/proxy/upstream"
)

// The one retry policy, for every protocol pair. A case names the pairs
// it can arise in: a stale pooled connection only on an HTTP/1.1
// upstream, a refused stream only on an HTTP/2 one. Each pair's exchange
// is built as its client side builds it (armReplay, keepSent) and asked
// through exchange.retryAction, the function all four cells call.
func TestRetryPolicyTable(t *testing.T) {
	type pair struct {
		name     string
		h2Client bool
		h2Up     bool
	}
	pairs := []pair{
		{"h1-h1", false, false}, {"h1-h2c", false, true},
		{"h2-h1", true, false}, {"h2-h2c", true, true},
	}
	type tc struct {
		name       string
		method     string
		kind       errKind
		stale      bool
		refused    bool
		body       int // body bytes taken from the client and sent
		attempts   int // attempts made, the failed one included
		interim    bool
		started    bool
		onlyH1Up   bool // stale: a pooled HTTP/1.1 connection
		onlyH2Up   bool // refused: an HTTP/2 stream
		wantH1Up   exch.Action
		wantH2Up   exch.Action
		retries    int // the route's; 2 unless set
		noRetries  bool
		bodyLimit  int // RetryBodyBytes; 64 KiB unless set
		mixedRoute bool
	}
	cases := []tc{
		{name: "dial GET", method: "GET", kind: errDial, wantH1Up: exch.Elsewhere, wantH2Up: exch.Elsewhere},
		{name: "dial POST nothing sent", method: "POST", kind: errDial, wantH1Up: exch.Elsewhere, wantH2Up: exch.Elsewhere},
		{name: "dial timeout POST", method: "POST", kind: errDialTimeout, wantH1Up: exch.Elsewhere, wantH2Up: exch.Elsewhere},
		{name: "upstream TLS PUT", method: "PUT", kind: errUpTLS, wantH1Up: exch.Elsewhere, wantH2Up: exch.Elsewhere},
		{name: "dial, retries used", method: "GET", kind: errDial, attempts: 3, wantH1Up: exch.NoRetry, wantH2Up: exch.NoRetry},
		{name: "dial, retries off", method: "GET", kind: errDial, noRetries: true, wantH1Up: exch.NoRetry, wantH2Up: exch.NoRetry},
		{name: "stale GET", method: "GET", kind: errUpReset, stale: true, onlyH1Up: true, wantH1Up: exch.Fresh},
		{name: "stale PUT body held", method: "PUT", kind: errUpReset, stale: true, body: 1000, onlyH1Up: true, wantH1Up: exch.Fresh},
		{name: "stale PUT body past the hold", method: "PUT", kind: errUpReset, stale: true, body: 1000, bodyLimit: 100, onlyH1Up: true, wantH1Up: exch.NoRetry},
		{name: "stale POST", method: "POST", kind: errUpReset, stale: true, onlyH1Up: true, wantH1Up: exch.NoRetry},
		{name: "stale GET after 100 Continue", method: "GET", kind: errUpReset, stale: true, interim: true, onlyH1Up: true, wantH1Up: exch.NoRetry},
		{name: "reset, not stale", method: "GET", kind: errUpReset, wantH1Up: exch.NoRetry, wantH2Up: exch.NoRetry},
		{name: "timeout", method: "GET", kind: errUpTimeout, wantH1Up: exch.NoRetry, wantH2Up: exch.NoRetry},
		{name: "bad response", method: "GET", kind: errUpBadResponse, wantH1Up: exch.NoRetry, wantH2Up: exch.NoRetry},
		{name: "queue full", method: "GET", kind: errQueueFull, wantH1Up: exch.NoRetry, wantH2Up: exch.NoRetry},
		{name: "refused POST", method: "POST", kind: errUpReset, refused: true, onlyH2Up: true, wantH2Up: exch.Same},
		{name: "refused POST body held", method: "POST", kind: errUpReset, refused: true, body: 5000, onlyH2Up: true, wantH2Up: exch.Same},
		{name: "refused POST body past the hold", method: "POST", kind: errUpReset, refused: true, body: 5000, bodyLimit: 4096, onlyH2Up: true, wantH2Up: exch.NoRetry},
		{name: "refused after 100 Continue", method: "POST", kind: errUpReset, refused: true, interim: true, onlyH2Up: true, wantH2Up: exch.Same},
		{name: "refused, retries used", method: "POST", kind: errUpReset, refused: true, attempts: 3, onlyH2Up: true, wantH2Up: exch.NoRetry},
		{name: "refused after the response head", method: "GET", kind: errUpReset, refused: true, started: true, onlyH2Up: true, wantH2Up: exch.NoRetry},
		{name: "connection never opened", method: "POST", kind: errDial, refused: true, onlyH2Up: true, wantH2Up: exch.Elsewhere},
		{name: "dial after a refusal, body held", method: "POST", kind: errDial, body: 10, attempts: 2, onlyH2Up: true, wantH2Up: exch.Elsewhere},
		{name: "dial after a refusal, mixed route", method: "POST", kind: errDial, body: 10, attempts: 2, onlyH2Up: true, mixedRoute: true, wantH2Up: exch.NoRetry},
	}
	for _, p := range pairs {
		for _, c := range cases {
			if c.onlyH1Up && p.h2Up || c.onlyH2Up && !p.h2Up {
				continue
			}
			t.Run(p.name+"/"+c.name, func(t *testing.T) {
				retries := 2
				if c.noRetries {
					retries = 0
				}
				limit := 64 << 10
				if c.bodyLimit > 0 {
					limit = c.bodyLimit
				}
				h := &HTTP{}
				h.cfg.RetryBodyBytes = limit
				rt := &route{retries: retries, ups: []*Upstream{upstream.New("a", "a:1", 0, p.h2Up, nil)}, hasH2C: p.h2Up}
				if c.mixedRoute {
					rt.ups = append(rt.ups, upstream.New("b", "b:1", 1, false, nil))
				}
				x := &exchange{rt: rt, idempotent: idempotent(c.method)}
				if !p.h2Client {
					x.idempotent = idempotent([]byte(c.method))
				}
				x.armReplay()
				x.attempts = max(c.attempts, 1)
				if c.body > 0 {
					// Sent in pieces, as a body streams.
					piece := make([]byte, 100)
					for sent := 0; sent < c.body; sent += len(piece) {
						x.keepSent(h, piece)
					}
				}
				x.cont100 = c.interim
				if c.started {
					x.resp = respStarted
				}
				want := c.wantH1Up
				if p.h2Up {
					want = c.wantH2Up
				}
				if got := x.retryAction(c.kind, c.stale, c.refused); got != want {
					t.Fatalf("retryAction = %v, want %v", got, want)
				}
			})
		}
	}
}

// A POST whose body went out on a stream the h2c upstream then refused
// (RST_STREAM REFUSED_STREAM) is retried with its body whole, from an
// HTTP/1.1 client as from an HTTP/2 one, chunked trailers included. The
// HTTP/1.1 client's path kept no copy of a body before and answered 502.
func TestH2CRefusedAfterBodyRetries(t *testing.T) {
	for _, h1 := range []bool{true, false} {
		t.Run(fmt.Sprintf("h1client=%v", h1), func(t *testing.T) {
			var streams atomic.Int64
			up := rawH2CServer(t, func(u *rawUp) {
				for {
					h, err := u.request(nil)
					if err != nil {
						return
					}
					body, trailer := "", ""
					for ended := h.StreamEnded(); !ended; {
						f, err := u.fr.ReadFrame()
						if err != nil {
							return
						}
						switch f := f.(type) {
						case *http2.DataFrame:
							if f.StreamID == h.StreamID {
								body += string(f.Data())
								ended = f.StreamEnded()
							}
						case *http2.MetaHeadersFrame:
							if f.StreamID == h.StreamID {
								for _, hf := range f.RegularFields() {
									trailer += hf.Name + "=" + hf.Value
								}
								ended = f.StreamEnded()
							}
						case *http2.SettingsFrame:
							if !f.IsAck() {
								u.fr.WriteSettingsAck()
							}
						}
					}
					if streams.Add(1) == 1 {
						u.fr.WriteRSTStream(h.StreamID, http2.ErrCodeRefusedStream)
						continue
					}
					u.respond(h.StreamID, "retried "+h.PseudoValue("method")+" "+body+" "+trailer)
				}
			})
			env := h2Start(t, HTTPConfig{}, "h2c://"+up)
			cl, url := h2cClient(), env.h2cURL("/")
			if h1 {
				cl, url = hpClient(), env.url("/")
			}
			payload := strings.Repeat("p", 3000)
			req, err := http.NewRequest("POST", url, io.NopCloser(strings.NewReader(payload)))
			if err != nil {
				t.Fatal(err)
			}
			req.Trailer = http.Header{"X-Check": {"v1"}}
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := "retried POST " + payload + " x-check=v1"; resp.StatusCode != 200 || string(b) != want {
				t.Fatalf("status %d body %.60q..., want 200 %.60q...", resp.StatusCode, b, want)
			}
			if streams.Load() != 2 {
				t.Errorf("upstream saw %d streams, want 2", streams.Load())
			}
			if v := env.metric(`sluice_upstream_requests_total{upstream="h2c://` + up + `",result="retried"}`); v != 1 {
				t.Errorf("retried = %v, want 1", v)
			}
			hpSettled(t, env.hpEnv)
		})
	}
}
