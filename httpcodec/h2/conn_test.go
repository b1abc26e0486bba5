package h2

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
)

func TestServerPreface(t *testing.T) {
	tc := newRawTestConn(t, Server, Config{})
	// Our SETTINGS goes out before the client says anything.
	f := tc.wantFrameType(frameSettings)
	if f.NumSettings() == 0 {
		t.Fatal("empty SETTINGS")
	}
	got := map[settingID]uint32{}
	for i := range f.NumSettings() {
		s := f.setting(i)
		got[s.ID] = s.Val
	}
	if got[settingMaxConcurrentStreams] != 100 || got[settingInitialWindowSize] != 256<<10 || got[settingMaxHeaderListSize] != 64<<10 {
		t.Fatalf("advertised %v", got)
	}
	tc.wantWindowUpdate(0, 1<<20-65535)
	// The preface may arrive a byte at a time.
	for i := range len(ClientPreface) {
		tc.writeFrame([]byte{ClientPreface[i]})
	}
	tc.writeFrame(appendSettings(nil, setting{settingMaxFrameSize, 1 << 20}))
	tc.wantSettingsAck()
	tc.wantEvent(event{kind: "settings"})
	if tc.c.PeerSettings().MaxFrameSize != 1<<20 {
		t.Fatal("peer setting not applied")
	}
	tc.wantIdle()
}

func TestServerBadPreface(t *testing.T) {
	tc := newRawTestConn(t, Server, Config{})
	tc.drain()
	tc.out = nil
	err := tc.writeFrameErr([]byte("GET / HTTP/1.1\r\n"))
	tc.wantConnError(err, ErrCodeProtocol)
	// "A GOAWAY frame MAY be omitted in this case": an HTTP/1 client would
	// not understand it.
	tc.wantIdle()
}

func TestFirstFrameMustBeSettings(t *testing.T) {
	for _, role := range []Role{Server, Client} {
		t.Run(role.String(), func(t *testing.T) {
			tc := newRawTestConn(t, role, Config{})
			tc.drain()
			tc.out = nil
			var in []byte
			if role == Server {
				in = []byte(ClientPreface)
			}
			err := tc.writeFrameErr(append(in, appendPing(nil, false, [8]byte{})...))
			tc.wantConnError(err, ErrCodeProtocol)
			tc.wantGoAway(0, ErrCodeProtocol)
		})
	}
	// Also when the first frame is one the framer flags as a stream error.
	tc := newRawTestConn(t, Server, Config{})
	tc.drain()
	tc.out = nil
	err := tc.writeFrameErr(append([]byte(ClientPreface), appendPriority(nil, 1, priority{StreamDep: 1})...))
	tc.wantConnError(err, ErrCodeProtocol)
	tc.wantGoAway(0, ErrCodeProtocol)
}

func TestClientPreface(t *testing.T) {
	tc := newRawTestConn(t, Client, Config{})
	tc.wantRaw([]byte(ClientPreface))
	f := tc.wantFrameType(frameSettings)
	push := false
	for i := range f.NumSettings() {
		if s := f.setting(i); s.ID == settingEnablePush && s.Val == 0 {
			push = true
		}
	}
	if !push {
		t.Fatal("client must disable push")
	}
}

func TestSettingsAckTimeout(t *testing.T) {
	tc := newRawTestConn(t, Server, Config{SettingsTimeout: 5 * time.Second})
	tc.writeFrame([]byte(ClientPreface))
	tc.writeFrame(appendSettings(nil))
	tc.drain()
	tc.out = nil
	tc.events = nil
	if got := tc.c.NextDeadline(); !got.Equal(t0.Add(5 * time.Second)) {
		t.Fatalf("deadline %v", got)
	}
	if err := tc.advance(4 * time.Second); err != nil {
		t.Fatal(err)
	}
	err := tc.advance(time.Second)
	tc.wantConnError(err, ErrCodeSettingsTimeout)
	tc.wantGoAway(0, ErrCodeSettingsTimeout)
	if !tc.c.NextDeadline().IsZero() {
		t.Fatal("deadline armed after the connection ended")
	}
}

