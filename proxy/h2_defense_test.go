package proxy

import (
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Attack defenses, end to end through sluice over real sockets: the
// codec's limits, and the proxy keeping memory and upstream work bounded
// while they act.

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// countingBackend answers every request and counts them.
func countingBackend(t *testing.T, n *atomic.Int64) *hpBackend {
	return hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
}

// flood writes frames with write(i) until the server's GOAWAY arrives (or
// max frames are out), while reading. It returns that GOAWAY, how many
// frames went out before it was seen, and when it came. (The server keeps
// reading and discarding after its GOAWAY, lingering for our FIN, so the
// writes themselves do not fail.)
func flood(t *testing.T, r *rawH2, max int, write func(i int) error) (*http2.GoAwayFrame, int, time.Duration) {
	t.Helper()
	start := time.Now()
	got := make(chan *http2.GoAwayFrame, 1)
	var seen atomic.Bool
	var at atomic.Int64
	go func() {
		var ga *http2.GoAwayFrame
		for {
			f, err := r.fr.ReadFrame()
			if err != nil {
				got <- ga
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok && ga == nil {
				ga = &http2.GoAwayFrame{LastStreamID: g.LastStreamID, ErrCode: g.ErrCode}
				at.Store(int64(time.Since(start)))
				seen.Store(true)
			}
		}
	}()
	sent := 0
	for ; sent < max && !seen.Load(); sent++ {
		if write(sent) != nil {
			break
		}
	}
	select {
	case ga := <-got:
		return ga, sent, time.Duration(at.Load())
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not close the connection")
		return nil, sent, 0
	}
}

func wantCalm(t *testing.T, env *h2Env, ga *http2.GoAwayFrame, reason string) {
	t.Helper()
	if ga == nil || ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
		code := "none"
		if ga != nil {
			code = ga.ErrCode.String()
		}
		t.Fatalf("GOAWAY %s, want ENHANCE_YOUR_CALM", code)
	}
	if v := env.metric(`sluice_http2_errors_total{reason="` + reason + `"}`); v != 1 {
		t.Errorf("sluice_http2_errors_total{reason=%q} = %v, want 1", reason, v)
	}
	if v := env.metric(`sluice_http2_goaways_total{direction="sent",code="ENHANCE_YOUR_CALM"}`); v < 1 {
		t.Errorf("goaways sent ENHANCE_YOUR_CALM = %v", v)
	}
}

// SETTINGS_MAX_CONCURRENT_STREAMS (100): the 101st concurrent stream is
// refused (REFUSED_STREAM, safe to retry) and never reaches an upstream.
func TestH2DefenseMaxConcurrentStreams(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int64
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		<-release
		io.WriteString(w, "ok")
	}))
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	// The upstream budget raised to the stream limit: this is about the
	// limit (TestH2BudgetStalledStreams is about the budget).
	env := h2Start(t, HTTPConfig{ClientMaxUpstreams: 100}, be.addr())
	r := rawH2Dial(t, env.addr, false)
	for i := 0; i < 101; i++ {
		r.get(uint32(2*i+1), "/")
	}
	for {
		f, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			if rst.StreamID != 201 || rst.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("RST_STREAM %d %v, want 201 REFUSED_STREAM", rst.StreamID, rst.ErrCode)
			}
			break
		}
	}
	hpEventually(t, "100 upstream requests", func() bool { return n.Load() == 100 })
	close(release)
	ended := 0
	for ended < 100 {
		f, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamEnded() {
			ended++
		}
	}
	if n.Load() != 100 {
		t.Errorf("upstream requests %d, want 100", n.Load())
	}
}

