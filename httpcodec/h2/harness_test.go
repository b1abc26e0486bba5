package h2

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
)

// A testConn drives one Conn from the peer's side, so tests read like a
// conversation: the peer writes frames, the test wants frames and events
// back, and wantIdle checks nothing else happened.

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type event struct {
	kind   string // headers, data, trailers, reset, window, goaway, pingack, settings
	id     uint32
	fields []hpack.HeaderField
	hdr    Headers
	data   string
	es     bool
	code   ErrCode
	by     Initiator
	last   uint32
	ping   [8]byte
	rtt    time.Duration
}

func (e event) String() string {
	switch e.kind {
	case "headers":
		return fmt.Sprintf("headers(%d, %v, es=%v)", e.id, e.fields, e.es)
	case "data":
		return fmt.Sprintf("data(%d, %q, es=%v)", e.id, e.data, e.es)
	case "trailers":
		return fmt.Sprintf("trailers(%d, %v)", e.id, e.fields)
	case "reset":
		return fmt.Sprintf("reset(%d, %v, by %v)", e.id, e.code, e.by)
	case "window":
		return fmt.Sprintf("window(%d)", e.id)
	case "goaway":
		return fmt.Sprintf("goaway(%d, %v, %q)", e.last, e.code, e.data)
	case "pingack":
		return fmt.Sprintf("pingack(%x, %v)", e.ping, e.rtt)
	}
	return e.kind
}

type testConn struct {
	t   *testing.T
	c   *Conn
	now time.Time

	// The peer's half of the protocol.
	enc    *hpack.Encoder
	encBuf bytes.Buffer
	dec    *hpack.Decoder
	fr     framer
	out    []byte // our output not yet examined
	in     []byte // peer bytes not yet consumed by Feed

	events      []event
	autoConsume bool // report DATA consumed as soon as it is delivered
	quiet       bool // count events without recording them (allocation tests)
	seen        map[string]int

	// Hooks run inside the callbacks, for tests that answer in place.
	onHeaders func(id uint32, h *Headers)
	onData    func(id uint32, data []byte, es bool)
	onWindow  func(id uint32)
}

// record appends e unless the conn is quiet; it always counts it.
func (tc *testConn) record(e event) {
	tc.seen[e.kind]++
	if !tc.quiet {
		tc.events = append(tc.events, e)
	}
}

func (tc *testConn) OnHeaders(id uint32, h *Headers) {
	if tc.quiet {
		tc.seen["headers"]++
		if tc.onHeaders != nil {
			tc.onHeaders(id, h)
		}
		return
	}
	e := event{kind: "headers", id: id, fields: append([]hpack.HeaderField(nil), h.Fields...), es: h.EndStream, hdr: *h}
	e.hdr.Fields = e.fields
	tc.record(e)
	if tc.onHeaders != nil {
		tc.onHeaders(id, h)
	}
}

func (tc *testConn) OnData(id uint32, data []byte, es bool) {
	tc.record(event{kind: "data", id: id, data: string(data), es: es})
	if tc.onData != nil {
		tc.onData(id, data, es)
	}
	if tc.autoConsume {
		tc.c.Consumed(id, len(data))
	}
}

func (tc *testConn) OnTrailers(id uint32, fields []hpack.HeaderField) {
	tc.record(event{kind: "trailers", id: id, fields: append([]hpack.HeaderField(nil), fields...)})
}

func (tc *testConn) OnReset(id uint32, err *StreamError) {
	if err.StreamID != id {
		tc.t.Errorf("OnReset(%d) with StreamError for %d", id, err.StreamID)
	}
	tc.record(event{kind: "reset", id: id, code: err.Code, by: err.By})
}

func (tc *testConn) OnWindowOpen(id uint32) {
	tc.record(event{kind: "window", id: id})
	if tc.onWindow != nil {
		tc.onWindow(id)
	}
}

func (tc *testConn) OnGoAway(last uint32, code ErrCode, debug []byte) {
	tc.record(event{kind: "goaway", last: last, code: code, data: string(debug)})
}

func (tc *testConn) OnPingAck(data [8]byte, rtt time.Duration) {
	tc.record(event{kind: "pingack", ping: data, rtt: rtt})
}

func (tc *testConn) OnSettings(Settings) {
	tc.record(event{kind: "settings"})
}

type connOpt func(*testConn)

func withAutoConsume(tc *testConn) { tc.autoConsume = true }

// newTestConn returns a Conn in role, with the preface and SETTINGS
// exchange done unless the test asks for a raw conn.
func newTestConn(t *testing.T, role Role, cfg Config, opts ...connOpt) *testConn {
	t.Helper()
	tc := newRawTestConn(t, role, cfg, opts...)
	tc.handshake()
	return tc
}

func newRawTestConn(t *testing.T, role Role, cfg Config, opts ...connOpt) *testConn {
	t.Helper()
	tc := &testConn{t: t, now: t0, seen: map[string]int{}}
	tc.enc = hpack.NewEncoder(&tc.encBuf)
	tc.dec = hpack.NewDecoder(4096, nil)
	tc.fr.MaxReadFrameSize = MaxFrameSizeLimit
	for _, o := range opts {
		o(tc)
	}
	tc.c = NewConn(role, cfg, tc, tc.now)
	return tc
}