func TestSettingsAckStopsTimer(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	if !tc.c.NextDeadline().IsZero() {
		t.Fatalf("deadline %v after ACK", tc.c.NextDeadline())
	}
	// An ACK for nothing is a protocol error.
	err := tc.writeFrameErr(appendSettingsAck(nil))
	tc.wantConnError(err, ErrCodeProtocol)
}

func TestClientRejectsEnablePush(t *testing.T) {
	tc := newRawTestConn(t, Client, Config{})
	tc.drain()
	err := tc.writeFrameErr(appendSettings(nil, setting{settingEnablePush, 1}))
	tc.wantConnError(err, ErrCodeProtocol)
}

func TestPing(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	data := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	tc.writeFrame(appendPing(nil, false, data))
	f := tc.wantFrameType(framePing)
	if !f.IsAck() || f.PingData != data {
		t.Fatalf("want PING ACK %x, got ack=%v %x", data, f.IsAck(), f.PingData)
	}
	tc.wantIdle()

	// Our own ping and its round trip.
	mine := [8]byte{'m', 'i', 'n', 'e'}
	if err := tc.c.Ping(tc.now, mine); err != nil {
		t.Fatal(err)
	}
	f = tc.wantFrameType(framePing)
	if f.IsAck() || f.PingData != mine {
		t.Fatal("want our PING")
	}
	tc.now = tc.now.Add(30 * time.Millisecond)
	tc.writeFrame(appendPing(nil, true, mine))
	e := tc.wantEvent(event{kind: "pingack"})
	if e.ping != mine || e.rtt != 30*time.Millisecond {
		t.Fatalf("got %v", e)
	}
	tc.wantIdle()

	for i := range DefaultMaxOutstandingPings {
		if err := tc.c.Ping(tc.now, [8]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tc.c.Ping(tc.now, [8]byte{0xff}); err != ErrTooManyPings {
		t.Fatalf("got %v, want ErrTooManyPings", err)
	}
}

func TestRequestResponse(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.writeHeaders(1, false, postFields(hf("content-length", "11"))...)
	e := tc.wantEvent(event{kind: "headers", id: 1})
	if e.hdr.Method != "POST" || e.hdr.Path != "/upload" || e.hdr.Authority != "example.com" || e.hdr.Scheme != "https" || e.hdr.ContentLength != 11 {
		t.Fatalf("headers %+v", e.hdr)
	}
	tc.writeData(1, false, "hello ")
	tc.wantEvent(event{kind: "data", id: 1, data: "hello "})
	tc.writeData(1, true, "world")
	tc.wantEvent(event{kind: "data", id: 1, data: "world", es: true})
	tc.wantIdle()

	if err := tc.c.WriteHeaders(1, []hpack.HeaderField{hf(":status", "200"), hf("content-type", "text/plain")}, false); err != nil {
		t.Fatal(err)
	}
	got := tc.wantHeaders(1, false)
	if !fieldsEqual(got, []hpack.HeaderField{hf(":status", "200"), hf("content-type", "text/plain")}) {
		t.Fatalf("response headers %v", got)
	}
	if n, err := tc.c.WriteData(1, []byte("ok"), false); n != 2 || err != nil {
		t.Fatalf("WriteData %d %v", n, err)
	}
	tc.wantData(1, false, "ok")
	if err := tc.c.WriteTrailers(1, []hpack.HeaderField{hf("grpc-status", "0")}); err != nil {
		t.Fatal(err)
	}
	tc.wantHeaders(1, true)
	if tc.c.ActiveStreams() != 0 {
		t.Fatalf("%d active streams after both ends closed", tc.c.ActiveStreams())
	}
	// A frame on the closed stream after END_STREAM both ways.
	err := tc.writeFrameErr(appendData(nil, 1, false, []byte("late")))
	tc.wantConnError(err, ErrCodeStreamClosed)
}

func TestRequestTrailers(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.openRequest(1, false)
	tc.writeData(1, false, "body")
	tc.wantEvent(event{kind: "data", id: 1, data: "body"})
	tc.writeHeaders(1, true, hf("x-checksum", "abc"))
	tc.wantEvent(event{kind: "trailers", id: 1, fields: []hpack.HeaderField{hf("x-checksum", "abc")}})
	tc.wantIdle()
}

func TestTrailersWithoutEndStream(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.openRequest(1, false)
	tc.writeHeaders(1, false, hf("x-checksum", "abc"))
	tc.wantRST(1, ErrCodeProtocol)
	tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeProtocol, by: ByCodec})
	tc.wantIdle()
}