// SETTINGS_MAX_HEADER_LIST_SIZE (64 KiB) and the HPACK bomb: a 70 KiB
// field, and a small block that references one 4 KiB table entry 2,000
// times (8 MB decoded), each get 431 on their stream without reaching the
// upstream or growing the heap; the connection goes on serving.
func TestH2DefenseHeaderListAndHPACKBomb(t *testing.T) {
	var n atomic.Int64
	be := countingBackend(t, &n)
	env := h2Start(t, HTTPConfig{}, be.addr())
	r := rawH2Dial(t, env.addr, false)
	base := heapInUse()
	big := strings.Repeat("b", 70<<10)
	r.writeBlock(1, r.block(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/", "x-big", big), true)
	// HPACK bomb: one 4 KiB literal indexed into the dynamic table, then
	// 2,000 one-byte references to it.
	r.hb.Reset()
	val := strings.Repeat("v", 4000)
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "x"}, {Name: ":path", Value: "/"}, {Name: "x-bomb", Value: val}} {
		r.enc.WriteField(f)
	}
	bomb := append([]byte(nil), r.hb.Bytes()...)
	for i := 0; i < 2000; i++ {
		bomb = append(bomb, 0x80|62) // indexed: dynamic table entry 1 (x-bomb)
	}
	r.writeBlock(3, bomb, true)
	statuses := map[uint32]string{}
	for len(statuses) < 2 {
		f, err := r.next()
		if err != nil {
			t.Fatalf("after %v: %v", statuses, err)
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok {
			statuses[h.StreamID] = h.PseudoValue("status")
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			t.Fatalf("GOAWAY %v after %v", g.ErrCode, statuses)
		}
	}
	if statuses[1] != "431" || statuses[3] != "431" {
		t.Fatalf("statuses %v, want 431 for both", statuses)
	}
	if grown := int64(heapInUse()) - int64(base); grown > 4<<20 {
		t.Errorf("heap grew %d bytes decoding an 8 MB header list", grown)
	}
	// Still serving; nothing oversized went upstream.
	r.get(5, "/")
	for {
		f, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamID == 5 {
			if s := h.PseudoValue("status"); s != "200" {
				t.Fatalf("status %s", s)
			}
			break
		}
	}
	if n.Load() != 1 {
		t.Errorf("upstream requests %d, want 1", n.Load())
	}
}

// Rapid Reset (CVE-2023-44487): HEADERS then RST_STREAM, over and over.
// After the reset budget (200 per 10 s) the connection ends with GOAWAY
// ENHANCE_YOUR_CALM; streams reset in the read that opened them never
// reach an upstream.
func TestH2DefenseRapidReset(t *testing.T) {
	var n atomic.Int64
	be := countingBackend(t, &n)
	env := h2Start(t, HTTPConfig{}, be.addr())
	r := rawH2Dial(t, env.addr, false)
	ga, sent, took := flood(t, r, 100000, func(i int) error {
		id := uint32(2*i + 1)
		if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndStream: true, EndHeaders: true,
			BlockFragment: r.block(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/")}); err != nil {
			return err
		}
		return r.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	})
	wantCalm(t, env, ga, "rapid_reset")
	t.Logf("%d HEADERS+RST pairs written before the GOAWAY, which came after %v; %d upstream requests", sent, took, n.Load())
	if n.Load() > 201 {
		t.Errorf("upstream requests %d, want at most the reset budget", n.Load())
	}
	if v := env.metric(`sluice_http2_rst_streams_total{direction="received",code="CANCEL"}`); v < 100 || v > 201 {
		t.Errorf("RST_STREAM received CANCEL = %v", v)
	}
	hpSettled(t, env.hpEnv)
	hpEventually(t, "no active stream", func() bool { return env.metric("sluice_http2_streams_active") == 0 })
}

// CONTINUATION flood (CVE-2024-27316): a header block that never ends.
// After 64 frames the connection ends with ENHANCE_YOUR_CALM; nothing of
// the block is kept.
func TestH2DefenseContinuationFlood(t *testing.T) {
	var n atomic.Int64
	be := countingBackend(t, &n)
	env := h2Start(t, HTTPConfig{}, be.addr())
	r := rawH2Dial(t, env.addr, false)
	base := heapInUse()
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndStream: true, EndHeaders: false,
		BlockFragment: r.block(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/")})
	junk := r.block("x-pad", strings.Repeat("p", 1000))
	ga, sent, took := flood(t, r, 100000, func(int) error { return r.fr.WriteContinuation(1, false, junk) })
	wantCalm(t, env, ga, "continuation_flood")
	t.Logf("%d CONTINUATION frames written before the GOAWAY, which came after %v", sent, took)
	if grown := int64(heapInUse()) - int64(base); grown > 4<<20 {
		t.Errorf("heap grew %d bytes", grown)
	}
	if n.Load() != 0 {
		t.Errorf("upstream requests %d", n.Load())
	}
}

// Control-frame floods: SETTINGS, PING, WINDOW_UPDATE, and frames that
// carry nothing (empty DATA, PRIORITY, unknown types). Each ends with
// ENHANCE_YOUR_CALM once its budget is spent; the client need not read.
func TestH2DefenseControlFloods(t *testing.T) {
	var n atomic.Int64
	be := countingBackend(t, &n)
	for _, c := range []struct {
		name, reason string
		open         bool // a stream with its body still open
		write        func(r *rawH2, i int) error
	}{
		{"settings", "settings_flood", false, func(r *rawH2, i int) error {
			return r.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 16384})
		}},
		{"ping", "ping_flood", false, func(r *rawH2, i int) error { return r.fr.WritePing(false, [8]byte{byte(i)}) }},
		{"window_update", "window_update_flood", false, func(r *rawH2, i int) error { return r.fr.WriteWindowUpdate(0, 1) }},
		{"empty_data", "junk_flood", true, func(r *rawH2, i int) error { return r.fr.WriteData(1, false, nil) }},
		{"priority", "junk_flood", false, func(r *rawH2, i int) error {
			return r.fr.WritePriority(3, http2.PriorityParam{StreamDep: 1, Weight: 15})
		}},
		{"unknown_type", "junk_flood", false, func(r *rawH2, i int) error { return r.fr.WriteRawFrame(0xfa, 0, 0, []byte("x")) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := h2Start(t, HTTPConfig{}, be.addr())
			r := rawH2Dial(t, env.addr, false)
			if c.open {
				r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true,
					BlockFragment: r.block(":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/")})
			}
			base := heapInUse()
			ga, sent, took := flood(t, r, 200000, func(i int) error { return c.write(r, i) })
			wantCalm(t, env, ga, c.reason)
			t.Logf("%d frames written before the GOAWAY, which came after %v", sent, took)
			if grown := int64(heapInUse()) - int64(base); grown > 4<<20 {
				t.Errorf("heap grew %d bytes", grown)
			}
		})
	}
}

