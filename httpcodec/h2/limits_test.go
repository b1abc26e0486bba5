package h2

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
)

// Each attack test feeds far more hostile input than the defense allows
// and checks three things: the right error goes out, the connection stops
// processing within a bounded number of frames, and the memory allocated
// while under attack stays under a fixed bound.

// allocated returns the bytes allocated while fn runs.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// feedAll feeds b in one call, without draining output in between, the
// way an event loop hands over a large read.
func (tc *testConn) feedAll(b []byte) (int, error) {
	if len(tc.in) == 0 {
		tc.in = b // no copy: allocation measurements see only Feed
	} else {
		tc.in = append(tc.in, b...)
	}
	n, err := tc.c.Feed(tc.now, tc.in)
	tc.in = tc.in[n:]
	return n, err
}

// lastGoAway scans our output for the GOAWAY.
func (tc *testConn) lastGoAway() *frame {
	tc.t.Helper()
	var ga *frame
	for {
		f, ok := tc.readFrame()
		if !ok {
			return ga
		}
		if f.Type == frameGoAway {
			ga = f
		}
	}
}

func (tc *testConn) wantCalm(err error, debug string) {
	tc.t.Helper()
	tc.wantConnError(err, ErrCodeEnhanceYourCalm)
	ga := tc.lastGoAway()
	if ga == nil || ga.Code != ErrCodeEnhanceYourCalm {
		tc.t.Fatalf("want GOAWAY ENHANCE_YOUR_CALM, got %v", ga)
	}
	if debug != "" && !strings.Contains(string(ga.Payload), debug) {
		tc.t.Fatalf("GOAWAY debug %q, want %q", ga.Payload, debug)
	}
}

func TestLimitConcurrentStreams(t *testing.T) {
	tc := newTestConn(t, Server, Config{MaxConcurrentStreams: 10})
	for i := range 10 {
		tc.openRequest(uint32(2*i+1), false)
	}
	// The 11th is refused, and its block is decoded anyway: the literal it
	// adds to the dynamic table must be there for the next request.
	tc.writeHeaders(21, true, reqFields(hf("x-session", "abc"))...)
	tc.wantRST(21, ErrCodeRefusedStream)
	tc.wantIdle()
	if tc.c.ActiveStreams() != 10 {
		t.Fatalf("%d active", tc.c.ActiveStreams())
	}
	// A stream finishing makes room.
	tc.writeFrame(appendRSTStream(nil, 1, ErrCodeCancel))
	tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeCancel, by: ByPeer})
	tc.writeHeaders(23, true, reqFields(hf("x-session", "abc"))...)
	e := tc.wantEvent(event{kind: "headers", id: 23, es: true})
	if e.fields[4].Value != "abc" {
		t.Fatal("HPACK out of sync after a refused stream")
	}
	// DATA already in flight on the refused stream is ignored.
	tc.writeData(21, false, "late")
	tc.wantIdle()
	if st := tc.c.Stats(); st.StreamsRefused != 1 || st.ResetsSent.Of(ErrCodeRefusedStream) != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestLimitRefusedStreamFlood: a client that keeps opening streams over
// the limit pays the reset budget like a Rapid Reset client.
func TestLimitRefusedStreamFlood(t *testing.T) {
	tc := newTestConn(t, Server, Config{MaxConcurrentStreams: 1})
	tc.openRequest(1, false)
	var in []byte
	block := tc.block(reqFields()...)
	for i := range 5000 {
		in = appendHeaders(in, uint32(3+2*i), true, true, block)
	}
	var n int
	var err error
	alloc := allocated(func() { n, err = tc.feedAll(in) })
	tc.wantCalm(err, "reset")
	frameLen := len(appendHeaders(nil, 3, true, true, block))
	if frames := n / frameLen; frames > DefaultResetBudget.Max+1 {
		t.Fatalf("processed %d frames before cutting off", frames)
	}
	if alloc > 1<<20 {
		t.Fatalf("allocated %d bytes", alloc)
	}
}