func TestPseudoHeaderInTrailers(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.openRequest(1, false)
	tc.writeHeaders(1, true, hf(":path", "/x"))
	tc.wantRST(1, ErrCodeProtocol)
	tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeProtocol, by: ByCodec})
}

func TestContinuationAssembly(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	block := tc.block(reqFields(hf("x-long", bigString(100)))...)
	// Split the block across HEADERS and two CONTINUATIONs, one of them
	// empty, and deliver the frames in separate Feed calls.
	tc.writeFrame(appendHeaders(nil, 1, true, false, block[:5]))
	tc.wantIdle()
	tc.writeFrame(appendContinuation(nil, 1, false, nil))
	tc.writeFrame(appendContinuation(nil, 1, false, block[5:40]))
	tc.writeFrame(appendContinuation(nil, 1, true, block[40:]))
	e := tc.wantEvent(event{kind: "headers", id: 1, es: true})
	if len(e.fields) != 5 || e.fields[4].Value != bigString(100) {
		t.Fatalf("fields %v", e.fields)
	}
	tc.wantIdle()
}

func TestContinuationInterleaving(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
	}{
		{"DATA on the same stream", appendData(nil, 1, false, []byte("x"))},
		{"PING", appendPing(nil, false, [8]byte{})},
		{"HEADERS on another stream", appendHeaders(nil, 3, true, true, []byte{0x82})},
		{"CONTINUATION on another stream", appendContinuation(nil, 3, true, []byte{0x82})},
		{"unknown frame", appendFrame(nil, 0xee, 0, 0, nil)},
		{"PRIORITY", appendPriority(nil, 1, priority{StreamDep: 0, Weight: 1})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := newTestConn(t, Server, Config{})
			block := tc.block(reqFields()...)
			tc.writeFrame(appendHeaders(nil, 1, true, false, block[:2]))
			err := tc.writeFrameErr(tt.frame)
			tc.wantConnError(err, ErrCodeProtocol)
			tc.wantGoAway(1, ErrCodeProtocol)
		})
	}
	t.Run("CONTINUATION without HEADERS", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		err := tc.writeFrameErr(appendContinuation(nil, 1, true, []byte{0x82}))
		tc.wantConnError(err, ErrCodeProtocol)
	})
	t.Run("CONTINUATION after END_HEADERS", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.openRequest(1, false)
		err := tc.writeFrameErr(appendContinuation(nil, 1, true, []byte{0x82}))
		tc.wantConnError(err, ErrCodeProtocol)
	})
}

