package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Active health checks of h2c upstreams, against x/net's HTTP/2 server and
// raw HTTP/2 peers on 127.0.0.1.

// hcNoLeaks fails the test if goroutines or fds outlive it. Call it first:
// cleanups run last-in first-out, so it checks after every other one.
// gnet's worker pool (ants) keeps idle workers for a while; they are not
// counted.
func hcNoLeaks(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	count := func() (int, int) {
		g := 0
		for _, st := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if !strings.Contains(st, "panjf2000/ants") {
				g++
			}
		}
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return g, len(ents)
	}
	g0, fd0 := count()
	t.Cleanup(func() {
		var g, fd int
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if g, fd = count(); g <= g0 && fd <= fd0 {
				return
			}
		}
		t.Errorf("leak: %d goroutines (was %d), %d fds (was %d)\n%s", g, g0, fd, fd0, buf[:runtime.Stack(buf, true)])
	})
}

// hcChecks returns the ok and fail health-check counts of upstream key.
func hcChecks(env *hpEnv, key string) (ok, fail float64) {
	return env.metric(`sluice_upstream_health_checks_total{upstream="` + key + `",result="ok"}`),
		env.metric(`sluice_upstream_health_checks_total{upstream="` + key + `",result="fail"}`)
}

// The probe is an HTTP/2 GET; the upstream goes down after HealthFails
// failing checks and back up after HealthPasses passing ones; each probe
// connection closes cleanly.
func TestHealthH2CDownAndUp(t *testing.T) {
	hcNoLeaks(t)
	var healthy atomic.Bool
	healthy.Store(true)
	var mu sync.Mutex
	var seen *http.Request
	be := h2cServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			io.WriteString(w, "served")
			return
		}
		mu.Lock()
		seen = r
		mu.Unlock()
		if !healthy.Load() {
			http.Error(w, "sick", 503)
			return
		}
		io.WriteString(w, "fine")
	}))
	const fails, passes = 3, 2
	env := hpStart(t, HTTPConfig{HealthPath: "/healthz", HealthInterval: 20 * time.Millisecond,
		HealthTimeout: 500 * time.Millisecond, HealthFails: fails, HealthPasses: passes}, be.url())
	u := env.h.Upstreams()[0]
	hpEventually(t, "a passing check", func() bool { ok, _ := hcChecks(env, be.url()); return ok >= 1 })
	if !u.Available() {
		t.Fatal("upstream not available while healthy")
	}
	mu.Lock()
	r := seen
	mu.Unlock()
	if r.ProtoMajor != 2 || r.Method != "GET" || r.Host != be.addr || r.UserAgent() != "sluice-health-check" {
		t.Fatalf("probe request: %s %s %s host %q user-agent %q", r.Proto, r.Method, r.URL, r.Host, r.UserAgent())
	}

	_, f0 := hcChecks(env, be.url()) // before the flip: every later failure is the 503's
	healthy.Store(false)
	hpEventually(t, "upstream marked down", func() bool { return !u.Available() })
	if _, f := hcChecks(env, be.url()); f-f0 < fails {
		t.Fatalf("down after %v failed checks, want at least %d", f-f0, fails)
	}

	ok0, _ := hcChecks(env, be.url())
	healthy.Store(true)
	hpEventually(t, "upstream marked up", func() bool { return u.Available() })
	if ok, _ := hcChecks(env, be.url()); ok-ok0 < passes {
		t.Fatalf("up after %v passing checks, want at least %d", ok-ok0, passes)
	}
	if n := env.metric(`sluice_upstream_connection_closes_total{outcome="clean"}`); n < 1 {
		t.Fatalf("clean upstream closes: %v", n)
	}
	for _, o := range []string{"protocol_error", "upstream_error", "aborted"} {
		if n := env.metric(`sluice_upstream_connection_closes_total{outcome="` + o + `"}`); n > 0 {
			t.Fatalf("%v upstream closes with outcome %s", n, o)
		}
	}
}