// A client that opens its window not at all (SETTINGS_INITIAL_WINDOW_SIZE
// 0), or a byte at a time, stalls its response: after StallTimeout (here
// capped by WriteTimeout) the
// stream is reset (RST_STREAM CANCEL) and its upstream exchange aborted;
// sluice holds at most one upstream read for it meanwhile.
func TestH2DefenseWindowStall(t *testing.T) {
	const size = 8 << 20
	var aborted atomic.Int64
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "8388608")
		buf := make([]byte, 64<<10)
		for off := 0; off < size; off += len(buf) {
			if _, err := w.Write(buf); err != nil {
				aborted.Add(1)
				return
			}
		}
	}))
	for _, c := range []struct {
		name    string
		trickle bool
	}{{"zero", false}, {"trickle", true}} {
		t.Run(c.name, func(t *testing.T) {
			env := h2Start(t, HTTPConfig{WriteTimeout: 500 * time.Millisecond}, be.addr())
			r := rawH2Dial(t, env.addr, false, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
			before := aborted.Load()
			start := time.Now()
			r.get(1, "/big")
			stop := make(chan struct{})
			defer close(stop)
			if c.trickle {
				go func() {
					for {
						select {
						case <-stop:
							return
						case <-time.After(20 * time.Millisecond):
							r.fr.WriteWindowUpdate(1, 1)
						}
					}
				}()
			}
			got := 0
			for {
				f, err := r.next()
				if err != nil {
					t.Fatal(err)
				}
				if d, ok := f.(*http2.DataFrame); ok {
					got += len(d.Data())
				}
				if rst, ok := f.(*http2.RSTStreamFrame); ok {
					if rst.ErrCode != http2.ErrCodeCancel {
						t.Fatalf("RST_STREAM %v, want CANCEL", rst.ErrCode)
					}
					break
				}
			}
			if d := time.Since(start); d < 400*time.Millisecond || d > 5*time.Second {
				t.Errorf("reset after %v, want about the write timeout", d)
			}
			t.Logf("%d body bytes reached the client before the reset", got)
			if v := env.metric("sluice_http2_flow_control_stalls_total"); v < 1 {
				t.Errorf("flow_control_stalls_total = %v", v)
			}
			if v := env.metric(`sluice_http2_rst_streams_total{direction="sent",code="CANCEL"}`); v != 1 {
				t.Errorf("rst_streams_total sent CANCEL = %v, want 1", v)
			}
			hpEventually(t, "the upstream write aborted", func() bool { return aborted.Load() > before })
			hpSettled(t, env.hpEnv)
			recs := env.log.wait(t, 1)
			if recs[0]["end"] != "stall_timeout" {
				t.Errorf("access log end %v", recs[0]["end"])
			}
		})
	}
}

