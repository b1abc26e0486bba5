package h2

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// The block cache never changes what the peer decodes. 3000 responses on
// one connection, drawn from a few field lists (one repeated, one whose
// date changes now and then, one with a never-indexed field, one too large
// to cache), while the peer now and then sets SETTINGS_HEADER_TABLE_SIZE
// (0 to 4096) so entries are evicted under the cache: every block decodes,
// with x/net's decoder, to the fields written, and the cache answered the
// repeats it could.
func TestBlockCacheDecodesSame(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.quiet = true
	rng := rand.New(rand.NewPCG(7, 11))
	date := "Thu, 26 Nov 2026 01:00:00 GMT"
	big := strings.Repeat("v", 5000)
	lists := []func() []hpack.HeaderField{
		func() []hpack.HeaderField {
			return []hpack.HeaderField{hf(":status", "200"), hf("server", "nginx/1.22.1"), hf("date", date),
				hf("content-type", "application/octet-stream"), hf("content-length", "1024"), hf("via", "2 sluice")}
		},
		func() []hpack.HeaderField {
			return []hpack.HeaderField{hf(":status", "404"), hf("content-type", "text/plain"), hf("content-length", "10")}
		},
		func() []hpack.HeaderField {
			return []hpack.HeaderField{hf(":status", "200"), {Name: "set-cookie", Value: "s=1", Sensitive: true}}
		},
		func() []hpack.HeaderField { return []hpack.HeaderField{hf(":status", "200"), hf("x-big", big)} },
	}
	sizes := []uint32{0, 64, 256, 4096}
	id := uint32(1)
	for i := 0; i < 3000; i++ {
		switch {
		case i%211 == 0:
			tc.writeFrame(appendSettings(nil, setting{ID: settingHeaderTableSize, Val: sizes[rng.IntN(len(sizes))]}))
			tc.wantSettingsAck()
		case i%53 == 0:
			date = "Thu, 26 Nov 2026 01:00:" + string(rune('0'+i%6)) + string(rune('0'+i%10)) + " GMT"
		}
		tc.writeHeaders(id, true, hf(":method", "GET"), hf(":scheme", "https"), hf(":authority", "a"), hf(":path", "/"))
		k := 0 // mostly the first list
		if rng.IntN(8) == 0 {
			k = rng.IntN(len(lists))
		}
		want := lists[k]()
		if err := tc.c.WriteHeaders(id, want, true); err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		tc.drain()
		got := tc.wantHeaders(id, true)
		if !fieldsEqual(got, want) {
			t.Fatalf("response %d decodes to %v, want %v", i, got, want)
		}
		id += 2
	}
	// Only a 4096-byte table holds the first list whole (a quarter of the
	// time, and the start), and a new date costs two misses: 635 here.
	if h := tc.c.blocks.hits; h < 400 {
		t.Errorf("cache hits %d of 3000 responses, want at least 400", h)
	}
}

// The cache is dropped when the table size changes: the next block starts
// with the size update the peer must see.
func TestBlockCacheTableSizeUpdate(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.quiet = true
	fields := []hpack.HeaderField{hf(":status", "200"), hf("server", "x")}
	for id := uint32(1); id <= 5; id += 2 {
		tc.writeHeaders(id, true, hf(":method", "GET"), hf(":scheme", "https"), hf(":authority", "a"), hf(":path", "/"))
		if err := tc.c.WriteHeaders(id, fields, true); err != nil {
			t.Fatal(err)
		}
		tc.drain()
		tc.wantHeaders(id, true)
	}
	if tc.c.blocks.hits == 0 {
		t.Fatal("the repeated block was not cached")
	}
	tc.writeFrame(appendSettings(nil, setting{ID: settingHeaderTableSize, Val: 0}))
	tc.wantSettingsAck()
	tc.writeHeaders(7, true, hf(":method", "GET"), hf(":scheme", "https"), hf(":authority", "a"), hf(":path", "/"))
	if err := tc.c.WriteHeaders(7, fields, true); err != nil {
		t.Fatal(err)
	}
	tc.drain()
	f := tc.wantFrameType(frameHeaders)
	if len(f.Payload) == 0 || f.Payload[0]&0xe0 != 0x20 {
		t.Fatalf("block after SETTINGS_HEADER_TABLE_SIZE=0 starts %x, want a dynamic table size update", f.Payload)
	}
	got, err := tc.dec.DecodeFull(f.Payload)
	if err != nil || !fieldsEqual(got, fields) {
		t.Fatalf("decoded %v, %v", got, err)
	}
}

