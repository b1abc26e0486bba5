package h2

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
)

// reencode writes f back with our encoders, keeping only defined flags.
func reencode(f *Frame) []byte {
	es, eh, padded := f.Flags.Has(FlagEndStream), f.Flags.Has(FlagEndHeaders), f.Flags.Has(FlagPadded)
	switch f.Type {
	case FrameData:
		if padded {
			return AppendDataPadded(nil, f.StreamID, es, f.Payload, f.PadLength)
		}
		return AppendData(nil, f.StreamID, es, f.Payload)
	case FrameHeaders:
		return AppendHeadersFrame(nil, HeadersParams{
			StreamID: f.StreamID, Fragment: f.Payload, EndStream: es, EndHeaders: eh,
			Padded: padded, PadLength: f.PadLength, HasPriority: f.Flags.Has(FlagPriority), Priority: f.Priority,
		})
	case FramePriority:
		return AppendPriority(nil, f.StreamID, f.Priority)
	case FrameRSTStream:
		return AppendRSTStream(nil, f.StreamID, f.Code)
	case FrameSettings:
		if f.IsAck() {
			return AppendSettingsAck(nil)
		}
		var ss []Setting
		for i := range f.NumSettings() {
			ss = append(ss, f.Setting(i))
		}
		return AppendSettings(nil, ss...)
	case FramePushPromise:
		return AppendPushPromise(nil, PushPromiseParams{StreamID: f.StreamID, PromisedID: f.PromisedID, Fragment: f.Payload, EndHeaders: eh, Padded: padded, PadLength: f.PadLength})
	case FramePing:
		return AppendPing(nil, f.IsAck(), f.PingData)
	case FrameGoAway:
		return AppendGoAway(nil, f.LastStreamID, f.Code, f.Payload)
	case FrameWindowUpdate:
		return AppendWindowUpdate(nil, f.StreamID, f.Increment)
	case FrameContinuation:
		return AppendContinuation(nil, f.StreamID, eh, f.Payload)
	}
	return AppendFrame(nil, f.Type, f.Flags, f.StreamID, f.Payload)
}

// sameFrame compares the meaning of two frames.
func sameFrame(a, b *Frame) bool {
	return a.Type == b.Type && a.StreamID == b.StreamID && a.EndStream() == b.EndStream() &&
		a.EndHeaders() == b.EndHeaders() && a.IsAck() == b.IsAck() && bytes.Equal(a.Payload, b.Payload) &&
		a.PadLength == b.PadLength && a.Priority == b.Priority && a.Code == b.Code &&
		a.LastStreamID == b.LastStreamID && a.PromisedID == b.PromisedID &&
		a.Increment == b.Increment && a.PingData == b.PingData && a.FlowLen() == b.FlowLen()
}

func copyFrame(f *Frame) *Frame {
	cp := *f
	cp.Payload = append([]byte(nil), f.Payload...)
	return &cp
}

// generate builds a valid frame from fuzz input with our encoders.
func generate(b []byte) []byte {
	if len(b) < 8 {
		return nil
	}
	typ, sel, pad := b[0]%11, b[1], b[2]
	id := binary.BigEndian.Uint32(b[3:7])&MaxStreamID | 1
	payload := b[7:]
	if len(payload) > 1000 {
		payload = payload[:1000]
	}
	var ping [8]byte
	copy(ping[:], payload)
	switch typ {
	case 0:
		if sel&1 == 1 {
			return AppendDataPadded(nil, id, sel&2 != 0, payload, pad)
		}
		return AppendData(nil, id, sel&2 != 0, payload)
	case 1:
		return AppendHeadersFrame(nil, HeadersParams{StreamID: id, Fragment: payload, EndStream: sel&1 != 0, EndHeaders: sel&2 != 0,
			Padded: sel&4 != 0, PadLength: pad, HasPriority: sel&8 != 0, Priority: Priority{StreamDep: id + 2, Exclusive: sel&16 != 0, Weight: pad}})
	case 2:
		return AppendPriority(nil, id, Priority{StreamDep: id + 2, Exclusive: sel&1 != 0, Weight: pad})
	case 3:
		return AppendRSTStream(nil, id, ErrCode(pad))
	case 4:
		var ss []Setting
		for i := 0; i+6 <= len(payload) && i < 60; i += 6 {
			s := Setting{ID: SettingID(binary.BigEndian.Uint16(payload[i:])), Val: binary.BigEndian.Uint32(payload[i+2:])}
			if s.Valid() == nil {
				ss = append(ss, s)
			}
		}
		return AppendSettings(nil, ss...)
	case 5:
		return AppendPushPromise(nil, PushPromiseParams{StreamID: id, PromisedID: id + 1, Fragment: payload, EndHeaders: sel&1 != 0, Padded: sel&2 != 0, PadLength: pad})
	case 6:
		return AppendPing(nil, sel&1 != 0, ping)
	case 7:
		return AppendGoAway(nil, id, ErrCode(pad), payload)
	case 8:
		return AppendWindowUpdate(nil, id*uint32(sel&1), uint32(pad)+1)
	case 9:
		return AppendContinuation(nil, id, sel&1 != 0, payload)
	}
	return AppendFrame(nil, FrameType(10+sel%200), Flags(pad), id, payload)
}