// An upstream that accepts, reads the request and never answers fails the
// check at HealthTimeout.
func TestHealthH2CTimeout(t *testing.T) {
	hcNoLeaks(t)
	const timeout = 100 * time.Millisecond
	var first atomic.Int64 // unix nanos of the first accept
	var preface atomic.Bool
	addr := hpRawServer(t, func(c net.Conn) {
		first.CompareAndSwap(0, time.Now().UnixNano())
		b := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, b); err == nil && string(b) == http2.ClientPreface {
			preface.Store(true)
		}
		io.Copy(io.Discard, c) // until sluice gives up
	})
	env := hpStart(t, HTTPConfig{HealthPath: "/healthz", HealthInterval: 20 * time.Millisecond,
		HealthTimeout: timeout, HealthFails: 2}, "h2c://"+addr)
	u := env.h.Upstreams()[0]
	hpEventually(t, "a failed check", func() bool { _, f := hcChecks(env, "h2c://"+addr); return f >= 1 })
	// The probe's timer starts when its connect completes, which can be a
	// little before this server's accept goroutine runs: allow for that
	// slack, while an early failure (at the 20ms interval, or at once)
	// still shows.
	if d := time.Since(time.Unix(0, first.Load())); d < timeout-15*time.Millisecond {
		t.Fatalf("check failed %v after the accept, before the %v timeout", d, timeout)
	}
	if !preface.Load() {
		t.Fatal("the probe did not send the HTTP/2 preface")
	}
	hpEventually(t, "upstream marked down", func() bool { return !u.Available() })
	if ok, _ := hcChecks(env, "h2c://"+addr); ok != 0 {
		t.Fatalf("%v passing checks", ok)
	}
}

// Nothing listening: the dial fails, and so does the check, long before
// the timeout.
func TestHealthH2CRefused(t *testing.T) {
	hcNoLeaks(t)
	key := "h2c://" + hpDeadAddr(t)
	start := time.Now()
	env := hpStart(t, HTTPConfig{HealthPath: "/healthz", HealthInterval: 20 * time.Millisecond,
		HealthTimeout: 2 * time.Second, HealthFails: 2}, key)
	u := env.h.Upstreams()[0]
	hpEventually(t, "upstream marked down", func() bool { return !u.Available() })
	if d := time.Since(start); d > time.Second {
		t.Fatalf("down after %v: the refusal was not noticed", d)
	}
	if _, f := hcChecks(env, key); f < 2 {
		t.Fatalf("%v failed checks", f)
	}
	if n := env.metric(`sluice_upstream_dials_total{result="error"}`); n < 2 {
		t.Fatalf("%v failed dials", n)
	}
}

// hcRawH2 is an h2c upstream driven frame by frame: it sends its SETTINGS,
// acknowledges sluice's, and calls answer on each request HEADERS.
func hcRawH2(t *testing.T, answer func(fr *http2.Framer, id uint32)) string {
	t.Helper()
	return hpRawServer(t, func(c net.Conn) {
		b := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, b); err != nil || string(b) != http2.ClientPreface {
			return
		}
		fr := http2.NewFramer(c, c)
		if fr.WriteSettings() != nil {
			return
		}
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return // sluice closed
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.HeadersFrame:
				answer(fr, f.StreamID)
			}
		}
	})
}

// hcStatus sends a response head with status and END_STREAM.
func hcStatus(fr *http2.Framer, id uint32, status string) {
	var buf bytes.Buffer
	hpack.NewEncoder(&buf).WriteField(hpack.HeaderField{Name: ":status", Value: status})
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: buf.Bytes(), EndHeaders: true, EndStream: true})
}