// Memory stays bounded across streams: 100 streams of 256 KiB responses
// to a client whose windows are shut hold about H2MaxBuffered (1 MiB) in
// all, not 25 MiB: past the cap the other upstreams are not read. When
// the client opens its windows, every stream completes.
func TestH2DefenseBufferedAcrossStreams(t *testing.T) {
	const size = 256 << 10
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "262144")
		w.Write(make([]byte, size))
	}))
	env := h2Start(t, HTTPConfig{}, be.addr())
	base := heapInUse()
	r := rawH2Dial(t, env.addr, false, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	for i := 0; i < 100; i++ {
		r.get(uint32(2*i+1), "/big")
	}
	// Read what comes until nothing has for a while.
	frames := make(chan http2.Frame, 1024)
	go func() {
		for {
			f, err := r.next()
			if err != nil {
				close(frames)
				return
			}
			if h, ok := f.(*http2.MetaHeadersFrame); ok {
				f = &http2.HeadersFrame{FrameHeader: h.HeadersFrame.FrameHeader}
			}
			if d, ok := f.(*http2.DataFrame); ok {
				f = &http2.DataFrame{FrameHeader: d.FrameHeader}
			}
			frames <- f
		}
	}()
	// Quiet means 300ms without a frame after the first response heads
	// (a slow machine, or -race, may take longer than that to send any:
	// measured then, the backend's handlers still hold their buffers).
	heads := 0
	for quiet, deadline := false, time.After(10*time.Second); !quiet; {
		select {
		case f := <-frames:
			if _, ok := f.(*http2.HeadersFrame); ok {
				heads++
			}
		case <-time.After(300 * time.Millisecond):
			quiet = heads > 0
		case <-deadline:
			t.Fatal("no response head in 10s")
		}
	}
	grown := int64(heapInUse()) - int64(base)
	t.Logf("stalled: %d response heads out, heap grew %d KiB", heads, grown>>10)
	if grown > 6<<20 {
		t.Errorf("heap grew %d bytes for 100 stalled streams, want about the 1 MiB cap plus per-stream state", grown)
	}
	// Open every window: all 100 responses complete.
	r.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	r.fr.WriteWindowUpdate(0, 1<<30)
	got := map[uint32]int{}
	ended := 0
	deadline := time.After(20 * time.Second)
	for ended < 100 {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatalf("connection closed after %d complete streams", ended)
			}
			switch f := f.(type) {
			case *http2.DataFrame:
				got[f.StreamID] += int(f.Length)
				if f.StreamEnded() {
					ended++
				}
			case *http2.RSTStreamFrame:
				t.Fatalf("stream %d reset %v", f.StreamID, f.ErrCode)
			}
		case <-deadline:
			t.Fatalf("%d of 100 streams complete", ended)
		}
	}
	for id, n := range got {
		if n != size {
			t.Fatalf("stream %d: %d bytes", id, n)
		}
	}
	r.c.Close()
	hpSettled(t, env.hpEnv)
}
