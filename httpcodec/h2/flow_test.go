package h2

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
)

func TestRecvWindowGrantedOnlyWhenConsumed(t *testing.T) {
	tc := newTestConn(t, Server, Config{InitialStreamWindow: 1000, ConnWindow: DefaultWindowSize})
	tc.openRequest(1, false)
	tc.writeData(1, false, strings.Repeat("a", 600))
	tc.wantEvent(event{kind: "data", id: 1, data: strings.Repeat("a", 600)})
	tc.wantIdle() // delivered, not consumed: no credit back
	tc.c.Consumed(1, 400)
	tc.wantIdle() // 400 < half the stream window
	tc.c.Consumed(1, 200)
	tc.wantWindowUpdate(1, 600)
	tc.wantIdle()
	// The stream window is 1000 again; 1000 fits, 1001 does not.
	tc.writeData(1, false, strings.Repeat("b", 1000))
	tc.wantEvent(event{kind: "data", id: 1, data: strings.Repeat("b", 1000)})
	tc.writeData(1, false, "c")
	tc.wantRST(1, ErrCodeFlowControl)
	tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeFlowControl, by: ByCodec})
	// Consumed after the stream is gone still returns connection credit.
	tc.c.Consumed(1, 1600)
	if tc.c.recvUnacked != 1600+1 || tc.c.recvHeld != 0 {
		t.Fatalf("unacked %d held %d", tc.c.recvUnacked, tc.c.recvHeld)
	}
}

// TestRecvNeverBeyondConnWindow: however many streams a peer uses, what it
// can make us hold is the connection window; one byte more is an error.
func TestRecvNeverBeyondConnWindow(t *testing.T) {
	const connWin = 6 * 16384
	tc := newTestConn(t, Server, Config{InitialStreamWindow: DefaultWindowSize, ConnWindow: connWin})
	chunk := strings.Repeat("z", 16384)
	for _, id := range []uint32{1, 3, 5} {
		tc.openRequest(id, false)
	}
	for range 2 {
		for _, id := range []uint32{1, 3, 5} {
			tc.writeData(id, false, chunk)
			tc.wantEvent(event{kind: "data", id: id, data: chunk})
		}
	}
	if tc.c.recvHeld != connWin {
		t.Fatalf("holding %d", tc.c.recvHeld)
	}
	tc.openRequest(7, false)
	err := tc.writeFrameErr(appendData(nil, 7, false, []byte("!")))
	tc.wantConnError(err, ErrCodeFlowControl)
	tc.wantGoAway(7, ErrCodeFlowControl)
}

func TestRecvPaddingCreditedAtOnce(t *testing.T) {
	tc := newTestConn(t, Server, Config{ConnWindow: DefaultWindowSize})
	tc.openRequest(1, false)
	tc.writeFrame(appendDataPadded(nil, 1, false, []byte("x"), 200))
	tc.wantEvent(event{kind: "data", id: 1, data: "x"})
	// 200 octets of padding plus the Pad Length octet never reach the
	// caller, so they are owed back already; the data octet is not.
	if tc.c.recvUnacked != 201 || tc.c.recvHeld != 1 {
		t.Fatalf("unacked %d held %d", tc.c.recvUnacked, tc.c.recvHeld)
	}
	// Padding-only frames add up to a WINDOW_UPDATE without any Consumed.
	for range 160 {
		tc.writeFrame(appendDataPadded(nil, 1, false, []byte("x"), 255))
		tc.events = nil
	}
	f := tc.wantFrameType(frameWindowUpdate)
	if f.StreamID != 0 {
		f = tc.wantFrameType(frameWindowUpdate)
	}
	if f.StreamID != 0 || f.Increment < DefaultWindowSize/2 {
		t.Fatalf("want connection WINDOW_UPDATE, got %s", describe(f))
	}
}