// RST_STREAM or GOAWAY instead of a response fails the check at once (the
// timeout is far off); a 200 from the same raw peer passes.
func TestHealthH2CResetOrGoAway(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(fr *http2.Framer, id uint32)
		pass   bool
	}{
		{"rst_stream", func(fr *http2.Framer, id uint32) { fr.WriteRSTStream(id, http2.ErrCodeInternal) }, false},
		{"refused_stream", func(fr *http2.Framer, id uint32) { fr.WriteRSTStream(id, http2.ErrCodeRefusedStream) }, false},
		{"goaway", func(fr *http2.Framer, id uint32) { fr.WriteGoAway(0, http2.ErrCodeNo, nil) }, false},
		{"goaway_error", func(fr *http2.Framer, id uint32) { fr.WriteGoAway(id, http2.ErrCodeInternal, []byte("bye")) }, false},
		// A server shutting down may still answer what it has; it should
		// get no new traffic all the same.
		{"goaway_then_200", func(fr *http2.Framer, id uint32) {
			fr.WriteGoAway(id, http2.ErrCodeNo, nil)
			hcStatus(fr, id, "200")
		}, false},
		{"control_200", func(fr *http2.Framer, id uint32) { hcStatus(fr, id, "200") }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hcNoLeaks(t)
			key := "h2c://" + hcRawH2(t, tc.answer)
			start := time.Now()
			env := hpStart(t, HTTPConfig{HealthPath: "/healthz", HealthInterval: 20 * time.Millisecond,
				HealthTimeout: 2 * time.Second, HealthFails: 2}, key)
			u := env.h.Upstreams()[0]
			if tc.pass {
				hpEventually(t, "two passing checks", func() bool { ok, _ := hcChecks(env, key); return ok >= 2 })
				if _, f := hcChecks(env, key); f != 0 || !u.Available() {
					t.Fatalf("%v failed checks, available %v", f, u.Available())
				}
				return
			}
			hpEventually(t, "upstream marked down", func() bool { return !u.Available() })
			if d := time.Since(start); d > time.Second {
				t.Fatalf("down after %v: failed by timeout, not by the peer's frame", d)
			}
			if ok, _ := hcChecks(env, key); ok != 0 {
				t.Fatalf("%v passing checks", ok)
			}
		})
	}
}

// x/net's server resets the stream of a handler that aborts: the check
// fails.
func TestHealthH2CServerReset(t *testing.T) {
	hcNoLeaks(t)
	be := h2cServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	}))
	env := hpStart(t, HTTPConfig{HealthPath: "/healthz", HealthInterval: 20 * time.Millisecond,
		HealthTimeout: 2 * time.Second, HealthFails: 2}, be.url())
	u := env.h.Upstreams()[0]
	start := time.Now()
	hpEventually(t, "upstream marked down", func() bool { return !u.Available() })
	if d := time.Since(start); d > time.Second {
		t.Fatalf("down after %v", d)
	}
	if ok, _ := hcChecks(env, be.url()); ok != 0 {
		t.Fatalf("%v passing checks", ok)
	}
}

// A drain stops the checks: the probe in flight closes without a result
// and no new one is dialed, so the engine goes idle.
func TestHealthH2CDrainStopsChecks(t *testing.T) {
	hcNoLeaks(t)
	var accepts atomic.Int64
	addr := hpRawServer(t, func(c net.Conn) {
		accepts.Add(1)
		io.Copy(io.Discard, c) // never answers; returns at sluice's FIN
	})
	key := "h2c://" + addr
	env := hpStart(t, HTTPConfig{HealthPath: "/healthz", HealthInterval: 10 * time.Millisecond,
		HealthTimeout: 5 * time.Second}, key)
	hpEventually(t, "a probe in flight", func() bool { return accepts.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := env.e.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-env.e.Idle():
	case <-time.After(time.Second):
		t.Fatal("engine not idle after the drain: the probe is still open")
	}
	time.Sleep(50 * time.Millisecond) // five intervals
	if n := accepts.Load(); n != 1 {
		t.Fatalf("%d probe connections, want 1: checks went on after the drain", n)
	}
	if ok, f := hcChecks(env, key); ok != 0 || f != 0 {
		t.Fatalf("checks counted: ok %v, fail %v", ok, f)
	}
}