func TestStreamIDRules(t *testing.T) {
	t.Run("even stream from client", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		err := tc.writeFrameErr(appendHeaders(nil, 2, true, true, tc.block(reqFields()...)))
		tc.wantConnError(err, ErrCodeProtocol)
	})
	t.Run("decreasing stream id", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.openRequest(5, true)
		err := tc.writeFrameErr(appendHeaders(nil, 3, true, true, tc.block(reqFields()...)))
		tc.wantConnError(err, ErrCodeProtocol)
		tc.wantGoAway(5, ErrCodeProtocol)
	})
	t.Run("skipped ids are closed", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.openRequest(7, false)
		// Stream 3 was implicitly closed by the use of 7.
		tc.writeData(3, false, "x")
		tc.wantRST(3, ErrCodeStreamClosed)
		tc.wantIdle()
	})
	t.Run("DATA on idle stream", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		err := tc.writeFrameErr(appendData(nil, 1, false, []byte("x")))
		tc.wantConnError(err, ErrCodeProtocol)
	})
	t.Run("RST_STREAM on idle stream", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		err := tc.writeFrameErr(appendRSTStream(nil, 1, ErrCodeCancel))
		tc.wantConnError(err, ErrCodeProtocol)
	})
	t.Run("WINDOW_UPDATE on idle stream", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		err := tc.writeFrameErr(appendWindowUpdate(nil, 1, 10))
		tc.wantConnError(err, ErrCodeProtocol)
	})
	t.Run("PRIORITY on idle stream", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.writeFrame(appendPriority(nil, 9, priority{StreamDep: 0, Weight: 15}))
		tc.wantIdle()
		// PRIORITY does not open the stream: 3 is still usable.
		tc.openRequest(3, true)
	})
	t.Run("PRIORITY self dependency", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.openRequest(1, false)
		tc.writeFrame(appendPriority(nil, 1, priority{StreamDep: 1, Weight: 15}))
		tc.wantRST(1, ErrCodeProtocol)
		tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeProtocol, by: ByCodec})
	})
	t.Run("HEADERS self dependency", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.writeFrame(appendHeadersFrame(nil, headersParams{
			StreamID: 1, Fragment: tc.block(reqFields(hf("x-indexed", "kept"))...), EndStream: true, EndHeaders: true,
			HasPriority: true, Priority: priority{StreamDep: 1},
		}))
		tc.wantRST(1, ErrCodeProtocol)
		tc.wantIdle()
		// The block was decoded anyway: the dynamic table stayed in sync
		// and the peer's next block, which references it, decodes.
		tc.writeHeaders(3, true, reqFields(hf("x-indexed", "kept"))...)
		e := tc.wantEvent(event{kind: "headers", id: 3, es: true})
		if e.fields[4].Value != "kept" {
			t.Fatalf("fields %v", e.fields)
		}
	})
	t.Run("WINDOW_UPDATE 0 on open stream", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.openRequest(1, false)
		tc.writeFrame(rawFrame(-1, frameWindowUpdate, 0, 1, u32(0)...))
		tc.wantRST(1, ErrCodeProtocol)
		tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeProtocol, by: ByCodec})
	})
}

func TestClosedStreamHandling(t *testing.T) {
	t.Run("frames after our RST_STREAM are ignored", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.openRequest(1, false)
		tc.c.ResetStream(1, ErrCodeCancel)
		tc.wantRST(1, ErrCodeCancel)
		tc.writeData(1, false, "in flight")
		tc.writeHeaders(1, true, hf("x-trailer", "1"))
		tc.writeFrame(appendWindowUpdate(nil, 1, 100))
		tc.writeFrame(appendRSTStream(nil, 1, ErrCodeCancel))
		tc.wantIdle()
	})
	t.Run("frames after peer RST_STREAM", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.openRequest(1, false)
		tc.writeFrame(appendRSTStream(nil, 1, ErrCodeCancel))
		tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeCancel, by: ByPeer})
		// "An endpoint that receives any frame other than PRIORITY after
		// receiving a RST_STREAM MUST treat that as a stream error".
		tc.writeData(1, false, "x")
		tc.wantRST(1, ErrCodeStreamClosed)
		tc.writeFrame(appendPriority(nil, 1, priority{StreamDep: 0, Weight: 1}))
		tc.wantIdle()
	})
	t.Run("WINDOW_UPDATE after our END_STREAM is fine", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.openRequest(1, true)
		tc.c.WriteHeaders(1, []hpack.HeaderField{hf(":status", "204")}, true)
		tc.wantHeaders(1, true)
		tc.writeFrame(appendWindowUpdate(nil, 1, 100))
		tc.writeFrame(appendRSTStream(nil, 1, ErrCodeNo))
		tc.wantIdle()
	})
	t.Run("DATA on half-closed (remote)", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{})
		tc.openRequest(1, true)
		tc.writeData(1, false, "x")
		tc.wantRST(1, ErrCodeStreamClosed)
		tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeStreamClosed, by: ByCodec})
	})
	t.Run("forgotten after retention", func(t *testing.T) {
		tc := newTestConn(t, Server, Config{ClosedStreamRetention: time.Second})
		tc.openRequest(1, false)
		tc.c.ResetStream(1, ErrCodeCancel)
		tc.wantRST(1, ErrCodeCancel)
		tc.now = tc.now.Add(2 * time.Second)
		// No longer remembered as reset by us: DATA now earns STREAM_CLOSED.
		tc.writeData(1, false, "late")
		tc.wantRST(1, ErrCodeStreamClosed)
	})
}

