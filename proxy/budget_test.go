package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// goodClient runs workers GET loops of a small response until stop and
// counts the successes; a failure is reported on errs (once per worker).
func goodClient(t *testing.T, url string, workers int, n *atomic.Int64, stop <-chan struct{}) *sync.WaitGroup {
	t.Helper()
	cl := hpClient() // HTTP/1.1 keep-alive: fewer goroutine hand-offs than x/net's client, less noise
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := cl.Get(url)
				if err != nil {
					t.Errorf("well-behaved client: %v", err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != "ok" {
					t.Errorf("well-behaved client: %d %q", resp.StatusCode, b)
					return
				}
				n.Add(1)
			}
		}()
	}
	return &wg
}

// rates samples n's growth in 500ms slices until end. It returns the
// median slice's rate (requests per second) and the median of the
// slices' requests per CPU-second of this process (medians: the machine
// is shared, and another process's burst should not decide).
func rates(n *atomic.Int64, end time.Time) (perSec, perCPU float64, slice []float64) {
	var rs, cs []float64
	for time.Until(end) >= 500*time.Millisecond {
		a, t0, c0 := n.Load(), time.Now(), procCPU()
		time.Sleep(500 * time.Millisecond)
		d := float64(n.Load() - a)
		rs = append(rs, d/time.Since(t0).Seconds())
		cs = append(cs, d/max(procCPU()-c0, time.Millisecond).Seconds())
	}
	if len(rs) == 0 {
		return 0, 0, nil
	}
	slice = slices.Clone(rs)
	slices.Sort(rs)
	slices.Sort(cs)
	return rs[len(rs)/2], cs[len(cs)/2], slice
}

// procCPU is the process's user and system CPU time so far.
func procCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// streamEnd is what one attacking stream saw.
type streamEnd struct {
	head, rst time.Time
	code      http2.ErrCode
}