func TestLimitHeaderListSize(t *testing.T) {
	t.Run("431 with END_STREAM", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{MaxHeaderListSize: 1000})
		tc.writeHeaders(1, true, reqFields(hf("x-big", bigString(1000)))...)
		got := tc.wantHeaders(1, true)
		if !fieldsEqual(got, status431) {
			t.Fatalf("response %v", got)
		}
		tc.wantIdle()
		if tc.c.ActiveStreams() != 0 {
			t.Fatal("stream kept")
		}
		tc.openRequest(3, true)
	})
	t.Run("431 then RST NO_ERROR when the body is still coming", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{MaxHeaderListSize: 1000})
		tc.writeHeaders(1, false, postFields(hf("x-big", bigString(1000)))...)
		tc.wantHeaders(1, true)
		tc.wantRST(1, ErrCodeNo)
		tc.writeData(1, true, "body in flight") // ignored
		tc.wantIdle()
	})
	t.Run("response too large", func(t *testing.T) {
		tc := newTestConn(t, Client, Config{MaxHeaderListSize: 1000})
		tc.c.OpenStream(reqFields(), true)
		tc.wantHeaders(1, true)
		tc.writeHeaders(1, false, hf(":status", "200"), hf("x-big", bigString(1000)))
		tc.wantRST(1, ErrCodeCancel)
		tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeCancel, by: ByCodec})
	})
	t.Run("enforced while decoding", func(t *testing.T) {
		// 2000 fields of ~100 bytes: 264 KB decoded if materialized. The
		// block fits MaxHeaderBlockBytes, so it is decoded (HPACK state)
		// but fields past the 64 KiB list limit are never emitted.
		tc := newTestConn(t, Server, Config{MaxHeaderBlockBytes: 1 << 20, MaxHeaderBlockFrames: 100})
		fields := reqFields()
		for i := range 2000 {
			fields = append(fields, hf("x-f"+itoa(i), bigString(90)))
		}
		block := tc.block(fields...)
		var in []byte
		for off := 0; off < len(block); off += 16384 {
			end := min(off+16384, len(block))
			if off == 0 {
				in = appendHeaders(in, 1, true, end == len(block), block[off:end])
			} else {
				in = appendContinuation(in, 1, end == len(block), block[off:end])
			}
		}
		tc.writeFrame(in)
		if max := DefaultMaxHeaderListSize / 32; len(tc.c.fields) > max {
			t.Fatalf("kept %d fields, limit allows at most %d", len(tc.c.fields), max)
		}
		tc.wantHeaders(1, true) // 431
		tc.wantIdle()
	})
}

// TestLimitHPACKBomb: one 4000-byte entry in the dynamic table, then a
// block of 16000 one-byte references to it: 64 MB if decoded naively.
func TestLimitHPACKBomb(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range reqFields() {
		enc.WriteField(f)
	}
	enc.WriteField(hf("x-bomb", bigString(4000))) // indexed: dynamic index 62
	for buf.Len() < 16000 {
		buf.WriteByte(0x80 | 62)
	}
	frame := appendHeaders(nil, 1, true, true, buf.Bytes())
	alloc := allocated(func() { tc.writeFrame(frame) })
	got := tc.wantHeaders(1, true)
	if got[0].Value != "431" {
		t.Fatalf("response %v", got)
	}
	if alloc > 1<<20 {
		t.Fatalf("allocated %d bytes decoding the bomb", alloc)
	}
	t.Logf("HPACK bomb (64 MB decoded size): %d bytes allocated", alloc)

	t.Run("table size above the advertised limit", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		// Dynamic table size update to 1 MiB, above our 4096.
		b := []byte{0x3f, 0xe1, 0xff, 0x3f}
		err := tc.writeFrameErr(appendHeaders(nil, 1, true, true, append(b, 0x82)))
		tc.wantConnError(err, ErrCodeCompression)
	})
}

func TestLimitContinuationFlood(t *testing.T) {
	t.Run("empty frames", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		in := appendHeaders(nil, 1, true, false, tc.block(reqFields()...)[:3])
		for range 100000 {
			in = appendContinuation(in, 1, false, nil)
		}
		var n int
		var err error
		alloc := allocated(func() { n, err = tc.feedAll(in) })
		tc.wantCalm(err, "CONTINUATION")
		if frames := (n - 9) / 9; frames > DefaultMaxHeaderBlockFrames {
			t.Fatalf("processed %d CONTINUATIONs", frames)
		}
		if alloc > 64<<10 {
			t.Fatalf("allocated %d bytes", alloc)
		}
	})
	for _, tt := range []struct {
		name string
		size int
	}{
		// 200 KiB fits HPACK's string limit: the byte cap cuts it off.
		{"full frames, 200 KiB literal", 200 << 10},
		// 10 MiB is refused as soon as its length prefix is read.
		{"full frames, 10 MiB literal", 10 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// A single huge literal spread over CONTINUATIONs: the decoder
			// must hold the partial string, so the caps are what bound it.
			tc := newTestConn(t, Server, Config{})
			var buf bytes.Buffer
			enc := hpack.NewEncoder(&buf)
			for _, f := range reqFields() {
				enc.WriteField(f)
			}
			enc.WriteField(hpack.HeaderField{Name: "x-huge", Value: bigString(tt.size)})
			block := buf.Bytes()
			in := appendHeaders(nil, 1, true, false, block[:16384])
			for off := 16384; off+16384 < len(block); off += 16384 {
				in = appendContinuation(in, 1, false, block[off:off+16384])
			}
			var n int
			var err error
			alloc := allocated(func() { n, err = tc.feedAll(in) })
			tc.wantCalm(err, "too large")
			if limit := 2*DefaultMaxHeaderListSize + 16384 + 9*20; n > limit {
				t.Fatalf("consumed %d bytes, cap is %d", n, limit)
			}
			if alloc > 2<<20 {
				t.Fatalf("allocated %d bytes", alloc)
			}
			t.Logf("cut off after %d bytes, %d bytes allocated", n, alloc)
		})
	}
}