// A cache hit skips re-validating a response head, but not the checks that
// depend on the call: a cached 103 may not end the stream, a cached list
// still counts against a SETTINGS_MAX_HEADER_LIST_SIZE lowered since, and
// a list cached as trailers was never checked as a response.
func TestBlockCacheKeepsChecks(t *testing.T) {
	tc := newTestConn(t, Server, Config{})
	tc.quiet = true
	open := func(id uint32) {
		tc.writeHeaders(id, true, hf(":method", "GET"), hf(":scheme", "https"), hf(":authority", "a"), hf(":path", "/"))
	}
	early := []hpack.HeaderField{hf(":status", "103"), hf("link", "</a.css>; rel=preload")}
	open(1)
	for i := 0; i < 3; i++ {
		if err := tc.c.WriteHeaders(1, early, false); err != nil {
			t.Fatalf("103 #%d: %v", i, err)
		}
	}
	hits := tc.c.blocks.hits
	if hits == 0 {
		t.Fatal("the repeated 103 was not cached")
	}
	var he *HeaderError
	if err := tc.c.WriteHeaders(1, early, true); !errors.As(err, &he) || he.Reason != reasonInfoEndStream {
		t.Fatalf("cached 103 with END_STREAM: %v, want %q", err, reasonInfoEndStream)
	}
	if tc.c.blocks.hits == hits {
		t.Fatal("the 103 with END_STREAM did not come from the cache: the test proves nothing")
	}

	final := []hpack.HeaderField{hf(":status", "200"), hf("server", "x"), hf("content-type", "text/plain")}
	for id := uint32(3); id <= 7; id += 2 {
		open(id)
		if err := tc.c.WriteHeaders(id, final, true); err != nil {
			t.Fatal(err)
		}
	}
	for _, more := tc.readFrame(); more; _, more = tc.readFrame() {
	}
	tc.writeFrame(appendSettings(nil, setting{ID: settingMaxHeaderListSize, Val: uint32(headerListSize(final) - 1)}))
	tc.wantSettingsAck()
	open(9)
	hits = tc.c.blocks.hits
	if err := tc.c.WriteHeaders(9, final, true); err != ErrHeaderListTooLarge {
		t.Fatalf("cached list over the peer's new limit: %v, want ErrHeaderListTooLarge", err)
	}
	if tc.c.blocks.hits == hits {
		t.Fatal("the list over the limit did not come from the cache: the test proves nothing")
	}

	trailers := []hpack.HeaderField{hf("grpc-status", "0")}
	for id := uint32(11); id <= 15; id += 2 {
		open(id)
		if err := tc.c.WriteHeaders(id, []hpack.HeaderField{hf(":status", "200")}, false); err != nil {
			t.Fatal(err)
		}
		if err := tc.c.WriteTrailers(id, trailers); err != nil {
			t.Fatal(err)
		}
	}
	open(17)
	hits = tc.c.blocks.hits
	if err := tc.c.WriteHeaders(17, trailers, false); !errors.As(err, &he) || he.Reason != reasonStatus {
		t.Fatalf("response head without :status, cached as trailers: %v, want %q", err, reasonStatus)
	}
	if tc.c.blocks.hits == hits {
		t.Fatal("the trailer list did not come from the cache: the test proves nothing")
	}
}

func TestOnlyIndexed(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want bool
	}{
		{nil, false},
		{[]byte{0x88}, true},                              // :status 200
		{[]byte{0x88, 0xbe, 0xbf}, true},                  // three indexed
		{[]byte{0xff, 0x49}, true},                        // index 200, two bytes
		{[]byte{0xff, 0x80, 0x01}, true},                  // index 255, three bytes
		{[]byte{0xff}, false},                             // index cut short
		{[]byte{0xff, 0x80}, false},                       // index cut short
		{[]byte{0x88, 0x40, 0x01, 'a', 0x01, 'b'}, false}, // a literal with incremental indexing
		{[]byte{0x20, 0x88}, false},                       // a table size update first
		{[]byte{0x0f, 0x2b, 0x01, 'x'}, false},            // a literal without indexing
		{[]byte{0x10, 0x01, 'a', 0x01, 'b'}, false},       // never indexed
	} {
		if got := onlyIndexed(c.b); got != c.want {
			t.Errorf("onlyIndexed(%x) = %v, want %v", c.b, got, c.want)
		}
	}
}