func FuzzFramer(f *testing.F) {
	for _, seed := range [][]byte{
		AppendData(nil, 1, true, []byte("hello")),
		AppendDataPadded(nil, 3, false, []byte("x"), 4),
		AppendHeaders(nil, 1, true, true, typicalRequestBlock()),
		AppendHeadersFrame(nil, HeadersParams{StreamID: 5, Fragment: []byte{0x82}, EndHeaders: true, Padded: true, PadLength: 2, HasPriority: true, Priority: Priority{StreamDep: 3, Weight: 7}}),
		AppendPriority(nil, 1, Priority{StreamDep: 3, Weight: 1}),
		AppendRSTStream(nil, 1, ErrCodeCancel),
		AppendSettings(nil, Setting{SettingMaxConcurrentStreams, 100}, Setting{SettingInitialWindowSize, 1 << 20}),
		AppendSettingsAck(nil),
		AppendPushPromise(nil, PushPromiseParams{StreamID: 1, PromisedID: 2, Fragment: []byte{0x82}, EndHeaders: true}),
		AppendPing(nil, false, [8]byte{1, 2, 3}),
		AppendGoAway(nil, 7, ErrCodeEnhanceYourCalm, []byte("calm")),
		AppendWindowUpdate(nil, 0, 1000),
		AppendContinuation(nil, 1, true, []byte{0x84}),
		AppendFrame(nil, 0xfe, 0xff, 9, []byte("ext")),
		{0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0x0a}, // generator input
	} {
		f.Add(seed)
	}
	f.Fuzz(checkFramer)
}

func checkFramer(t *testing.T, b []byte) {
	{
		// 1. Parse arbitrary bytes; every frame that parses must survive
		// re-encoding and parsing again.
		var fr, fr2 Framer
		fr.MaxReadFrameSize = MaxFrameSizeLimit
		rest := b
		for len(rest) > 0 {
			fm, n, err := fr.ReadFrame(rest)
			if err == ErrNeedMore {
				if n != 0 {
					t.Fatal("ErrNeedMore with n != 0")
				}
				break
			}
			if _, ok := err.(*ConnError); ok {
				break
			}
			if n <= 0 || n > len(rest) || fm == nil {
				t.Fatalf("n=%d len=%d frame=%v err=%v", n, len(rest), fm, err)
			}
			if err == nil {
				orig := copyFrame(fm)
				enc := reencode(orig)
				fr2.MaxReadFrameSize = MaxFrameSizeLimit
				back, m, err2 := fr2.ReadFrame(enc)
				if err2 != nil || m != len(enc) || !sameFrame(orig, back) {
					t.Fatalf("round trip of %v: %v\n% x\n% x", orig.Type, err2, rest[:n], enc)
				}
			}
			rest = rest[n:]
		}
		// 2. Frames generated by our encoders from the input parse back to
		// what was asked.
		g := generate(b)
		if g == nil {
			return
		}
		fr.MaxReadFrameSize = MaxFrameSizeLimit
		fm, n, err := fr.ReadFrame(g)
		if err != nil {
			// The generator keeps every field legal.
			t.Fatalf("generated frame rejected: %v\n% x", err, g)
		}
		if n != len(g) || int(fm.Length) != len(g)-FrameHeaderLen {
			t.Fatalf("length mismatch: n=%d len=%d field=%d", n, len(g), fm.Length)
		}
		if !bytes.Equal(reencode(copyFrame(fm)), g) {
			t.Fatalf("re-encoding differs\n% x\n% x", g, reencode(fm))
		}
	}
}

// fuzzHandler answers requests so the write paths run too, and consumes
// all data, like a well-behaved proxy.
type fuzzHandler struct {
	c *Conn
}

func (h *fuzzHandler) OnHeaders(id uint32, hd *Headers) {
	if h.c.role == Client {
		return
	}
	switch id % 8 {
	case 1:
		h.c.WriteHeaders(id, []hpack.HeaderField{{Name: ":status", Value: "200"}}, false)
		h.c.WriteData(id, []byte("response body"), false)
		h.c.WriteTrailers(id, []hpack.HeaderField{{Name: "x-t", Value: "1"}})
	case 3:
		h.c.ResetStream(id, ErrCodeCancel)
	case 5:
		h.c.WriteHeaders(id, []hpack.HeaderField{{Name: ":status", Value: "204"}}, true)
	}
}
func (h *fuzzHandler) OnData(id uint32, data []byte, es bool) {
	h.c.Consumed(id, len(data))
}
func (h *fuzzHandler) OnTrailers(uint32, []hpack.HeaderField) {}
func (h *fuzzHandler) OnReset(uint32, *StreamError)           {}
func (h *fuzzHandler) OnWindowOpen(id uint32) {
	h.c.WriteData(id, []byte("more"), true)
}
func (h *fuzzHandler) OnGoAway(uint32, ErrCode, []byte) {}
func (h *fuzzHandler) OnPingAck([8]byte, time.Duration) {}
func (h *fuzzHandler) OnSettings(Settings)              {}