func TestPushPromiseRejected(t *testing.T) {
	for _, role := range []Role{Server, Client} {
		t.Run(role.String(), func(t *testing.T) {
			tc := newTestConn(t, role, Config{})
			if role == Client {
				if _, err := tc.c.OpenStream(reqFields(), true); err != nil {
					t.Fatal(err)
				}
				tc.wantHeaders(1, true)
			}
			err := tc.writeFrameErr(appendPushPromise(nil, pushPromiseParams{StreamID: 1, PromisedID: 2, Fragment: []byte{0x82}, EndHeaders: true}))
			tc.wantConnError(err, ErrCodeProtocol)
		})
	}
}

func TestUnknownFrameIgnored(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.writeFrame(appendFrame(nil, 0xbb, 0xff, 1, []byte("extension")))
	tc.writeFrame(appendFrame(nil, 0x10, 0, 0, nil)) // PRIORITY_UPDATE (RFC 9218)
	tc.wantIdle()
	tc.openRequest(1, true)
}

func TestFrameTooLarge(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	// The header alone is enough to refuse it.
	err := tc.writeFrameErr(rawFrame(1<<20, frameData, 0, 1)[:frameHeaderLen])
	tc.wantConnError(err, ErrCodeFrameSize)
	tc.wantGoAway(0, ErrCodeFrameSize)
}

func TestPeerGoAway(t *testing.T) {
	tc := newTestConn(t, Client, Config{})
	for range 3 {
		if _, err := tc.c.OpenStream(reqFields(), true); err != nil {
			t.Fatal(err)
		}
	}
	tc.wantHeaders(1, true)
	tc.wantHeaders(3, true)
	tc.wantHeaders(5, true)
	tc.writeFrame(appendGoAway(nil, 1, ErrCodeNo, []byte("bye")))
	tc.wantEvent(event{kind: "goaway", last: 1, code: ErrCodeNo})
	tc.wantEvent(event{kind: "reset", id: 3, code: ErrCodeRefusedStream, by: ByPeer})
	tc.wantEvent(event{kind: "reset", id: 5, code: ErrCodeRefusedStream, by: ByPeer})
	tc.wantIdle()
	if _, err := tc.c.OpenStream(reqFields(), true); err != ErrGoAway {
		t.Fatalf("OpenStream after GOAWAY: %v", err)
	}
	if tc.c.Drained() {
		t.Fatal("drained with stream 1 open")
	}
	tc.writeHeaders(1, true, hf(":status", "200"))
	tc.wantEvent(event{kind: "headers", id: 1, es: true})
	if !tc.c.Drained() {
		t.Fatal("not drained after the last stream")
	}
	if st := tc.c.Stats(); st.GoAwayReceived.Of(ErrCodeNo) != 1 {
		t.Fatalf("stats %+v", st.GoAwayReceived)
	}
}