// Issue #9, attack 2: 20 client connections × 100 streams of 256 KiB
// responses with the client's windows at zero. The streams hold at most
// the budget of HTTP/1.1 upstream connections (16 per client connection,
// the default), the rest wait and are refused (REFUSED_STREAM) after
// ClientUpstreamWait; every stalled stream is reset (CANCEL) at
// StallTimeout after its response head, its upstream connection drained
// and pooled again (192 KiB left, under discardBytes); and a well-behaved
// client on its own connection keeps at least 80% of the request rate it
// had before the attack (per CPU-second of this process, see below). Before the budget every stream held its own
// upstream connection (2,000 here) until the write timeout.
func TestH2BudgetStalledStreams(t *testing.T) {
	const (
		conns, streams = 20, 100
		size           = 256 << 10
		stall          = 8 * time.Second
		wait           = 4 * time.Second
		budget         = 16
	)
	var open, maxOpen atomic.Int64 // backend connections
	body := make([]byte, size)
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/small" {
			io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.Write(body)
	}))
	be.Config.ConnState = func(c net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			if v := open.Add(1); v > maxOpen.Load() {
				maxOpen.Store(v)
			}
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	env := h2Start(t, HTTPConfig{StallTimeout: stall, ClientUpstreamWait: wait}, be.addr())
	busy := func() float64 {
		return env.metric(fmt.Sprintf(`sluice_upstream_pool_connections{upstream=%q,state="busy"}`, be.addr()))
	}

	// The backend's 320 blocked handlers live in this process and make
	// every GC cycle of the well-behaved client's garbage dearer, which a
	// real sluice would not pay; fewer cycles keep that out of the ratio.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	var good atomic.Int64
	stop := make(chan struct{})
	wg := goodClient(t, env.url("/small"), 8, &good, stop)
	stopGood := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopGood()
	time.Sleep(300 * time.Millisecond) // warm: connections, pool
	c0, w0 := procCPU(), time.Now()
	before, beforeCPU, bs := rates(&good, time.Now().Add(4*time.Second))
	cpuBefore := (procCPU() - c0).Seconds() / time.Since(w0).Seconds()

	// Sample what the attack holds while it runs.
	var maxBusy atomic.Int64
	sampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-sampling:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if v := int64(busy()); v > maxBusy.Load() {
				maxBusy.Store(v)
			}
		}
	}()

	var mu sync.Mutex
	ends := map[[2]int]*streamEnd{}
	var readers sync.WaitGroup
	rs := make([]*rawH2, conns)
	sent := make([]time.Time, conns)      // after a connection's last HEADERS
	sentFirst := make([]time.Time, conns) // before its first
	for i := range rs {
		rs[i] = rawH2Dial(t, env.addr, false, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	}
	attackStart := time.Now()
	for i, r := range rs {
		sentFirst[i] = time.Now()
		for s := 0; s < streams; s++ {
			r.get(uint32(2*s+1), "/big")
		}
		sent[i] = time.Now()
		readers.Add(1)
		go func() {
			defer readers.Done()
			done := 0
			for done < streams {
				f, err := r.next()
				if err != nil {
					t.Errorf("attacker %d: %v after %d streams ended", i, err, done)
					return
				}
				now := time.Now()
				if f.Header().StreamID == 0 {
					continue // connection frames
				}
				mu.Lock()
				e := ends[[2]int{i, int(f.Header().StreamID)}]
				if e == nil {
					e = &streamEnd{}
					ends[[2]int{i, int(f.Header().StreamID)}] = e
				}
				switch f := f.(type) {
				case *http2.MetaHeadersFrame:
					e.head = now
				case *http2.RSTStreamFrame:
					e.rst, e.code = now, f.ErrCode
					done++
				}
				mu.Unlock()
			}
		}()
	}
	sentAll := time.Now()
	t.Logf("%d streams sent in %v", conns*streams, sentAll.Sub(attackStart))
	// The rate during the attack is taken while the attack holds what it
	// can (every stream in, the budget's upstream connections busy) up to
	// just before the stall deadline; the burst of taking 2,000 requests
	// in is the price of any 2,000 requests.
	hpEventually(t, "the attack in place", func() bool {
		return busy() >= conns*budget
	})
	held := time.Since(attackStart)
	c1, w1 := procCPU(), time.Now()
	during, duringCPU, ds := rates(&good, attackStart.Add(stall-200*time.Millisecond))
	cpuDuring := (procCPU() - c1).Seconds() / time.Since(w1).Seconds()
	t.Logf("the attack was in place %v after it started", held)
	readers.Wait()
	close(sampling)
	<-sampled

	// The ratio that decides is of requests per CPU-second this process
	// got: the machine's other load takes CPU from the whole process
	// (seen: 1.15 cores before, 0.62 during, the same 85 µs per request;
	// with no attack at all the wall-clock ratio ranged 0.70-1.26 in three
	// runs, the per-CPU one was 0.96 each time),
	// while whatever the attack costs sluice, the backend or the
	// attacking clients is spent in this process and shows. The wall-clock
	// ratio is logged beside it.
	ratio := duringCPU / beforeCPU
	t.Logf("well-behaved client, median of 500ms slices: %.0f req/s before %.0f, %.0f during %.0f: ratio %.2f; process CPU %.2f cores before, %.2f during",
		before, bs, during, ds, during/before, cpuBefore, cpuDuring)
	t.Logf("requests per CPU-second of the process: %.0f before, %.0f during: ratio %.2f", beforeCPU, duringCPU, ratio)
	if ratio < 0.8 {
		t.Errorf("well-behaved client kept %.2f of its request rate per CPU-second, want at least 0.8", ratio)
	}
	t.Logf("upstream connections: at most %d busy at sluice, %d open at the backend", maxBusy.Load(), maxOpen.Load())
	if maxBusy.Load() > conns*budget+8 {
		t.Errorf("%d upstream connections busy at once, want at most %d (%d per client connection, 8 for the well-behaved one)",
			maxBusy.Load(), conns*budget+8, budget)
	}
	// A connection is dialed only when none is idle on its loop: beyond
	// those in use, at most the well-behaved client's idle on the other.
	if maxOpen.Load() > conns*budget+2*8 {
		t.Errorf("%d backend connections open at once", maxOpen.Load())
	}
	var cancel, refused int
	for k, e := range ends {
		if e.rst.IsZero() {
			t.Errorf("stream %v: no RST_STREAM", k)
			continue
		}
		switch e.code {
		case http2.ErrCodeCancel:
			cancel++
			if e.head.IsZero() {
				t.Errorf("stream %v: reset CANCEL without a response head", k)
				continue
			}
			// The stall began after the request was sent and before the
			// client saw the head (which may reach it late on a loaded
			// machine).
			if d := e.rst.Sub(sentFirst[k[0]]); d < stall {
				t.Errorf("stream %v: reset %v after it was sent, before the stall timeout %v", k, d, stall)
			}
			if d := e.rst.Sub(e.head); d > stall+1500*time.Millisecond {
				t.Errorf("stream %v: reset %v after its response head, want the stall timeout %v", k, d, stall)
			}
		case http2.ErrCodeRefusedStream:
			refused++
			if !e.head.IsZero() {
				t.Errorf("stream %v: refused after a response head", k)
			}
			// Never before the wait counted from the connection's first
			// HEADERS (writing 100 of them took over 100 ms under load),
			// at most 1.5 s past it counted from the last.
			if d := e.rst.Sub(sentFirst[k[0]]); d < wait {
				t.Errorf("stream %v: refused %v after its connection began sending, before the wait %v", k, d, wait)
			}
			if d := e.rst.Sub(sent[k[0]]); d > wait+1500*time.Millisecond {
				t.Errorf("stream %v: refused %v after it was sent, want the wait %v", k, d, wait)
			}
		default:
			t.Errorf("stream %v: RST_STREAM %v", k, e.code)
		}
	}
	t.Logf("%d streams reset at the stall timeout, %d refused after waiting", cancel, refused)
	if cancel+refused != conns*streams || cancel != conns*budget {
		t.Errorf("%d stalled and %d refused of %d streams, want %d stalled", cancel, refused, conns*streams, conns*budget)
	}
	if v := env.metric("sluice_http2_stall_resets_total"); v != float64(cancel) {
		t.Errorf("stall_resets_total %v, want %d", v, cancel)
	}
	if v := env.metric("sluice_http2_upstream_slot_refusals_total"); v != float64(refused) {
		t.Errorf("slot_refusals_total %v, want %d", v, refused)
	}
	hpEventually(t, "the discarded upstream responses read", func() bool {
		return env.metric(`sluice_upstream_discards_total{result="pooled"}`)+env.metric(`sluice_upstream_discards_total{result="closed"}`) == float64(cancel)
	})
	if v := env.metric(`sluice_upstream_discards_total{result="pooled"}`); v < float64(cancel)/2 {
		t.Errorf("%v of %d stalled upstream connections pooled again, want most", v, cancel)
	}
	for _, r := range rs {
		r.c.Close()
	}
	stopGood()
	hpSettled(t, env.hpEnv)
	if v := env.metric("sluice_http2_upstream_slots_held"); v != 0 {
		t.Errorf("slots held %v after the end", v)
	}
}