func TestRecvDiscardedDataCredited(t *testing.T) {
	tc := newTestConn(t, Server, Config{ConnWindow: DefaultWindowSize})
	tc.openRequest(1, false)
	tc.c.ResetStream(1, ErrCodeCancel)
	tc.wantRST(1, ErrCodeCancel)
	// The peer keeps sending on the reset stream; we ignore it but the
	// connection window must not leak, or every other stream would stall.
	for range 3 {
		tc.writeData(1, false, strings.Repeat("q", 16000))
	}
	tc.wantWindowUpdate(0, 48000)
	tc.wantIdle()
}

func TestRecvWindowBeforeSettingsAck(t *testing.T) {
	// Until the client ACKs our SETTINGS, it may use either 65535 or our
	// smaller value; we accept the larger, then shrink.
	tc := newRawTestConn(t, Server, Config{InitialStreamWindow: 1000, ConnWindow: 1 << 20})
	tc.writeFrame([]byte(ClientPreface))
	tc.writeFrame(appendSettings(nil))
	tc.drain()
	tc.out, tc.events = nil, nil
	tc.openRequest(1, false)
	tc.writeData(1, false, strings.Repeat("a", 5000))
	tc.wantEvent(event{kind: "data", id: 1, data: strings.Repeat("a", 5000)})
	tc.writeFrame(appendSettingsAck(nil))
	tc.events = nil
	if s := tc.c.streams[1]; s.recvWin != 1000-5000 {
		t.Fatalf("window after ACK %d", s.recvWin)
	}
	tc.writeData(1, false, "x")
	tc.wantRST(1, ErrCodeFlowControl)
}

// sendSetup opens stream 1 on a server conn and sends response headers.
func sendSetup(t *testing.T, cfg Config, peerSettings ...setting) *testConn {
	tc := newRawTestConn(t, Server, cfg)
	tc.writeFrame([]byte(ClientPreface))
	tc.writeFrame(appendSettings(nil, peerSettings...))
	tc.writeFrame(appendSettingsAck(nil))
	tc.drain()
	tc.out, tc.events = nil, nil
	tc.openRequest(1, true)
	if err := tc.c.WriteHeaders(1, []hpack.HeaderField{hf(":status", "200")}, false); err != nil {
		t.Fatal(err)
	}
	tc.wantHeaders(1, false)
	return tc
}

func TestSendWindowAndBackpressure(t *testing.T) {
	tc := sendSetup(t, Config{})
	body := bytes.Repeat([]byte{'b'}, 70000)
	n, err := tc.c.WriteData(1, body, true)
	if err != nil || n != DefaultWindowSize {
		t.Fatalf("WriteData %d %v, want %d", n, err, DefaultWindowSize)
	}
	for _, size := range []int{16384, 16384, 16384, 16383} {
		f := tc.wantFrameType(frameData)
		if int(f.Length) != size || f.EndStream() {
			t.Fatalf("DATA of %d es=%v, want %d without END_STREAM", f.Length, f.EndStream(), size)
		}
	}
	tc.wantIdle()
	since, blocked := tc.c.BlockedSince(1)
	if !blocked || !since.Equal(t0) {
		t.Fatalf("BlockedSince %v %v", since, blocked)
	}
	if st := tc.c.Stats(); st.FlowStalls != 1 || st.BlockedStreams != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The connection window opens first: the stream window is still 0.
	tc.now = tc.now.Add(time.Second)
	tc.writeFrame(appendWindowUpdate(nil, 0, 10))
	tc.wantIdle()
	tc.writeFrame(appendWindowUpdate(nil, 1, 100))
	tc.wantEvent(event{kind: "window", id: 1})
	if w := tc.c.SendWindow(1); w != 10 {
		t.Fatalf("SendWindow %d", w)
	}
	n, _ = tc.c.WriteData(1, body[DefaultWindowSize:], true)
	if n != 10 {
		t.Fatalf("wrote %d", n)
	}
	tc.wantData(1, false, string(body[:10]))
	// Still stalled since the first short write, not since the reopening:
	// a peer dribbling windows cannot reset a write timeout.
	if since, _ := tc.c.BlockedSince(1); !since.Equal(t0) {
		t.Fatalf("BlockedSince moved to %v", since)
	}
	if id, since, ok := tc.c.OldestBlocked(); !ok || id != 1 || !since.Equal(t0) {
		t.Fatalf("OldestBlocked %d %v %v", id, since, ok)
	}
	tc.writeFrame(appendWindowUpdate(nil, 1, 100000))
	tc.wantIdle() // the connection window is still 0
	tc.writeFrame(appendWindowUpdate(nil, 0, 100000))
	tc.wantEvent(event{kind: "window", id: 1})
	rest := body[DefaultWindowSize+10:]
	n, _ = tc.c.WriteData(1, rest, true)
	if n != len(rest) {
		t.Fatalf("wrote %d of %d", n, len(rest))
	}
	tc.wantData(1, true, string(rest))
	if _, blocked := tc.c.BlockedSince(1); blocked {
		t.Fatal("still blocked")
	}
	if tc.c.ActiveStreams() != 0 {
		t.Fatal("stream should be closed")
	}
}