// TestClientRequestResponse drives the client role: request with a body,
// 1xx, response, trailers.
func TestClientRequestResponse(t *testing.T) {
	tc := newTestConn(t, Client, Config{})
	id, err := tc.c.OpenStream(postFields(hf("content-length", "4")), false)
	if err != nil || id != 1 {
		t.Fatalf("OpenStream %d %v", id, err)
	}
	tc.wantHeaders(1, false)
	if n, err := tc.c.WriteData(1, []byte("ping"), true); n != 4 || err != nil {
		t.Fatalf("WriteData %d %v", n, err)
	}
	tc.wantData(1, true, "ping")
	tc.writeHeaders(1, false, hf(":status", "100"))
	e := tc.wantEvent(event{kind: "headers", id: 1})
	if e.hdr.Status != 100 {
		t.Fatalf("status %d", e.hdr.Status)
	}
	tc.writeHeaders(1, false, hf(":status", "200"), hf("content-length", "4"))
	e = tc.wantEvent(event{kind: "headers", id: 1})
	if e.hdr.Status != 200 || e.hdr.ContentLength != 4 {
		t.Fatalf("headers %+v", e.hdr)
	}
	tc.writeData(1, false, "pong")
	tc.wantEvent(event{kind: "data", id: 1, data: "pong"})
	tc.writeHeaders(1, true, hf("grpc-status", "0"))
	tc.wantEvent(event{kind: "trailers", id: 1})
	if tc.c.ActiveStreams() != 0 {
		t.Fatal("stream still active")
	}
	id, _ = tc.c.OpenStream(reqFields(), true)
	if id != 3 {
		t.Fatalf("second stream id %d", id)
	}
}

func TestClientHeadResponseContentLength(t *testing.T) {
	tc := newTestConn(t, Client, Config{})
	fields := reqFields()
	fields[0].Value = "HEAD"
	tc.c.OpenStream(fields, true)
	tc.wantHeaders(1, true)
	// A HEAD response announces a length it does not carry.
	tc.writeHeaders(1, true, hf(":status", "200"), hf("content-length", "1000"))
	tc.wantEvent(event{kind: "headers", id: 1, es: true})
	tc.wantIdle()
}

func TestClientStreamLimit(t *testing.T) {
	tc := newRawTestConn(t, Client, Config{})
	tc.drain()
	tc.out = nil
	tc.writeFrame(appendSettings(nil, setting{settingMaxConcurrentStreams, 2}))
	tc.events = nil
	for range 2 {
		if _, err := tc.c.OpenStream(reqFields(), true); err != nil {
			t.Fatal(err)
		}
	}
	if tc.c.CanOpenStream() {
		t.Fatal("CanOpenStream at the limit")
	}
	if _, err := tc.c.OpenStream(reqFields(), true); err != ErrStreamLimit {
		t.Fatalf("got %v", err)
	}
	tc.writeFrame(appendRSTStream(nil, 1, ErrCodeRefusedStream))
	if !tc.c.CanOpenStream() {
		t.Fatal("no room after a reset")
	}
}

func TestInvalidResponses(t *testing.T) {
	tests := []struct {
		name   string
		es     bool
		fields []hpack.HeaderField
	}{
		{"no status", true, []hpack.HeaderField{hf("content-type", "x")}},
		{"status two digits", true, []hpack.HeaderField{hf(":status", "20")}},
		{"status 101", false, []hpack.HeaderField{hf(":status", "101")}},
		{"1xx with END_STREAM", true, []hpack.HeaderField{hf(":status", "103")}},
		{"request pseudo", true, []hpack.HeaderField{hf(":status", "200"), hf(":path", "/")}},
		{"duplicate status", true, []hpack.HeaderField{hf(":status", "200"), hf(":status", "204")}},
		{"connection header", true, []hpack.HeaderField{hf(":status", "200"), hf("connection", "close")}},
		{"content-length with END_STREAM", true, []hpack.HeaderField{hf(":status", "200"), hf("content-length", "3")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := newTestConn(t, Client, Config{})
			tc.c.OpenStream(reqFields(), true)
			tc.wantHeaders(1, true)
			tc.writeHeaders(1, tt.es, tt.fields...)
			tc.wantRST(1, ErrCodeProtocol)
			tc.wantEvent(event{kind: "reset", id: 1, code: ErrCodeProtocol, by: ByCodec})
			tc.wantIdle()
		})
	}
}

