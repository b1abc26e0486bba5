package h2

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
)

// TestGracefulShutdownTwoPhase: 100 streams in flight when Shutdown is
// called, one more that the client sent before it saw the first GOAWAY,
// and one it sends (wrongly) after the final GOAWAY. Every stream up to the
// final last-stream-id completes; Drained turns true after the last one.
func TestGracefulShutdownTwoPhase(t *testing.T) {
	tc := newTestConn(t, Server, Config{MaxConcurrentStreams: 128})
	tc.quiet = true
	for i := range 100 {
		tc.writeHeaders(uint32(1+2*i), false, postFields()...)
	}
	if tc.c.ActiveStreams() != 100 {
		t.Fatalf("%d active", tc.c.ActiveStreams())
	}
	tc.quiet = false

	tc.c.Shutdown(tc.now)
	tc.wantGoAway(MaxStreamID, ErrCodeNo)
	f := tc.wantFrameType(framePing)
	if f.IsAck() {
		t.Fatal("want PING")
	}
	tc.wantIdle()
	if d := tc.c.NextDeadline(); !d.Equal(t0.Add(DefaultGoAwayTimeout)) {
		t.Fatalf("deadline %v", d)
	}
	if tc.c.Drained() {
		t.Fatal("drained in phase 1")
	}

	// A request the client sent before it read the GOAWAY.
	tc.openRequest(201, false)
	// The PING ACK proves the client has seen the GOAWAY: phase 2.
	tc.writeFrame(appendPing(nil, true, f.PingData))
	tc.wantGoAway(201, ErrCodeNo)
	tc.wantIdle()
	if !tc.c.NextDeadline().IsZero() {
		t.Fatal("timer still armed")
	}

	// A stream above the last id is ignored: no event, no RST, and its
	// header block still decoded (HPACK) and its DATA still counted.
	tc.writeHeaders(203, false, postFields(hf("x-late", "1"))...)
	tc.writeData(203, false, "ignored")
	tc.wantIdle()

	// All 101 streams finish; the server answers each.
	ids := []uint32{201}
	for i := range 100 {
		ids = append(ids, uint32(1+2*i))
	}
	for i, id := range ids {
		if tc.c.Drained() {
			t.Fatalf("drained with %d streams left", len(ids)-i)
		}
		tc.writeData(id, true, "body")
		tc.wantEvent(event{kind: "data", id: id, data: "body", es: true})
		if err := tc.c.WriteHeaders(id, []hpack.HeaderField{hf(":status", "200")}, true); err != nil {
			t.Fatal(err)
		}
		tc.wantHeaders(id, true)
	}
	tc.wantIdle()
	if !tc.c.Drained() {
		t.Fatal("not drained after every stream completed")
	}
	if st := tc.c.Stats(); st.GoAwaySent.Of(ErrCodeNo) != 2 || st.StreamsOpened != 101 {
		t.Fatalf("stats %+v", st)
	}
	// The header block of the ignored stream was decoded: a later block
	// referencing its dynamic-table entry would still decode. (The
	// connection is drained, but frames are still processed.)
	tc.writeFrame(appendPing(nil, false, [8]byte{9}))
	tc.wantFrameType(framePing)
}

func TestGracefulShutdownTimeout(t *testing.T) {
	tc := newTestConn(t, Server, Config{GoAwayTimeout: 500 * time.Millisecond})
	tc.openRequest(1, false)
	tc.c.Shutdown(tc.now)
	tc.wantGoAway(MaxStreamID, ErrCodeNo)
	tc.wantFrameType(framePing)
	if err := tc.advance(400 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	tc.wantIdle()
	tc.openRequest(3, true) // still accepted: the client may not have seen it
	if err := tc.advance(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	tc.wantGoAway(3, ErrCodeNo)
	// A late ACK of the shutdown PING changes nothing.
	tc.writeFrame(appendPing(nil, true, shutdownPing))
	tc.wantIdle()
	tc.writeHeaders(5, true, reqFields()...)
	tc.wantIdle()
	tc.c.ResetStream(1, ErrCodeNo)
	tc.c.ResetStream(3, ErrCodeNo)
	if !tc.c.Drained() {
		t.Fatal("not drained")
	}
}

func TestGoAwayImmediate(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.openRequest(1, false)
	tc.openRequest(3, false)
	if err := tc.c.GoAway(ErrCodeNo, ""); err != nil {
		t.Fatal(err)
	}
	tc.wantGoAway(3, ErrCodeNo)
	// An error GOAWAY never raises the last id, and ends the connection.
	if err := tc.c.GoAway(ErrCodeInternal, "shutting down"); err != nil {
		t.Fatal(err)
	}
	f := tc.wantGoAway(3, ErrCodeInternal)
	if string(f.Payload) != "shutting down" {
		t.Fatalf("debug %q", f.Payload)
	}
	_, err := tc.c.Feed(tc.now, appendPing(nil, false, [8]byte{}))
	var ce *ConnError
	if !errors.As(err, &ce) || ce.By != ByCaller || ce.Code != ErrCodeInternal {
		t.Fatalf("Feed after GoAway: %v", err)
	}
}

func TestClientShutdown(t *testing.T) {
	tc := newTestConn(t, Client, Config{})
	tc.c.OpenStream(reqFields(), true)
	id, _ := tc.c.OpenStream(reqFields(), true)
	tc.wantHeaders(id-2, true)
	tc.wantHeaders(id, true)
	tc.c.Shutdown(tc.now)
	// The highest stream opened, not 0: hyperium h2 resets every stream
	// above a GOAWAY's id, its own requests included.
	tc.wantGoAway(id, ErrCodeNo)
	if _, err := tc.c.OpenStream(reqFields(), true); err != ErrGoAway {
		t.Fatalf("OpenStream after Shutdown: %v", err)
	}
	if tc.c.Drained() {
		t.Fatal("drained with a stream open")
	}
	for _, id := range []uint32{id - 2, id} {
		tc.writeHeaders(id, true, hf(":status", "200"))
		tc.wantEvent(event{kind: "headers", id: id, es: true})
	}
	if !tc.c.Drained() {
		t.Fatal("not drained")
	}
}

func TestConnErrorGoAwayCarriesLastStream(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.openRequest(1, false)
	tc.openRequest(5, false)
	err := tc.writeFrameErr(rawFrame(-1, framePing, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8))
	tc.wantConnError(err, ErrCodeProtocol)
	f := tc.wantGoAway(5, ErrCodeProtocol)
	if string(f.Payload) != "PING on a stream" {
		t.Fatalf("debug %q", f.Payload)
	}
	if st := tc.c.Stats(); st.GoAwaySent.Of(ErrCodeProtocol) != 1 {
		t.Fatal("not counted")
	}
	// Sticky.
	if _, err2 := tc.c.Feed(tc.now, nil); err2 != err {
		t.Fatalf("second Feed: %v", err2)
	}
	if err2 := tc.c.WriteHeaders(1, []hpack.HeaderField{hf(":status", "200")}, true); err2 != err {
		t.Fatalf("WriteHeaders after the error: %v", err2)
	}
}

func TestCountErrorHook(t *testing.T) {
	var tokens []string
	tc := newTestConn(t, Server, Config{CountError: func(s string) { tokens = append(tokens, s) }, MaxConcurrentStreams: 1})
	tc.openRequest(1, false)
	tc.writeHeaders(3, true, reqFields()...)
	tc.wantRST(3, ErrCodeRefusedStream)
	if len(tokens) == 0 || tokens[0] != "refused_stream" {
		t.Fatalf("tokens %v", tokens)
	}
}