func FuzzConnFeed(f *testing.F) {
	enc := func(fields ...hpack.HeaderField) []byte {
		var buf bytes.Buffer
		e := hpack.NewEncoder(&buf)
		for _, fl := range fields {
			e.WriteField(fl)
		}
		return buf.Bytes()
	}
	req := enc(reqFields()...)
	post := enc(postFields(hf("content-length", "5"))...)
	var conv []byte
	conv = AppendHeaders(conv, 1, true, true, req)
	conv = AppendHeaders(conv, 3, false, true, post)
	conv = AppendData(conv, 3, true, []byte("hello"))
	conv = AppendHeaders(conv, 5, false, false, post[:3])
	conv = AppendContinuation(conv, 5, true, post[3:])
	conv = AppendRSTStream(conv, 5, ErrCodeCancel)
	conv = AppendPing(conv, false, [8]byte{7})
	conv = AppendWindowUpdate(conv, 0, 100)
	conv = AppendSettings(conv, Setting{SettingInitialWindowSize, 10})
	conv = AppendPriority(conv, 7, Priority{StreamDep: 1, Weight: 3})
	conv = AppendGoAway(conv, 0, ErrCodeNo, nil)
	f.Add(byte(0), conv)
	f.Add(byte(17), conv)
	f.Add(byte(1), AppendHeaders(nil, 1, true, true, enc(hf(":status", "200"))))
	f.Add(byte(0), AppendDataPadded(nil, 1, false, []byte("x"), 9))
	f.Fuzz(func(t *testing.T, mode byte, b []byte) {
		role := Server
		if mode&1 == 1 {
			role = Client
		}
		cfg := Config{MaxConcurrentStreams: 8, MaxClosedStreams: 16, MaxHeaderListSize: 4096, InitialStreamWindow: 1 << 16}
		h := &fuzzHandler{}
		c := NewConn(role, cfg, h, t0)
		h.c = c
		now := t0
		if role == Server {
			c.Feed(now, []byte(ClientPreface))
		} else {
			c.OpenStream(reqFields(), false)
			c.OpenStream(reqFields(), true)
		}
		c.Feed(now, AppendSettings(nil))
		c.Feed(now, AppendSettingsAck(nil))
		c.AppendOutput(nil)
		// Deliver in chunks whose size depends on the mode byte, keeping
		// the unconsumed tail like an event loop does.
		chunk := int(mode>>1)%64 + 1
		var in, out []byte
		for off := 0; off < len(b) && c.Err() == nil; off += chunk {
			in = append(in, b[off:min(off+chunk, len(b))]...)
			n, _ := c.Feed(now, in)
			in = append(in[:0], in[n:]...)
			out = c.AppendOutput(out[:0])
			now = now.Add(time.Millisecond)
			c.OnTimer(now)
			if len(in) > FrameHeaderLen+int(c.cfg.MaxReadFrameSize) {
				t.Fatalf("Conn left %d bytes unconsumed", len(in))
			}
			if len(c.streams) > int(cfg.MaxConcurrentStreams)+2 || len(c.closed.ents) > cfg.MaxClosedStreams {
				t.Fatalf("streams %d closed %d", len(c.streams), len(c.closed.ents))
			}
			if c.recvHeld > int64(c.cfg.ConnWindow) || c.recvWin > MaxWindowSize || c.sendWin > MaxWindowSize {
				t.Fatalf("windows: held %d recv %d send %d", c.recvHeld, c.recvWin, c.sendWin)
			}
			if len(c.fields) > int(cfg.MaxHeaderListSize)/32 || len(out) > 1<<20 {
				t.Fatalf("fields %d output %d", len(c.fields), len(out))
			}
			// Everything we send must parse.
			var fr Framer
			fr.MaxReadFrameSize = MaxFrameSizeLimit
			for o := out; len(o) > 0; {
				if role == Client && bytes.HasPrefix(o, []byte(ClientPreface)) {
					o = o[len(ClientPreface):]
					continue
				}
				_, m, err := fr.ReadFrame(o)
				if err != nil {
					t.Fatalf("our output does not parse: %v", err)
				}
				o = o[m:]
			}
		}
	})
}
