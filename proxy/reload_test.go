package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Twenty route reloads while eight clients keep requesting: no request
// fails, no client connection is closed by sluice, every reload switches
// the routes at once for new requests, and a request in flight during a
// reload finishes on the upstream it was routed to. A bad route set is
// refused and changes nothing.
func TestSetRoutesUnderLoad(t *testing.T) {
	// slowIn says a /slow request reached its backend: routed, so a
	// reload after it cannot move it (a fixed 50 ms wait could end before
	// the request was routed on a loaded machine).
	slowIn := make(chan struct{}, 1)
	backend := func(name string) *hpBackend {
		return hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				slowIn <- struct{}{}
				time.Sleep(300 * time.Millisecond)
			}
			io.WriteString(w, name)
		}))
	}
	a, b := backend("A"), backend("B")
	routeTo := func(be *hpBackend, extra ...string) []Route {
		r, err := ParseRoute("web:/=" + be.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		rs := []Route{r}
		for _, e := range extra {
			x, err := ParseRoute(e)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, x)
		}
		return rs
	}
	env := hpStart(t, HTTPConfig{Routes: routeTo(a)})

	var dials atomic.Int64
	tr := &http.Transport{MaxIdleConnsPerHost: 16, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func(path string) (string, error) {
		resp, err := cl.Get(env.url(path))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return string(body), &statusErr{resp.StatusCode}
		}
		return string(body), err
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var done, failed atomic.Int64
	var firstErr atomic.Value
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if body, err := get("/"); err != nil || (body != "A" && body != "B") {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, strings.TrimSpace(body)+" "+errString(err))
				}
				done.Add(1)
			}
		}()
	}

	cur := a
	for i := range 20 {
		// A slow request on the current route, in flight across the reload.
		slow := make(chan string, 1)
		go func() { body, err := get("/slow"); slow <- body + errString(err) }()
		select {
		case <-slowIn:
		case <-time.After(5 * time.Second):
			t.Fatalf("reload %d: the slow request did not reach its upstream", i)
		}
		next := b
		if cur == b {
			next = a
		}
		if err := env.h.SetRoutes(routeTo(next)); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if body, err := get("/"); err != nil || body != map[*hpBackend]string{a: "A", b: "B"}[next] {
			t.Fatalf("reload %d: a new request got %q (%v), want the new route's upstream", i, body, err)
		}
		if got, want := <-slow, map[*hpBackend]string{a: "A", b: "B"}[cur]; got != want {
			t.Fatalf("reload %d: the request in flight got %q, want %q from its old route", i, got, want)
		}
		cur = next
		if i == 10 {
			// Refused: two routes on one prefix. The old routes stay.
			if err := env.h.SetRoutes(routeTo(a, "/=127.0.0.1:1")); err == nil {
				t.Fatal("a route set with a duplicate prefix was accepted")
			}
			if body, _ := get("/"); body != map[*hpBackend]string{a: "A", b: "B"}[cur] {
				t.Fatalf("after a refused reload: %q", body)
			}
		}
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed across the reloads; first: %v", n, done.Load(), firstErr.Load())
	}
	if c := env.metric(`sluice_connection_closes_total{outcome="clean"}`) + env.metric(`sluice_connection_aborts_total`); c > 0 {
		t.Errorf("sluice closed %v client connections during the reloads", c)
	}
	t.Logf("%d requests over 20 reloads, %d client connections", done.Load(), dials.Load())
	if done.Load() < 100 {
		t.Errorf("only %d requests ran during the reloads", done.Load())
	}
}

type statusErr struct{ code int }

func (e *statusErr) Error() string { return http.StatusText(e.code) }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