func TestLimitRapidReset(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.quiet = true
	block := tc.block(reqFields()...)
	var in []byte
	for i := range 10000 {
		id := uint32(1 + 2*i)
		in = appendHeaders(in, id, false, true, block)
		in = appendRSTStream(in, id, ErrCodeCancel)
	}
	var n int
	var err error
	alloc := allocated(func() { n, err = tc.feedAll(in) })
	tc.wantCalm(err, "reset")
	pair := len(appendHeaders(nil, 1, false, true, block)) + 13
	if streams := n / pair; streams > DefaultResetBudget.Max+1 {
		t.Fatalf("accepted %d reset streams", streams)
	}
	if len(tc.c.closed.ents) > DefaultMaxClosedStreams || tc.c.ActiveStreams() > 1 {
		t.Fatalf("remembered %d closed, %d active", len(tc.c.closed.ents), tc.c.ActiveStreams())
	}
	// Each accepted stream reached the caller; the rest never did.
	headers := tc.seen["headers"]
	if headers > DefaultResetBudget.Max+1 {
		t.Fatalf("%d requests reached the caller", headers)
	}
	if alloc > 2<<20 {
		t.Fatalf("allocated %d bytes", alloc)
	}
	t.Logf("rapid reset: %d of 10000 streams processed, %d bytes allocated", headers, alloc)
}

func TestLimitResetsUnderBudgetAreFine(t *testing.T) {
	tc := newTestConn(t, Server, Config{ResetBudget: Budget{Max: 50, Per: time.Second}})
	block := tc.block(reqFields()...)
	id := uint32(1)
	for range 5 { // five windows of 40 resets each
		var in []byte
		for range 40 {
			in = appendHeaders(in, id, false, true, block)
			in = appendRSTStream(in, id, ErrCodeCancel)
			id += 2
		}
		if _, err := tc.feedAll(in); err != nil {
			t.Fatal(err)
		}
		tc.now = tc.now.Add(time.Second)
	}
}

// TestLimitMadeYouReset: stream errors the peer provokes on purpose count
// too (the "MadeYouReset" variant).
func TestLimitMadeYouReset(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	block := tc.block(reqFields()...)
	var in []byte
	for i := range 1000 {
		id := uint32(1 + 2*i)
		in = appendHeaders(in, id, false, true, block)
		in = rawFrameAppend(in, frameWindowUpdate, 0, id, u32(0)) // stream error
	}
	_, err := tc.feedAll(in)
	tc.wantCalm(err, "reset")
}

func rawFrameAppend(dst []byte, t frameType, flags frameFlags, id uint32, payload []byte) []byte {
	return appendFrame(dst, t, flags, id, payload)
}

func TestLimitControlFloods(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		frame func(i int) []byte
		debug string
	}{
		{"PING", Config{}, func(i int) []byte { return appendPing(nil, false, [8]byte{byte(i)}) }, "PING"},
		{"SETTINGS", Config{}, func(int) []byte { return appendSettings(nil, setting{settingMaxConcurrentStreams, 10}) }, "SETTINGS"},
		{"WINDOW_UPDATE(0)", Config{}, func(int) []byte { return appendWindowUpdate(nil, 0, 1) }, "WINDOW_UPDATE"},
		{"PRIORITY", Config{}, func(i int) []byte { return appendPriority(nil, uint32(2*i+101), priority{Weight: 1}) }, "empty"},
		{"unknown frames", Config{}, func(int) []byte { return appendFrame(nil, 0xcc, 0, 0, nil) }, "empty"},
		{"PING ACKs for nothing", Config{}, func(i int) []byte { return appendPing(nil, true, [8]byte{byte(i)}) }, "empty"},
		// With the rate budgets off, the queued-response cap still holds
		// when the caller does not drain output.
		{"PING, budgets off", Config{PingBudget: Budget{Max: -1}}, func(i int) []byte { return appendPing(nil, false, [8]byte{byte(i)}) }, "queued"},
		{"SETTINGS, budgets off", Config{SettingsBudget: Budget{Max: -1}}, func(int) []byte { return appendSettings(nil) }, "queued"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := newTestConn(t, Server, tt.cfg)
			tc.quiet = true
			var in []byte
			for i := range 100000 {
				in = append(in, tt.frame(i)...)
			}
			var n int
			var err error
			alloc := allocated(func() { n, err = tc.feedAll(in) })
			tc.wantCalm(err, tt.debug)
			frames := n / len(tt.frame(0))
			if frames > 1001 {
				t.Fatalf("processed %d frames", frames)
			}
			if out := tc.c.OutputLen(); out > 1001*17+64 {
				t.Fatalf("%d bytes of output queued", out)
			}
			if alloc > 256<<10 {
				t.Fatalf("allocated %d bytes", alloc)
			}
		})
	}
}