// trickle sends a POST head with a body of n bytes, then one byte every
// gap, until the connection fails or stop; it returns what it read.
func trickle(c net.Conn, n int, gap time.Duration, stop <-chan struct{}) {
	fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: test.local\r\nContent-Length: %d\r\n\r\n", n)
	for i := 0; i < n; i++ {
		select {
		case <-stop:
			return
		case <-time.After(gap):
		}
		if _, err := c.Write([]byte{'x'}); err != nil {
			return
		}
	}
}

// Issue #9, attack 3: 500 HTTP/1.1 clients trickling a POST body a byte
// every 200ms (the idle timeout never fires: each byte restarts it). All
// get 408 at the minimum-rate deadline (BodyGrace, 1s here, plus a second
// per 500 bytes) and a close, and their upstream attempts are gone: the
// backend saw each request's body cut. Another 50 with the rate rule off
// get 408 at the total deadline (BodyTimeout) instead.
func TestHTTPBodyDeadlineTrickle(t *testing.T) {
	var active, cut atomic.Int64
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		active.Add(1)
		defer active.Add(-1)
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			cut.Add(1)
			return
		}
		io.WriteString(w, "whole")
	}))
	for _, c := range []struct {
		name     string
		n        int
		cfg      HTTPConfig
		deadline time.Duration
		end      string
	}{
		{"min_rate", 500, HTTPConfig{BodyGrace: time.Second}, time.Second, "body_min_rate"},
		{"total", 50, HTTPConfig{BodyTimeout: 1500 * time.Millisecond, BodyMinRate: -1}, 1500 * time.Millisecond, "body_deadline"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cut.Store(0)
			env := hpStart(t, c.cfg, be.addr())
			stop := make(chan struct{})
			defer close(stop)
			type result struct {
				status string
				after  time.Duration
				eof    bool
				err    error
			}
			res := make(chan result, c.n)
			for i := 0; i < c.n; i++ {
				cn, err := net.Dial("tcp", env.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer cn.Close()
				cn.SetDeadline(time.Now().Add(15 * time.Second))
				go func() {
					start := time.Now()
					go trickle(cn, 1000, 200*time.Millisecond, stop)
					br := bufio.NewReader(cn)
					line, err := br.ReadString('\n')
					r := result{status: strings.TrimSpace(line), after: time.Since(start), err: err}
					if err == nil {
						// The rest of the response, then the close.
						_, err = io.Copy(io.Discard, br)
						r.eof = err == nil
						if err != nil && strings.Contains(err.Error(), "reset") {
							r.eof = true // a reset after the whole 408 still closes
						}
					}
					res <- r
				}()
			}
			for i := 0; i < c.n; i++ {
				r := <-res
				if r.err != nil {
					t.Fatalf("client %d: %v", i, r.err)
				}
				if !strings.HasPrefix(r.status, "HTTP/1.1 408 ") {
					t.Fatalf("client %d: %q, want 408", i, r.status)
				}
				if r.after < c.deadline-50*time.Millisecond || r.after > c.deadline+1500*time.Millisecond {
					t.Errorf("client %d: 408 after %v, want the deadline %v", i, r.after, c.deadline)
				}
				if !r.eof {
					t.Errorf("client %d: connection not closed after the 408", i)
				}
			}
			hpEventually(t, "the upstream attempts gone", func() bool { return active.Load() == 0 && cut.Load() == int64(c.n) })
			hpSettled(t, env)
			if v := env.metric(fmt.Sprintf(`sluice_http_body_timeouts_total{proto="http/1.1",reason=%q}`, strings.TrimPrefix(c.end, "body_"))); v != float64(c.n) {
				t.Errorf("body_timeouts_total %v, want %d", v, c.n)
			}
			recs := env.log.wait(t, c.n)
			for _, rec := range recs {
				if rec["end"] != c.end || rec["status"] != int64(408) {
					t.Errorf("access log end=%v status=%v, want %s 408", rec["end"], rec["status"], c.end)
					break
				}
			}
		})
	}
}

