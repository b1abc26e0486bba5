package h2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// rawFrame builds a frame from explicit header fields and payload, for
// frames our encoders would never produce.
func rawFrame(length int, t frameType, flags frameFlags, id uint32, payload ...byte) []byte {
	if length < 0 {
		length = len(payload)
	}
	b := []byte{byte(length >> 16), byte(length >> 8), byte(length), byte(t), byte(flags)}
	b = binary.BigEndian.AppendUint32(b, id)
	return append(b, payload...)
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// TestFrameMUSTs checks every per-frame rule of RFC 9113 §4 and §6 the
// framer enforces, with the error class and code the RFC requires.
func TestFrameMUSTs(t *testing.T) {
	type want struct {
		conn, stream bool
		code         ErrCode
	}
	connE := func(c ErrCode) want { return want{conn: true, code: c} }
	streamE := func(c ErrCode) want { return want{stream: true, code: c} }
	ok := want{}
	tests := []struct {
		name string
		b    []byte
		want want
	}{
		// §4.2
		{"frame above max size", rawFrame(DefaultMaxFrameSize+1, frameData, 0, 1), connE(ErrCodeFrameSize)},
		// §6.1 DATA
		{"DATA stream 0", rawFrame(-1, frameData, 0, 0, 'a'), connE(ErrCodeProtocol)},
		{"DATA padded empty", rawFrame(-1, frameData, flagPadded, 1), connE(ErrCodeFrameSize)},
		{"DATA pad = length", rawFrame(-1, frameData, flagPadded, 1, 2, 0), connE(ErrCodeProtocol)},
		{"DATA all padding", rawFrame(-1, frameData, flagPadded, 1, 1, 0), ok},
		{"DATA pad > length", rawFrame(-1, frameData, flagPadded, 1, 5, 'a'), connE(ErrCodeProtocol)},
		{"DATA pad fits", rawFrame(-1, frameData, flagPadded, 1, 1, 'a', 0), ok},
		{"DATA reserved bit ignored", rawFrame(-1, frameData, 0, 1|1<<31, 'a'), ok},
		// §6.2 HEADERS
		{"HEADERS stream 0", rawFrame(-1, frameHeaders, flagEndHeaders, 0, 0x82), connE(ErrCodeProtocol)},
		{"HEADERS priority short", rawFrame(-1, frameHeaders, flagPriority, 1, 0, 0, 0), connE(ErrCodeFrameSize)},
		{"HEADERS padded short", rawFrame(-1, frameHeaders, flagPadded, 1), connE(ErrCodeFrameSize)},
		{"HEADERS padding exceeds", rawFrame(-1, frameHeaders, flagPadded, 1, 4, 0x82), connE(ErrCodeProtocol)},
		{"HEADERS padded+priority exceeds", rawFrame(-1, frameHeaders, flagPadded|flagPriority, 1, 1, 0, 0, 0, 3, 16), connE(ErrCodeProtocol)},
		{"HEADERS self dependency", rawFrame(-1, frameHeaders, flagPriority|flagEndHeaders, 3, 0, 0, 0, 3, 16, 0x82), streamE(ErrCodeProtocol)},
		// §6.3 PRIORITY
		{"PRIORITY stream 0", rawFrame(-1, framePriority, 0, 0, 0, 0, 0, 1, 16), connE(ErrCodeProtocol)},
		{"PRIORITY length 4", rawFrame(-1, framePriority, 0, 1, 0, 0, 0, 3), streamE(ErrCodeFrameSize)},
		{"PRIORITY self dependency", rawFrame(-1, framePriority, 0, 1, 0, 0, 0, 1, 16), streamE(ErrCodeProtocol)},
		// §6.4 RST_STREAM
		{"RST_STREAM stream 0", rawFrame(-1, frameRSTStream, 0, 0, u32(8)...), connE(ErrCodeProtocol)},
		{"RST_STREAM length 3", rawFrame(-1, frameRSTStream, 0, 1, 0, 0, 8), connE(ErrCodeFrameSize)},
		// §6.5 SETTINGS
		{"SETTINGS on stream", rawFrame(-1, frameSettings, 0, 1), connE(ErrCodeProtocol)},
		{"SETTINGS ACK with payload", rawFrame(-1, frameSettings, flagAck, 0, 0, 3, 0, 0, 0, 1), connE(ErrCodeFrameSize)},
		{"SETTINGS length 5", rawFrame(-1, frameSettings, 0, 0, 0, 3, 0, 0, 0), connE(ErrCodeFrameSize)},
		{"SETTINGS ENABLE_PUSH 2", appendSettings(nil, setting{settingEnablePush, 2}), connE(ErrCodeProtocol)},
		{"SETTINGS INITIAL_WINDOW_SIZE 2^31", appendSettings(nil, setting{settingInitialWindowSize, 1 << 31}), connE(ErrCodeFlowControl)},
		{"SETTINGS MAX_FRAME_SIZE small", appendSettings(nil, setting{settingMaxFrameSize, 16383}), connE(ErrCodeProtocol)},
		{"SETTINGS MAX_FRAME_SIZE large", appendSettings(nil, setting{settingMaxFrameSize, 1 << 24}), connE(ErrCodeProtocol)},
		{"SETTINGS ENABLE_CONNECT_PROTOCOL 2", appendSettings(nil, setting{settingEnableConnectProtocol, 2}), connE(ErrCodeProtocol)},
		{"SETTINGS unknown id ignored", appendSettings(nil, setting{0xff, 7}), ok},
		// §6.6 PUSH_PROMISE
		{"PUSH_PROMISE stream 0", rawFrame(-1, framePushPromise, flagEndHeaders, 0, u32(2)...), connE(ErrCodeProtocol)},
		{"PUSH_PROMISE short", rawFrame(-1, framePushPromise, flagEndHeaders, 1, 0, 0, 2), connE(ErrCodeFrameSize)},
		// §6.7 PING
		{"PING on stream", rawFrame(-1, framePing, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8), connE(ErrCodeProtocol)},
		{"PING length 7", rawFrame(-1, framePing, 0, 0, 1, 2, 3, 4, 5, 6, 7), connE(ErrCodeFrameSize)},
		// §6.8 GOAWAY
		{"GOAWAY on stream", rawFrame(-1, frameGoAway, 0, 1, cat(u32(0), u32(0))...), connE(ErrCodeProtocol)},
		{"GOAWAY short", rawFrame(-1, frameGoAway, 0, 0, u32(0)...), connE(ErrCodeFrameSize)},
		// §6.9 WINDOW_UPDATE
		{"WINDOW_UPDATE length 3", rawFrame(-1, frameWindowUpdate, 0, 0, 0, 0, 1), connE(ErrCodeFrameSize)},
		{"WINDOW_UPDATE 0 on connection", rawFrame(-1, frameWindowUpdate, 0, 0, u32(0)...), connE(ErrCodeProtocol)},
		{"WINDOW_UPDATE 0 on stream", rawFrame(-1, frameWindowUpdate, 0, 1, u32(0)...), streamE(ErrCodeProtocol)},
		{"WINDOW_UPDATE reserved bit ignored", rawFrame(-1, frameWindowUpdate, 0, 1, u32(1<<31|5)...), ok},
		// §6.10 CONTINUATION
		{"CONTINUATION stream 0", rawFrame(-1, frameContinuation, flagEndHeaders, 0, 0x82), connE(ErrCodeProtocol)},
		// §4.1 / §5.5: unknown types and flags
		{"unknown type", rawFrame(-1, 0xfa, 0xff, 0, 1, 2, 3), ok},
		{"unknown flags on PING", rawFrame(-1, framePing, 0xfe, 0, 1, 2, 3, 4, 5, 6, 7, 8), ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fr framer
			f, n, err := fr.ReadFrame(tt.b)
			var ce *ConnError
			var se *StreamError
			switch {
			case tt.want.conn:
				if !errors.As(err, &ce) || ce.Code != tt.want.code {
					t.Fatalf("got %v, want connection error %v", err, tt.want.code)
				}
			case tt.want.stream:
				if !errors.As(err, &se) || se.Code != tt.want.code {
					t.Fatalf("got %v, want stream error %v", err, tt.want.code)
				}
				if f == nil || n != len(tt.b) {
					t.Fatalf("stream error must come with the frame and its length, got %v, %d", f, n)
				}
			default:
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if n != len(tt.b) {
					t.Fatalf("consumed %d of %d", n, len(tt.b))
				}
			}
		})
	}
}