// TestRFC7541RequestExamples feeds the request examples of RFC 7541
// Appendix C.3 (without Huffman) and C.4 (with Huffman) as three requests
// on one connection each: the dynamic table carries over between blocks.
func TestRFC7541RequestExamples(t *testing.T) {
	examples := map[string][]string{
		"C.3": {
			"828684410f7777772e6578616d706c652e636f6d",
			"828684be58086e6f2d6361636865",
			"828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
		},
		"C.4": {
			"828684418cf1e3c2e5f23a6ba0ab90f4ff",
			"828684be5886a8eb10649cbf",
			"828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
		},
	}
	want := [][]hpack.HeaderField{
		{hf(":method", "GET"), hf(":scheme", "http"), hf(":path", "/"), hf(":authority", "www.example.com")},
		{hf(":method", "GET"), hf(":scheme", "http"), hf(":path", "/"), hf(":authority", "www.example.com"), hf("cache-control", "no-cache")},
		{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "/index.html"), hf(":authority", "www.example.com"), hf("custom-key", "custom-value")},
	}
	for name, blocks := range examples {
		t.Run(name, func(t *testing.T) {
			tc := newTestConn(t, Server, Config{})
			for i, h := range blocks {
				b, _ := hex.DecodeString(h)
				id := uint32(2*i + 1)
				tc.writeFrame(appendHeaders(nil, id, true, true, b))
				tc.wantEvent(event{kind: "headers", id: id, es: true, fields: want[i]})
			}
			tc.wantIdle()
		})
	}
}

// TestRFC7541ResponseExamples feeds RFC 7541 C.5 (responses without
// Huffman, 256-octet table) to a client conn.
func TestRFC7541ResponseExamples(t *testing.T) {
	blocks := []string{
		"4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
		"4803333037c1c0bf",
		"88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31",
	}
	statuses := []int{302, 307, 200}
	// The example's encoder used a 256-octet table: its first block assumes
	// that size without signalling it, so announce it the way a real
	// encoder following our settings would.
	tc := newTestConn(t, Client, Config{})
	for i, h := range blocks {
		id, err := tc.c.OpenStream(reqFields(), true)
		if err != nil {
			t.Fatal(err)
		}
		tc.wantHeaders(id, true)
		b, _ := hex.DecodeString(h)
		if i == 0 {
			b = append([]byte{0x3f, 0xe1, 0x01}, b...) // dynamic table size update to 256
		}
		tc.writeFrame(appendHeaders(nil, id, true, true, b))
		e := tc.wantEvent(event{kind: "headers", id: id, es: true})
		if e.hdr.Status != statuses[i] {
			t.Fatalf("block %d: status %d", i, e.hdr.Status)
		}
		if i == 2 && !strings.Contains(e.fields[len(e.fields)-1].Value, "max-age=3600") {
			t.Fatalf("set-cookie %v", e.fields)
		}
	}
}

func TestHPACKErrorIsCompressionError(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	// Index 70 does not exist in a fresh table.
	err := tc.writeFrameErr(appendHeaders(nil, 1, true, true, []byte{0x80 | 70}))
	tc.wantConnError(err, ErrCodeCompression)
	tc.wantGoAway(1, ErrCodeCompression)
}

