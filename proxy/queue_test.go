package proxy

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/engine"
)

// concBackend is an upstream that records the most requests it ever had
// in flight at once, and can hold them until released.
type concBackend struct {
	*hpBackend
	now, peak atomic.Int64
	hold      chan struct{} // requests wait for it to close, when not nil
}

func newConcBackend(t *testing.T, delay time.Duration, hold bool) *concBackend {
	b := &concBackend{}
	if hold {
		b.hold = make(chan struct{})
	}
	b.hpBackend = hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := b.now.Add(1)
		for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
		}
		if b.hold != nil {
			<-b.hold
		}
		time.Sleep(delay)
		b.now.Add(-1)
		io.WriteString(w, "ok")
	}))
	return b
}

// upstreamSlotsFree waits until no slot is held and nobody waits.
func upstreamSlotsFree(t *testing.T, env *hpEnv) {
	t.Helper()
	hpEventually(t, "in-use slots and queues back to zero", func() bool {
		for _, u := range env.h.Upstreams() {
			if u.InUse.Load() != 0 || u.Queued.Load() != 0 {
				return false
			}
		}
		return true
	})
}

func get(t *testing.T, cl *http.Client, url string) (int, string) {
	resp, err := cl.Get(url)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// -upstream-max-conns 4: 40 HTTP/1.1 clients at once and then 100 HTTP/2
// streams at once, over two loops, all answered, and the backend never
// sees more than 4 requests at a time; the rest waited in the queue.
func TestUpstreamMaxConnsQueues(t *testing.T) {
	be := newConcBackend(t, 20*time.Millisecond, false)
	env := h2Start(t, HTTPConfig{UpstreamMaxConns: 4}, be.addr())
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			if code, body := get(t, cl, env.url("/")); code != 200 || body != "ok" {
				t.Errorf("HTTP/1.1: %d %q", code, body)
			}
		}()
	}
	wg.Wait()
	h2Burst(t, h2cClients(2), 50, env.h2cURL("/"), "ok")
	if p := be.peak.Load(); p > 4 {
		t.Errorf("the backend had %d requests in flight at once, cap 4", p)
	} else if p < 2 {
		t.Errorf("peak concurrency %d: the test did not load the upstream", p)
	}
	if v := env.metric(`sluice_upstream_requests_total{upstream="` + be.addr() + `",result="ok"}`); v != 140 {
		t.Errorf("ok results = %v, want 140", v)
	}
	upstreamSlotsFree(t, env.hpEnv)
	if v := env.metric(`sluice_upstream_connections_in_use{upstream="` + be.addr() + `"}`); v != 0 {
		t.Errorf("in-use gauge %v after the load", v)
	}
}

// With one slot and a queue of 2, a fourth concurrent request is refused
// at once with a 503 (end=queue_full, counted); the queued ones are
// served in turn once the first finishes. A queued client that goes away
// leaves the queue.
func TestUpstreamMaxConnsQueueFull(t *testing.T) {
	be := newConcBackend(t, 0, true)
	env := hpStart(t, HTTPConfig{UpstreamMaxConns: 1, UpstreamQueue: 2}, be.addr())
	cl := func() *http.Client {
		return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	}
	var wg sync.WaitGroup
	codes := make(chan int, 3)
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := get(t, cl(), env.url("/"))
			codes <- code
		}()
		if i == 0 {
			hpEventually(t, "the first request at the backend", func() bool { return be.now.Load() == 1 })
		}
	}
	u := env.h.Upstreams()[0]
	hpEventually(t, "two requests queued", func() bool { return u.Queued.Load() == 2 })
	start := time.Now()
	code, body := get(t, cl(), env.url("/full"))
	if code != 503 || time.Since(start) > 2*time.Second {
		t.Errorf("fourth request: %d %q after %v, want a 503 at once", code, body, time.Since(start))
	}
	close(be.hold)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("a queued request got %d, want 200", c)
		}
	}
	if p := be.peak.Load(); p != 1 {
		t.Errorf("backend peak concurrency %d, cap 1", p)
	}
	if v := env.metric(`sluice_upstream_requests_total{upstream="` + be.addr() + `",result="queue_full"}`); v != 1 {
		t.Errorf("queue_full results = %v, want 1", v)
	}
	var full int
	for _, r := range env.log.wait(t, 4) {
		if r["end"] == "queue_full" && r["status"] == int64(503) && r["path"] == "/full" {
			full++
		}
	}
	if full != 1 {
		t.Errorf("access log: %d queue_full lines for /full, want 1: %v", full, env.log.all())
	}
	upstreamSlotsFree(t, env)
}