// handshake completes the connection preface both ways.
func (tc *testConn) handshake() {
	tc.t.Helper()
	if tc.c.role == Server {
		tc.writeRaw([]byte(ClientPreface))
	} else {
		tc.wantRaw([]byte(ClientPreface))
	}
	tc.writeFrame(appendSettings(nil))
	tc.wantFrameType(frameSettings) // ours
	if tc.c.cfg.ConnWindow > DefaultWindowSize {
		tc.wantFrameType(frameWindowUpdate)
	}
	tc.wantSettingsAck()
	tc.writeFrame(appendSettingsAck(nil))
	tc.wantEvent(event{kind: "settings"})
	tc.wantIdle()
}

// writeRaw feeds peer bytes and checks everything complete was consumed.
func (tc *testConn) writeRaw(b []byte) error {
	tc.t.Helper()
	tc.in = append(tc.in, b...)
	n, err := tc.c.Feed(tc.now, tc.in)
	tc.in = tc.in[n:]
	tc.drain()
	return err
}

// writeFrame feeds one or more encoded frames and expects no connection error.
func (tc *testConn) writeFrame(b []byte) {
	tc.t.Helper()
	if err := tc.writeRaw(b); err != nil {
		tc.t.Fatalf("Feed: unexpected error %v", err)
	}
}

// writeFrameErr feeds frames and returns Feed's error.
func (tc *testConn) writeFrameErr(b []byte) error {
	tc.t.Helper()
	return tc.writeRaw(b)
}

// block encodes fields with the peer's encoder.
func (tc *testConn) block(fields ...hpack.HeaderField) []byte {
	tc.encBuf.Reset()
	for _, f := range fields {
		tc.enc.WriteField(f)
	}
	return append([]byte(nil), tc.encBuf.Bytes()...)
}

func (tc *testConn) writeHeaders(id uint32, es bool, fields ...hpack.HeaderField) {
	tc.t.Helper()
	tc.writeFrame(appendHeaders(nil, id, es, true, tc.block(fields...)))
}

func (tc *testConn) writeData(id uint32, es bool, data string) {
	tc.t.Helper()
	tc.writeFrame(appendData(nil, id, es, []byte(data)))
}

func (tc *testConn) drain() {
	tc.out = tc.c.AppendOutput(tc.out)
}

// readFrame takes the next frame of our output, copied.
func (tc *testConn) readFrame() (*frame, bool) {
	tc.t.Helper()
	tc.drain()
	if len(tc.out) == 0 {
		return nil, false
	}
	f, n, err := tc.fr.ReadFrame(tc.out)
	if err != nil {
		tc.t.Fatalf("our output does not parse: %v (% x)", err, tc.out[:min(len(tc.out), 32)])
	}
	cp := *f
	cp.Payload = append([]byte(nil), f.Payload...)
	tc.out = tc.out[n:]
	return &cp, true
}

func (tc *testConn) wantRaw(b []byte) {
	tc.t.Helper()
	tc.drain()
	if !bytes.HasPrefix(tc.out, b) {
		tc.t.Fatalf("want output %q, got %q", b, tc.out[:min(len(tc.out), len(b))])
	}
	tc.out = tc.out[len(b):]
}

func (tc *testConn) wantFrameType(ft frameType) *frame {
	tc.t.Helper()
	f, ok := tc.readFrame()
	if !ok {
		tc.t.Fatalf("want %v frame, got nothing", ft)
	}
	if f.Type != ft {
		tc.t.Fatalf("want %v frame, got %v %s", ft, f.Type, describe(f))
	}
	return f
}

func describe(f *frame) string {
	switch f.Type {
	case frameRSTStream:
		return fmt.Sprintf("stream=%d code=%v", f.StreamID, f.Code)
	case frameGoAway:
		return fmt.Sprintf("last=%d code=%v debug=%q", f.LastStreamID, f.Code, f.Payload)
	case frameWindowUpdate:
		return fmt.Sprintf("stream=%d incr=%d", f.StreamID, f.Increment)
	}
	return fmt.Sprintf("stream=%d flags=%#x len=%d", f.StreamID, f.Flags, f.Length)
}

func (tc *testConn) wantSettingsAck() {
	tc.t.Helper()
	f := tc.wantFrameType(frameSettings)
	if !f.IsAck() {
		tc.t.Fatalf("want SETTINGS ACK, got SETTINGS")
	}
}

func (tc *testConn) wantRST(id uint32, code ErrCode) {
	tc.t.Helper()
	f := tc.wantFrameType(frameRSTStream)
	if f.StreamID != id || f.Code != code {
		tc.t.Fatalf("want RST_STREAM(%d, %v), got RST_STREAM(%d, %v)", id, code, f.StreamID, f.Code)
	}
}

func (tc *testConn) wantGoAway(last uint32, code ErrCode) *frame {
	tc.t.Helper()
	f := tc.wantFrameType(frameGoAway)
	if f.LastStreamID != last || f.Code != code {
		tc.t.Fatalf("want GOAWAY(%d, %v), got GOAWAY(%d, %v, %q)", last, code, f.LastStreamID, f.Code, f.Payload)
	}
	return f
}