func TestSendNegativeWindow(t *testing.T) {
	tc := sendSetup(t, Config{})
	n, _ := tc.c.WriteData(1, bytes.Repeat([]byte{'x'}, 1000), false)
	if n != 1000 {
		t.Fatal(n)
	}
	tc.drain()
	tc.out = nil
	// The peer lowers the initial window under 1000 bytes in flight: the
	// stream window becomes 100 - 1000 = -900.
	tc.writeFrame(appendSettings(nil, setting{settingInitialWindowSize, 100}))
	tc.wantSettingsAck()
	tc.wantEvent(event{kind: "settings"})
	if w := tc.c.streams[1].sendWin; w != -900 {
		t.Fatalf("window %d, want -900", w)
	}
	tc.writeFrame(appendWindowUpdate(nil, 1, 500))
	if n, _ := tc.c.WriteData(1, []byte("y"), false); n != 0 {
		t.Fatalf("wrote %d with a negative window", n)
	}
	tc.wantIdle()
	// Raising it again reopens the stream: -400 + (65535-100) > 0.
	tc.writeFrame(appendSettings(nil, setting{settingInitialWindowSize, DefaultWindowSize}))
	tc.wantSettingsAck()
	tc.wantEvent(event{kind: "window", id: 1})
	tc.wantEvent(event{kind: "settings"})
	// Stream: -400 + 65435 = 65035; connection: 65535 - 1000.
	if w := tc.c.SendWindow(1); w != DefaultWindowSize-1000 {
		t.Fatalf("SendWindow %d", w)
	}
	if w := tc.c.streams[1].sendWin; w != 65035 {
		t.Fatalf("stream window %d", w)
	}
}

func TestWindowUpdateOverflow(t *testing.T) {
	t.Run("connection", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		err := tc.writeFrameErr(appendWindowUpdate(nil, 0, MaxWindowSize))
		tc.wantConnError(err, ErrCodeFlowControl)
		tc.wantGoAway(0, ErrCodeFlowControl)
	})
	t.Run("stream", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.openRequest(1, false)
		tc.writeFrame(appendWindowUpdate(nil, 1, MaxWindowSize))
		tc.wantRST(1, ErrCodeFlowControl)
		tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeFlowControl, by: ByCodec})
		tc.wantIdle()
	})
	t.Run("settings", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.openRequest(1, false)
		tc.writeFrame(appendWindowUpdate(nil, 1, MaxWindowSize-DefaultWindowSize))
		err := tc.writeFrameErr(appendSettings(nil, setting{settingInitialWindowSize, DefaultWindowSize + 1}))
		tc.wantConnError(err, ErrCodeFlowControl)
	})
}