func TestResetStreamAPI(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.openRequest(1, false)
	if err := tc.c.ResetStream(1, ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	tc.wantRST(1, ErrCodeCancel)
	if err := tc.c.ResetStream(1, ErrCodeCancel); err != nil {
		t.Fatal("second reset", err)
	}
	tc.wantIdle()
	if _, err := tc.c.WriteData(1, []byte("x"), false); err != ErrStreamNotWritable {
		t.Fatalf("write after reset: %v", err)
	}
	st := tc.c.Stats()
	if st.ResetsSent.Of(ErrCodeCancel) != 1 {
		t.Fatalf("stats %+v", st.ResetsSent)
	}
}

func TestWriteAPIErrors(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.openRequest(1, true)
	if _, err := tc.c.WriteData(1, []byte("x"), false); err != ErrHeadersNotSent {
		t.Fatalf("data before headers: %v", err)
	}
	if err := tc.c.WriteTrailers(1, nil); err != ErrHeadersNotSent {
		t.Fatalf("trailers before headers: %v", err)
	}
	if err := tc.c.WriteHeaders(1, []hpack.HeaderField{hf(":status", "200"), hf("Content-Type", "x")}, false); err == nil {
		t.Fatal("uppercase name accepted")
	}
	if err := tc.c.WriteHeaders(1, []hpack.HeaderField{hf(":status", "200"), hf("transfer-encoding", "chunked")}, false); err == nil {
		t.Fatal("transfer-encoding accepted")
	}
	if err := tc.c.WriteHeaders(1, []hpack.HeaderField{hf(":status", "103")}, false); err != nil {
		t.Fatal(err)
	}
	if err := tc.c.WriteHeaders(1, []hpack.HeaderField{hf(":status", "200")}, false); err != nil {
		t.Fatal(err)
	}
	if err := tc.c.WriteHeaders(1, []hpack.HeaderField{hf(":status", "200")}, false); err != ErrHeadersSent {
		t.Fatalf("second final headers: %v", err)
	}
	if _, err := tc.c.OpenStream(reqFields(), true); err != ErrRole {
		t.Fatalf("OpenStream on server: %v", err)
	}
	if err := tc.c.WriteHeaders(3, []hpack.HeaderField{hf(":status", "200")}, false); err != ErrStreamNotWritable {
		t.Fatalf("unknown stream: %v", err)
	}
}

func TestLargeHeaderBlockIsFragmented(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.openRequest(1, true)
	big := []hpack.HeaderField{hf(":status", "200"), hf("x-big", bigString(40000))}
	if err := tc.c.WriteHeaders(1, big, true); err != nil {
		t.Fatal(err)
	}
	// The peer's frame size is 16384: HEADERS + 2 CONTINUATIONs.
	got := tc.wantHeaders(1, true)
	if len(got) != 2 || got[1].Value != bigString(40000) {
		t.Fatal("block did not round-trip")
	}
}

func TestClientInitialStreamLimit(t *testing.T) {
	// Before the server's SETTINGS, assume 100 rather than "unlimited".
	tc := newRawTestConn(t, Client, Config{})
	for i := range initialPeerStreamLimit {
		if _, err := tc.c.OpenStream(reqFields(), true); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	if _, err := tc.c.OpenStream(reqFields(), true); err != ErrStreamLimit {
		t.Fatalf("got %v, want ErrStreamLimit", err)
	}
	tc.writeFrame(appendSettings(nil, setting{settingMaxConcurrentStreams, 1000}))
	if !tc.c.CanOpenStream() {
		t.Fatal("limit not lifted by SETTINGS")
	}
}

// Output hands out the queued bytes without a copy; DiscardOutput drops
// them, as AppendOutput does after copying.
func TestOutputDiscard(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	if err := tc.c.Ping(tc.now, [8]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	want := appendPing(nil, false, [8]byte{1, 2, 3})
	if got := tc.c.Output(); !bytes.Equal(got, want) || tc.c.OutputLen() != len(want) {
		t.Fatalf("Output() = %x, want %x", got, want)
	}
	tc.c.DiscardOutput()
	if tc.c.OutputLen() != 0 || len(tc.c.AppendOutput(nil)) != 0 {
		t.Fatal("output left after DiscardOutput")
	}
}