func TestLimitWindowUpdateAllowanceGrowsWithData(t *testing.T) {
	tc := sendSetup(t, Config{})
	// Send 1000 small DATA frames: the peer may answer each with two
	// WINDOW_UPDATEs on top of the base budget.
	for range 1000 {
		if n, _ := tc.c.WriteData(1, []byte("x"), false); n != 1 {
			t.Fatal("window exhausted")
		}
	}
	tc.drain()
	tc.out = nil
	var in []byte
	for range 2000 {
		in = appendWindowUpdate(in, 1, 1)
	}
	if _, err := tc.feedAll(in); err != nil {
		t.Fatalf("legitimate WINDOW_UPDATEs refused: %v", err)
	}
}

func TestLimitEmptyDataFlood(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.openRequest(1, false)
	var in []byte
	for range 100000 {
		in = appendData(in, 1, false, nil)
	}
	var err error
	alloc := allocated(func() { _, err = tc.feedAll(in) })
	tc.wantCalm(err, "empty")
	for _, e := range tc.events {
		if e.kind == "data" {
			t.Fatal("empty DATA delivered to the caller")
		}
	}
	if alloc > 64<<10 {
		t.Fatalf("allocated %d bytes", alloc)
	}
}

// TestLimitStalledWindow: a client that never opens its window gets
// nothing queued beyond the window, and the caller can see for how long.
func TestLimitStalledWindow(t *testing.T) {
	tc := sendSetup(t, Config{}, setting{settingInitialWindowSize, 0})
	body := bytes.Repeat([]byte{'s'}, 1<<20)
	for range 100 {
		if n, _ := tc.c.WriteData(1, body, false); n != 0 {
			t.Fatalf("wrote %d into a zero window", n)
		}
	}
	if tc.c.OutputLen() != 0 {
		t.Fatalf("%d bytes queued for a stalled peer", tc.c.OutputLen())
	}
	// Dribbling one byte at a time: the stall keeps its start time.
	for range 100 {
		tc.now = tc.now.Add(time.Second)
		tc.writeFrame(appendWindowUpdate(nil, 1, 1))
		tc.events = nil
		if n, _ := tc.c.WriteData(1, body, false); n != 1 {
			t.Fatalf("wrote %d", n)
		}
	}
	since, blocked := tc.c.BlockedSince(1)
	if !blocked || !since.Equal(t0) {
		t.Fatalf("BlockedSince %v %v", since, blocked)
	}
	// The caller's write timeout (30 s, say) fires and resets the stream.
	if tc.now.Sub(since) > 30*time.Second {
		tc.c.ResetStream(1, ErrCodeCancel)
	}
	if tc.c.ActiveStreams() != 0 || tc.c.Stats().BlockedStreams != 0 {
		t.Fatal("stream not released")
	}
	if st := tc.c.Stats(); st.FlowStalls != 200 {
		t.Fatalf("FlowStalls %d", st.FlowStalls)
	}
}

// TestLimitBoundedStreamMemory: closed streams are remembered in a bounded
// ring, so a long-lived connection with millions of requests stays small.
func TestLimitBoundedStreamMemory(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.onHeaders = func(id uint32, h *Headers) {
		tc.c.WriteHeaders(id, []hpack.HeaderField{hf(":status", "204")}, true)
	}
	block := tc.block(reqFields()...)
	for i := range 20000 {
		tc.writeFrame(appendHeaders(nil, uint32(1+2*i), true, true, block))
		tc.events = tc.events[:0]
		tc.out = tc.out[:0]
	}
	if len(tc.c.closed.ents) != DefaultMaxClosedStreams || len(tc.c.streams) != 0 || len(tc.c.spare) > maxSpareStreams {
		t.Fatalf("closed %d, streams %d, spare %d", len(tc.c.closed.ents), len(tc.c.streams), len(tc.c.spare))
	}
}
