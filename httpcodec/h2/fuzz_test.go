package h2

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
)

// reencode writes f back with our encoders, keeping only defined flags.
func reencode(f *frame) []byte {
	es, eh, padded := f.Flags.Has(flagEndStream), f.Flags.Has(flagEndHeaders), f.Flags.Has(flagPadded)
	switch f.Type {
	case frameData:
		if padded {
			return appendDataPadded(nil, f.StreamID, es, f.Payload, f.PadLength)
		}
		return appendData(nil, f.StreamID, es, f.Payload)
	case frameHeaders:
		return appendHeadersFrame(nil, headersParams{
			StreamID: f.StreamID, Fragment: f.Payload, EndStream: es, EndHeaders: eh,
			Padded: padded, PadLength: f.PadLength, HasPriority: f.Flags.Has(flagPriority), Priority: f.Priority,
		})
	case framePriority:
		return appendPriority(nil, f.StreamID, f.Priority)
	case frameRSTStream:
		return appendRSTStream(nil, f.StreamID, f.Code)
	case frameSettings:
		if f.IsAck() {
			return appendSettingsAck(nil)
		}
		var ss []setting
		for i := range f.NumSettings() {
			ss = append(ss, f.setting(i))
		}
		return appendSettings(nil, ss...)
	case framePushPromise:
		return appendPushPromise(nil, pushPromiseParams{StreamID: f.StreamID, PromisedID: f.PromisedID, Fragment: f.Payload, EndHeaders: eh, Padded: padded, PadLength: f.PadLength})
	case framePing:
		return appendPing(nil, f.IsAck(), f.PingData)
	case frameGoAway:
		return appendGoAway(nil, f.LastStreamID, f.Code, f.Payload)
	case frameWindowUpdate:
		return appendWindowUpdate(nil, f.StreamID, f.Increment)
	case frameContinuation:
		return appendContinuation(nil, f.StreamID, eh, f.Payload)
	}
	return appendFrame(nil, f.Type, f.Flags, f.StreamID, f.Payload)
}

// sameFrame compares the meaning of two frames.
func sameFrame(a, b *frame) bool {
	return a.Type == b.Type && a.StreamID == b.StreamID && a.EndStream() == b.EndStream() &&
		a.EndHeaders() == b.EndHeaders() && a.IsAck() == b.IsAck() && bytes.Equal(a.Payload, b.Payload) &&
		a.PadLength == b.PadLength && a.Priority == b.Priority && a.Code == b.Code &&
		a.LastStreamID == b.LastStreamID && a.PromisedID == b.PromisedID &&
		a.Increment == b.Increment && a.PingData == b.PingData && a.FlowLen() == b.FlowLen()
}

func copyFrame(f *frame) *frame {
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
			return appendDataPadded(nil, id, sel&2 != 0, payload, pad)
		}
		return appendData(nil, id, sel&2 != 0, payload)
	case 1:
		return appendHeadersFrame(nil, headersParams{StreamID: id, Fragment: payload, EndStream: sel&1 != 0, EndHeaders: sel&2 != 0,
			Padded: sel&4 != 0, PadLength: pad, HasPriority: sel&8 != 0, Priority: priority{StreamDep: id + 2, Exclusive: sel&16 != 0, Weight: pad}})
	case 2:
		return appendPriority(nil, id, priority{StreamDep: id + 2, Exclusive: sel&1 != 0, Weight: pad})
	case 3:
		return appendRSTStream(nil, id, ErrCode(pad))
	case 4:
		var ss []setting
		for i := 0; i+6 <= len(payload) && i < 60; i += 6 {
			s := setting{ID: settingID(binary.BigEndian.Uint16(payload[i:])), Val: binary.BigEndian.Uint32(payload[i+2:])}
			if s.Valid() == nil {
				ss = append(ss, s)
			}
		}
		return appendSettings(nil, ss...)
	case 5:
		return appendPushPromise(nil, pushPromiseParams{StreamID: id, PromisedID: id + 1, Fragment: payload, EndHeaders: sel&1 != 0, Padded: sel&2 != 0, PadLength: pad})
	case 6:
		return appendPing(nil, sel&1 != 0, ping)
	case 7:
		return appendGoAway(nil, id, ErrCode(pad), payload)
	case 8:
		return appendWindowUpdate(nil, id*uint32(sel&1), uint32(pad)+1)
	case 9:
		return appendContinuation(nil, id, sel&1 != 0, payload)
	}
	return appendFrame(nil, frameType(10+sel%200), frameFlags(pad), id, payload)
}

func FuzzFramer(f *testing.F) {
	for _, seed := range [][]byte{
		appendData(nil, 1, true, []byte("hello")),
		appendDataPadded(nil, 3, false, []byte("x"), 4),
		appendHeaders(nil, 1, true, true, typicalRequestBlock()),
		appendHeadersFrame(nil, headersParams{StreamID: 5, Fragment: []byte{0x82}, EndHeaders: true, Padded: true, PadLength: 2, HasPriority: true, Priority: priority{StreamDep: 3, Weight: 7}}),
		appendPriority(nil, 1, priority{StreamDep: 3, Weight: 1}),
		appendRSTStream(nil, 1, ErrCodeCancel),
		appendSettings(nil, setting{settingMaxConcurrentStreams, 100}, setting{settingInitialWindowSize, 1 << 20}),
		appendSettingsAck(nil),
		appendPushPromise(nil, pushPromiseParams{StreamID: 1, PromisedID: 2, Fragment: []byte{0x82}, EndHeaders: true}),
		appendPing(nil, false, [8]byte{1, 2, 3}),
		appendGoAway(nil, 7, ErrCodeEnhanceYourCalm, []byte("calm")),
		appendWindowUpdate(nil, 0, 1000),
		appendContinuation(nil, 1, true, []byte{0x84}),
		appendFrame(nil, 0xfe, 0xff, 9, []byte("ext")),
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
		var fr, fr2 framer
		fr.MaxReadFrameSize = MaxFrameSizeLimit
		rest := b
		for len(rest) > 0 {
			fm, n, err := fr.ReadFrame(rest)
			if err == errNeedMore {
				if n != 0 {
					t.Fatal("errNeedMore with n != 0")
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
		if n != len(g) || int(fm.Length) != len(g)-frameHeaderLen {
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
	conv = appendHeaders(conv, 1, true, true, req)
	conv = appendHeaders(conv, 3, false, true, post)
	conv = appendData(conv, 3, true, []byte("hello"))
	conv = appendHeaders(conv, 5, false, false, post[:3])
	conv = appendContinuation(conv, 5, true, post[3:])
	conv = appendRSTStream(conv, 5, ErrCodeCancel)
	conv = appendPing(conv, false, [8]byte{7})
	conv = appendWindowUpdate(conv, 0, 100)
	conv = appendSettings(conv, setting{settingInitialWindowSize, 10})
	conv = appendPriority(conv, 7, priority{StreamDep: 1, Weight: 3})
	conv = appendGoAway(conv, 0, ErrCodeNo, nil)
	f.Add(byte(0), conv)
	f.Add(byte(17), conv)
	f.Add(byte(1), appendHeaders(nil, 1, true, true, enc(hf(":status", "200"))))
	f.Add(byte(0), appendDataPadded(nil, 1, false, []byte("x"), 9))
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
		c.Feed(now, appendSettings(nil))
		c.Feed(now, appendSettingsAck(nil))
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
			if len(in) > frameHeaderLen+int(c.cfg.MaxReadFrameSize) {
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
			var fr framer
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