func TestFrameNeedMore(t *testing.T) {
	var fr framer
	full := appendData(nil, 1, true, []byte("hello"))
	for i := range len(full) {
		if _, n, err := fr.ReadFrame(full[:i]); err != errNeedMore || n != 0 {
			t.Fatalf("prefix %d: got n=%d err=%v, want errNeedMore", i, n, err)
		}
	}
	f, n, err := fr.ReadFrame(append(full, 0xde, 0xad))
	if err != nil || n != len(full) || string(f.Payload) != "hello" || !f.EndStream() {
		t.Fatalf("got %+v n=%d err=%v", f, n, err)
	}
}

// TestFrameRoundTrip encodes each frame type with every option and parses
// it back.
func TestFrameRoundTrip(t *testing.T) {
	prio := priority{StreamDep: 7, Exclusive: true, Weight: 200}
	tests := []struct {
		name  string
		b     []byte
		check func(t *testing.T, f *frame)
	}{
		{"DATA", appendData(nil, 5, true, []byte("abc")), func(t *testing.T, f *frame) {
			want(t, f.Type == frameData && f.StreamID == 5 && f.EndStream() && string(f.Payload) == "abc" && f.FlowLen() == 3)
		}},
		{"DATA padded", appendDataPadded(nil, 5, false, []byte("abc"), 10), func(t *testing.T, f *frame) {
			want(t, string(f.Payload) == "abc" && f.PadLength == 10 && !f.EndStream() && f.FlowLen() == 14)
		}},
		{"DATA padded 0", appendDataPadded(nil, 5, false, nil, 0), func(t *testing.T, f *frame) {
			want(t, len(f.Payload) == 0 && f.Flags.Has(flagPadded) && f.FlowLen() == 1)
		}},
		{"HEADERS", appendHeaders(nil, 3, true, true, []byte{0x82, 0x86}), func(t *testing.T, f *frame) {
			want(t, f.Type == frameHeaders && f.EndStream() && f.EndHeaders() && bytes.Equal(f.Payload, []byte{0x82, 0x86}))
		}},
		{"HEADERS full", appendHeadersFrame(nil, headersParams{StreamID: 3, Fragment: []byte{0x82}, EndHeaders: true, Padded: true, PadLength: 3, HasPriority: true, Priority: prio}), func(t *testing.T, f *frame) {
			want(t, f.Priority == prio && f.PadLength == 3 && bytes.Equal(f.Payload, []byte{0x82}) && !f.EndStream())
		}},
		{"PRIORITY", appendPriority(nil, 9, prio), func(t *testing.T, f *frame) {
			want(t, f.Type == framePriority && f.StreamID == 9 && f.Priority == prio)
		}},
		{"RST_STREAM", appendRSTStream(nil, 7, ErrCodeCancel), func(t *testing.T, f *frame) {
			want(t, f.Type == frameRSTStream && f.StreamID == 7 && f.Code == ErrCodeCancel)
		}},
		{"SETTINGS", appendSettings(nil, setting{settingMaxConcurrentStreams, 10}, setting{settingInitialWindowSize, 1 << 20}), func(t *testing.T, f *frame) {
			want(t, f.NumSettings() == 2 && f.setting(0) == setting{settingMaxConcurrentStreams, 10} && f.setting(1) == setting{settingInitialWindowSize, 1 << 20})
		}},
		{"SETTINGS ACK", appendSettingsAck(nil), func(t *testing.T, f *frame) {
			want(t, f.IsAck() && f.NumSettings() == 0)
		}},
		{"PUSH_PROMISE", appendPushPromise(nil, pushPromiseParams{StreamID: 1, PromisedID: 2, Fragment: []byte{0x82}, EndHeaders: true, Padded: true, PadLength: 2}), func(t *testing.T, f *frame) {
			want(t, f.PromisedID == 2 && bytes.Equal(f.Payload, []byte{0x82}) && f.EndHeaders() && f.PadLength == 2)
		}},
		{"PING", appendPing(nil, true, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}), func(t *testing.T, f *frame) {
			want(t, f.IsAck() && f.PingData == [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
		}},
		{"GOAWAY", appendGoAway(nil, 41, ErrCodeEnhanceYourCalm, []byte("calm")), func(t *testing.T, f *frame) {
			want(t, f.LastStreamID == 41 && f.Code == ErrCodeEnhanceYourCalm && string(f.Payload) == "calm")
		}},
		{"WINDOW_UPDATE", appendWindowUpdate(nil, 0, MaxWindowSize), func(t *testing.T, f *frame) {
			want(t, f.StreamID == 0 && f.Increment == MaxWindowSize)
		}},
		{"CONTINUATION", appendContinuation(nil, 3, true, []byte{1, 2}), func(t *testing.T, f *frame) {
			want(t, f.Type == frameContinuation && f.EndHeaders() && bytes.Equal(f.Payload, []byte{1, 2}))
		}},
		{"unknown", appendFrame(nil, 0x42, 0x3, 11, []byte("ext")), func(t *testing.T, f *frame) {
			want(t, f.Type == 0x42 && f.Flags == 0x3 && f.StreamID == 11 && string(f.Payload) == "ext")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fr framer
			f, n, err := fr.ReadFrame(tt.b)
			if err != nil || n != len(tt.b) {
				t.Fatalf("ReadFrame: n=%d err=%v", n, err)
			}
			if int(f.Length) != len(tt.b)-frameHeaderLen {
				t.Fatalf("length field %d, frame is %d", f.Length, len(tt.b)-frameHeaderLen)
			}
			tt.check(t, f)
		})
	}
}

func want(t *testing.T, ok bool) {
	t.Helper()
	if !ok {
		t.Fatal("frame fields differ")
	}
}

func TestAppendToExisting(t *testing.T) {
	// Appending after existing bytes must patch the right length.
	b := appendPing(nil, false, [8]byte{})
	b = appendData(b, 1, false, []byte("xyz"))
	var fr framer
	_, n, _ := fr.ReadFrame(b)
	f, _, err := fr.ReadFrame(b[n:])
	if err != nil || string(f.Payload) != "xyz" {
		t.Fatalf("got %v %v", f, err)
	}
}

func TestStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{ErrCodeEnhanceYourCalm.String(), "ENHANCE_YOUR_CALM"},
		{ErrCodeHTTP11Required.String(), "HTTP_1_1_REQUIRED"},
		{ErrCode(0x42).String(), "UNKNOWN_ERROR_0x42"},
		{frameContinuation.String(), "CONTINUATION"},
		{frameType(0x10).String(), "UNKNOWN_0x10"},
		{settingMaxHeaderListSize.String(), "SETTINGS_MAX_HEADER_LIST_SIZE"},
		{settingID(0x7).String(), "SETTINGS_UNKNOWN_0x7"},
		{stateHalfClosedRemote.String(), "half-closed (remote)"},
		{(&ConnError{Code: ErrCodeProtocol, Reason: "x", By: ByPeer}).Error(), "h2: connection error PROTOCOL_ERROR (peer): x"},
		{(&StreamError{StreamID: 3, Code: ErrCodeCancel, By: ByCaller}).Error(), "h2: stream 3 error CANCEL (caller)"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestFrameAllocs(t *testing.T) {
	data1k := bytes.Repeat([]byte{'d'}, 1024)
	block := typicalRequestBlock()
	dataFrame := appendData(nil, 1, false, data1k)
	headersFrame := appendHeaders(nil, 1, true, true, block)
	var fr framer
	dst := make([]byte, 0, 4096)
	for _, tt := range []struct {
		name string
		fn   func()
	}{
		{"parse DATA", func() { fr.ReadFrame(dataFrame) }},
		{"parse HEADERS", func() { fr.ReadFrame(headersFrame) }},
		{"encode DATA", func() { dst = appendData(dst[:0], 1, false, data1k) }},
		{"encode HEADERS", func() { dst = appendHeaders(dst[:0], 1, true, true, block) }},
		{"encode SETTINGS", func() {
			dst = appendSettings(dst[:0], setting{settingMaxConcurrentStreams, 100}, setting{settingInitialWindowSize, 1 << 20})
		}},
		{"encode WINDOW_UPDATE", func() { dst = appendWindowUpdate(dst[:0], 1, 1000) }},
	} {
		if n := testing.AllocsPerRun(1000, tt.fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tt.name, n)
		}
	}
}