func (tc *testConn) wantWindowUpdate(id, incr uint32) {
	tc.t.Helper()
	f := tc.wantFrameType(frameWindowUpdate)
	if f.StreamID != id || f.Increment != incr {
		tc.t.Fatalf("want WINDOW_UPDATE(%d, %d), got WINDOW_UPDATE(%d, %d)", id, incr, f.StreamID, f.Increment)
	}
}

// wantHeaders reads a header block (HEADERS + CONTINUATIONs) and decodes it.
func (tc *testConn) wantHeaders(id uint32, es bool) []hpack.HeaderField {
	tc.t.Helper()
	f := tc.wantFrameType(frameHeaders)
	if f.StreamID != id || f.EndStream() != es {
		tc.t.Fatalf("want HEADERS(%d, es=%v), got HEADERS(%d, es=%v)", id, es, f.StreamID, f.EndStream())
	}
	block := f.Payload
	for end := f.EndHeaders(); !end; {
		cf := tc.wantFrameType(frameContinuation)
		if cf.StreamID != id {
			tc.t.Fatalf("CONTINUATION on stream %d, want %d", cf.StreamID, id)
		}
		block = append(block, cf.Payload...)
		end = cf.EndHeaders()
	}
	fields, err := tc.dec.DecodeFull(block)
	if err != nil {
		tc.t.Fatalf("our header block does not decode: %v", err)
	}
	return fields
}

func (tc *testConn) wantData(id uint32, es bool, data string) {
	tc.t.Helper()
	f := tc.wantFrameType(frameData)
	if f.StreamID != id || f.EndStream() != es || string(f.Payload) != data {
		tc.t.Fatalf("want DATA(%d, es=%v, %q), got DATA(%d, es=%v, %q)", id, es, data, f.StreamID, f.EndStream(), f.Payload)
	}
}

// wantIdle checks no frame is queued and no event is unread.
func (tc *testConn) wantIdle() {
	tc.t.Helper()
	if f, ok := tc.readFrame(); ok {
		tc.t.Fatalf("want idle, got frame %v %s", f.Type, describe(f))
	}
	if len(tc.events) > 0 {
		tc.t.Fatalf("want idle, got events %v", tc.events)
	}
}

// wantEvent checks the next event. Fields are compared when set in want.
func (tc *testConn) wantEvent(want event) event {
	tc.t.Helper()
	if len(tc.events) == 0 {
		tc.t.Fatalf("want event %v, got none", want)
	}
	got := tc.events[0]
	tc.events = tc.events[1:]
	ok := got.kind == want.kind && got.id == want.id
	switch want.kind {
	case "data":
		ok = ok && got.data == want.data && got.es == want.es
	case "headers":
		ok = ok && got.es == want.es && (want.fields == nil || fieldsEqual(got.fields, want.fields))
	case "trailers":
		ok = ok && (want.fields == nil || fieldsEqual(got.fields, want.fields))
	case "reset":
		ok = ok && got.code == want.code && got.by == want.by
	case "goaway":
		ok = ok && got.code == want.code && got.last == want.last
	}
	if !ok {
		tc.t.Fatalf("want event %v, got %v", want, got)
	}
	return got
}

func fieldsEqual(a, b []hpack.HeaderField) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Value != b[i].Value {
			return false
		}
	}
	return true
}

func (tc *testConn) wantConnError(err error, code ErrCode) {
	tc.t.Helper()
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Code != code {
		tc.t.Fatalf("want connection error %v, got %v", code, err)
	}
}

// advance moves the clock and fires the timer if due.
func (tc *testConn) advance(d time.Duration) error {
	tc.now = tc.now.Add(d)
	var err error
	if dl := tc.c.NextDeadline(); !dl.IsZero() && !tc.now.Before(dl) {
		err = tc.c.OnTimer(tc.now)
	}
	tc.drain()
	return err
}

func hf(name, value string) hpack.HeaderField { return hpack.HeaderField{Name: name, Value: value} }

// reqFields is a typical GET.
func reqFields(extra ...hpack.HeaderField) []hpack.HeaderField {
	return append([]hpack.HeaderField{
		hf(":method", "GET"), hf(":scheme", "https"), hf(":authority", "example.com"), hf(":path", "/"),
	}, extra...)
}

func postFields(extra ...hpack.HeaderField) []hpack.HeaderField {
	return append([]hpack.HeaderField{
		hf(":method", "POST"), hf(":scheme", "https"), hf(":authority", "example.com"), hf(":path", "/upload"),
	}, extra...)
}

// openRequest sends a GET (or POST when es is false) and checks the event.
func (tc *testConn) openRequest(id uint32, es bool) {
	tc.t.Helper()
	fields := reqFields()
	if !es {
		fields = postFields()
	}
	tc.writeHeaders(id, es, fields...)
	tc.wantEvent(event{kind: "headers", id: id, es: es})
}

func bigString(n int) string { return strings.Repeat("x", n) }