func TestWindowOpenOrderAndSharing(t *testing.T) {
	tc := newRawTestConn(t, Server, Config{})
	tc.writeFrame([]byte(ClientPreface))
	tc.writeFrame(appendSettings(nil, setting{settingInitialWindowSize, 1 << 20}))
	tc.writeFrame(appendSettingsAck(nil))
	tc.drain()
	tc.out, tc.events = nil, nil
	pending := map[uint32][]byte{}
	for _, id := range []uint32{1, 3} {
		tc.openRequest(id, true)
		tc.c.WriteHeaders(id, []hpack.HeaderField{hf(":status", "200")}, false)
		pending[id] = bytes.Repeat([]byte{'p'}, 70000)
	}
	// Stream 1 takes the whole connection window; 3 gets nothing.
	for _, id := range []uint32{1, 3} {
		n, _ := tc.c.WriteData(id, pending[id], true)
		pending[id] = pending[id][n:]
	}
	if len(pending[1]) != 70000-DefaultWindowSize || len(pending[3]) != 70000 {
		t.Fatalf("pending %d %d", len(pending[1]), len(pending[3]))
	}
	tc.drain()
	tc.out = nil
	// Each callback writes what it can; the first one eats the window.
	tc.onWindow = func(id uint32) {
		n, _ := tc.c.WriteData(id, pending[id], true)
		pending[id] = pending[id][n:]
	}
	tc.writeFrame(appendWindowUpdate(nil, 0, 100))
	tc.wantEvent(event{kind: "window", id: 1})
	tc.wantIdle2Frames(t)
	tc.writeFrame(appendWindowUpdate(nil, 0, 1<<20))
	tc.wantEvent(event{kind: "window", id: 1})
	tc.wantEvent(event{kind: "window", id: 3})
	if len(pending[1]) != 0 || len(pending[3]) != 0 {
		t.Fatalf("left %d %d", len(pending[1]), len(pending[3]))
	}
}

// wantIdle2Frames drops queued frames and checks no event is pending.
func (tc *testConn) wantIdle2Frames(t *testing.T) {
	tc.drain()
	tc.out = nil
	if len(tc.events) != 0 {
		t.Fatalf("events %v", tc.events)
	}
}

func TestWriteDataEmptyEndStream(t *testing.T) {
	tc := sendSetup(t, Config{})
	// Exhaust the windows; END_STREAM on an empty frame still goes out.
	tc.c.WriteData(1, bytes.Repeat([]byte{'x'}, DefaultWindowSize), false)
	tc.drain()
	tc.out = nil
	if n, err := tc.c.WriteData(1, nil, true); n != 0 || err != nil {
		t.Fatal(n, err)
	}
	tc.wantData(1, true, "")
	if tc.c.ActiveStreams() != 0 {
		t.Fatal("stream should be closed")
	}
}

func TestDataFrameSizeCapped(t *testing.T) {
	tc := sendSetup(t, Config{}, setting{settingMaxFrameSize, 1 << 20}, setting{settingInitialWindowSize, 1 << 20})
	tc.writeFrame(appendWindowUpdate(nil, 0, 1<<20))
	n, _ := tc.c.WriteData(1, bytes.Repeat([]byte{'x'}, 40000), true)
	if n != 40000 {
		t.Fatal(n)
	}
	for _, want := range []uint32{16384, 16384, 7232} {
		if f := tc.wantFrameType(frameData); f.Length != want {
			t.Fatalf("frame of %d, want %d", f.Length, want)
		}
	}
}

func TestSettingsWindowAppliedOncePerFrame(t *testing.T) {
	tc := sendSetup(t, Config{})
	var ss []setting
	for i := range 2000 {
		ss = append(ss, setting{settingInitialWindowSize, uint32(1000 + i)})
	}
	ss = append(ss, setting{settingInitialWindowSize, 100})
	tc.writeFrame(appendSettings(nil, ss...))
	tc.wantSettingsAck()
	tc.wantEvent(event{kind: "settings"})
	if w := tc.c.streams[1].sendWin; w != 100 {
		t.Fatalf("stream window %d, want 100", w)
	}
}