// A request that waits longer than UpstreamQueueTimeout gets a 503
// (end=queue_timeout); one whose client leaves while it waits is taken
// out of the queue, and no slot leaks.
func TestUpstreamMaxConnsQueueTimeoutAndAbandon(t *testing.T) {
	be := newConcBackend(t, 0, true)
	const wait = 500 * time.Millisecond
	env := hpStart(t, HTTPConfig{UpstreamMaxConns: 1, UpstreamQueueTimeout: wait}, be.addr())
	first := make(chan int, 1)
	go func() {
		code, _ := get(t, &http.Client{Timeout: 20 * time.Second}, env.url("/first"))
		first <- code
	}()
	hpEventually(t, "the first request at the backend", func() bool { return be.now.Load() == 1 })
	// A client that goes away (a reset: a FIN after a whole request is
	// a half-close, still owed its response) while queued.
	u := env.h.Upstreams()[0]
	c, _ := hpRaw(t, env.addr)
	io.WriteString(c, "GET /gone HTTP/1.1\r\nHost: x\r\n\r\n")
	hpEventually(t, "the request queued", func() bool { return u.Queued.Load() == 1 })
	c.SetLinger(0)
	c.Close()
	hpEventually(t, "the abandoned request out of the queue", func() bool { return u.Queued.Load() == 0 })
	start := time.Now()
	code, _ := get(t, &http.Client{Timeout: 20 * time.Second}, env.url("/late"))
	took := time.Since(start)
	if code != 503 || took < wait || took > wait+3*time.Second {
		t.Errorf("queued request: %d after %v, want 503 after the %v queue timeout", code, took, wait)
	}
	close(be.hold)
	if code := <-first; code != 200 {
		t.Errorf("first request: %d", code)
	}
	upstreamSlotsFree(t, env)
	var timeouts int
	for _, r := range env.log.wait(t, 3) {
		if r["end"] == "queue_timeout" && r["status"] == int64(503) {
			timeouts++
		}
	}
	if timeouts != 1 {
		t.Errorf("access log: %d queue_timeout lines, want 1: %v", timeouts, env.log.all())
	}
	if v := env.metric(`sluice_upstream_requests_total{upstream="` + be.addr() + `",result="queue_timeout"}`); v != 1 {
		t.Errorf("queue_timeout results = %v, want 1", v)
	}
	// The slot is free: a new request goes straight through.
	if code, body := get(t, hpClient(), env.url("/after")); code != 200 || body != "ok" {
		t.Errorf("after: %d %q", code, body)
	}
}

// An h2c upstream at the cap: one connection, whose peer allows 2
// streams; a third concurrent request is a 503 (there is no queue for
// HTTP/2 upstreams), and the connection is never doubled. One loop: each
// loop needs a connection of its own.
func TestUpstreamMaxConnsH2C(t *testing.T) {
	hold := make(chan struct{})
	var now atomic.Int64
	be := h2cServeWith(t, &http2.Server{MaxConcurrentStreams: 2}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/warm" {
			now.Add(1)
			<-hold
		}
		io.WriteString(w, "ok")
	}))
	env := hpStartEngine(t, HTTPConfig{UpstreamMaxConns: 1}, engine.Config{Loops: 1}, be.url())
	// Warm the connection so its SETTINGS (2 streams) are known.
	if code, body := get(t, hpClient(), env.url("/warm")); code != 200 || body != "ok" {
		t.Fatalf("warm-up: %d %q", code, body)
	}
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _ := get(t, hpClient(), env.url("/held")); code != 200 {
				t.Errorf("held request: %d", code)
			}
		}()
	}
	hpEventually(t, "two streams at the backend", func() bool { return now.Load() == 2 })
	code, body := get(t, hpClient(), env.url("/third"))
	if code != 503 {
		t.Errorf("third request: %d %q, want 503", code, body)
	}
	close(hold)
	wg.Wait()
	if n := be.conns.Load(); n != 1 {
		t.Errorf("h2c connections = %d, want 1 (the cap)", n)
	}
	// The open connection holds its slot, idle or not, until it closes.
	if v := env.metric(`sluice_upstream_connections_in_use{upstream="` + be.url() + `"}`); v != 1 {
		t.Errorf("in-use gauge %v, want 1 (the open connection)", v)
	}
	if v := env.metric(`sluice_upstream_requests_total{upstream="` + be.url() + `",result="queue_full"}`); v != 1 {
		t.Errorf("queue_full results = %v, want 1", v)
	}
}