// The same over HTTP/2: 5 connections × 20 streams trickling their bodies
// get 408 on the stream at the rate deadline, then RST_STREAM(NO_ERROR)
// (the rest of the body is not wanted); the connections go on serving and
// the upstream attempts are gone. The 4 streams of each connection over
// the upstream budget wait for a slot first, and their deadline counts
// from the slot: time sluice held them back is not theirs.
func TestH2BodyDeadlineTrickle(t *testing.T) {
	var active, cut atomic.Int64
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		active.Add(1)
		defer active.Add(-1)
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			cut.Add(1)
			return
		}
		io.WriteString(w, "whole")
	}))
	const conns, streams, budget = 5, 20, 16
	const deadline = time.Second
	env := h2Start(t, HTTPConfig{BodyGrace: deadline}, be.addr())
	stop := make(chan struct{})
	defer close(stop)
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		r := rawH2Dial(t, env.addr, false)
		var wmu sync.Mutex // the framer's writes: the trickler's and the reader's
		live := map[uint32]bool{}
		start := time.Now()
		for s := 0; s < streams; s++ {
			id := uint32(2*s + 1)
			live[id] = true
			r.writeBlock(id, r.block(":method", "POST", ":scheme", "http", ":authority", "test.local", ":path", "/up",
				"content-length", "1000"), false)
		}
		trickled := make(chan struct{})
		go func() {
			defer close(trickled)
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				wmu.Lock()
				for id := range live {
					if err := r.fr.WriteData(id, false, []byte{'x'}); err != nil {
						wmu.Unlock()
						return
					}
				}
				n := len(live)
				wmu.Unlock()
				if n == 0 {
					return
				}
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			status := map[uint32]string{}
			rst := 0
			for rst < streams {
				f, err := r.next()
				if err != nil {
					t.Errorf("conn %d: %v", i, err)
					return
				}
				switch f := f.(type) {
				case *http2.MetaHeadersFrame:
					status[f.StreamID] = f.PseudoValue("status")
					// The first 16 streams (the upstream budget) hold an
					// upstream at once; the others wait for their slots,
					// and the wait does not count against their bodies.
					want := deadline
					if f.StreamID > 2*budget {
						want = 2 * deadline
					}
					if d := time.Since(start); d < want-50*time.Millisecond || d > want+1500*time.Millisecond {
						t.Errorf("conn %d stream %d: response after %v, want the deadline %v", i, f.StreamID, d, want)
					}
				case *http2.RSTStreamFrame:
					rst++
					wmu.Lock()
					delete(live, f.StreamID)
					wmu.Unlock()
					if f.ErrCode != http2.ErrCodeNo || status[f.StreamID] != "408" {
						t.Errorf("conn %d stream %d: RST_STREAM %v after status %q, want NO_ERROR after 408", i, f.StreamID, f.ErrCode, status[f.StreamID])
					}
				}
			}
			<-trickled
			// The connection still serves.
			r.get(1001, "/")
			for {
				f, err := r.next()
				if err != nil {
					t.Errorf("conn %d after the 408s: %v", i, err)
					return
				}
				if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamID == 1001 {
					if s := h.PseudoValue("status"); s != "200" {
						t.Errorf("conn %d after the 408s: status %s", i, s)
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	hpEventually(t, "the upstream attempts gone", func() bool { return active.Load() == 0 && cut.Load() == conns*streams })
	hpSettled(t, env.hpEnv)
	if v := env.metric(`sluice_http_body_timeouts_total{proto="h2",reason="min_rate"}`); v != conns*streams {
		t.Errorf("body_timeouts_total %v, want %d", v, conns*streams)
	}
}
