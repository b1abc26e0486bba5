package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h2"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// Process drain with 100 streams in flight on one HTTP/2 connection: the
// client sees GOAWAY(2^31-1) and a PING, a stream it opens before
// answering the PING is still served, then the final GOAWAY names the
// last stream; every stream completes, and the connection closes with
// the engine's graceful close (close_notify, FIN).
func TestH2GracefulGoAwayDrain(t *testing.T) {
	release := make(chan struct{})
	var released atomic.Bool
	open := func() {
		if !released.Swap(true) {
			close(release)
		}
	}
	var arrived atomic.Int64
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-release
		io.WriteString(w, "done "+r.URL.Path)
	}))
	t.Cleanup(open) // runs before the backend's Close waits for its handlers
	// Room for one stream above the 100 in flight: the one opened between
	// the two GOAWAYs; an upstream budget to match, so all are in flight.
	// The client's close is read from the engine's log: its 101 upstream
	// connections close after it and push its trace out of the loop's
	// ring of 64 recent closes (Snapshot), now and then.
	logs := &testutil.Buffer{}
	env := h2StartEngine(t, HTTPConfig{H2: h2.Config{MaxConcurrentStreams: 128}, ClientMaxUpstreams: 128},
		engine.Config{Logger: slog.New(slog.NewJSONHandler(logs, nil))}, be.addr())
	r := rawH2Dial(t, env.tlsAddr, true)
	const n = 100
	for i := 0; i < n; i++ {
		r.get(uint32(2*i+1), fmt.Sprintf("/s/%d", i))
	}
	hpEventually(t, "100 requests at the upstream", func() bool { return arrived.Load() == n })
	go env.e.Drain(context.Background())

	bodies := map[uint32]string{}
	ended := map[uint32]bool{}
	var goaways []*http2.GoAwayFrame
	late := uint32(2*n + 1)
	for len(ended) < n+1 {
		f, err := r.next()
		if err != nil {
			t.Fatalf("after %d GOAWAYs and %d complete streams: %v", len(goaways), len(ended), err)
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			goaways = append(goaways, f)
			if len(goaways) == 1 {
				// Phase one: the server still takes streams the client
				// sent before it saw the GOAWAY.
				r.get(late, "/late")
			}
			if len(goaways) == 2 {
				open()
			}
		case *http2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "200" {
				t.Fatalf("stream %d: status %s", f.StreamID, s)
			}
			if f.StreamEnded() {
				ended[f.StreamID] = true
			}
		case *http2.DataFrame:
			bodies[f.StreamID] += string(f.Data())
			if f.StreamEnded() {
				ended[f.StreamID] = true
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("stream %d reset: %v", f.StreamID, f.ErrCode)
		}
	}
	if len(goaways) != 2 {
		t.Fatalf("%d GOAWAY frames, want 2", len(goaways))
	}
	if g := goaways[0]; g.LastStreamID != 1<<31-1 || g.ErrCode != http2.ErrCodeNo {
		t.Errorf("first GOAWAY: last %d code %v, want 2^31-1 NO_ERROR", g.LastStreamID, g.ErrCode)
	}
	if g := goaways[1]; g.LastStreamID != late || g.ErrCode != http2.ErrCodeNo {
		t.Errorf("final GOAWAY: last %d code %v, want %d NO_ERROR", g.LastStreamID, g.ErrCode, late)
	}
	for i := 0; i < n; i++ {
		if b := bodies[uint32(2*i+1)]; b != fmt.Sprintf("done /s/%d", i) {
			t.Fatalf("stream %d body %q", 2*i+1, b)
		}
	}
	if bodies[late] != "done /late" {
		t.Fatalf("late stream body %q", bodies[late])
	}
	// Then the connection ends cleanly: EOF, not a reset.
	for {
		_, err := r.next()
		if err == nil {
			continue
		}
		if !errors.Is(err, io.EOF) {
			t.Fatalf("after the last stream: %v, want EOF", err)
		}
		break
	}
	r.c.Close() // the server lingers for our FIN
	select {
	case <-env.e.Idle():
	case <-time.After(10 * time.Second):
		t.Fatal("the engine did not become idle")
	}
	found := false
	for _, l := range logs.JSONLines() {
		if l["msg"] == "connection closed" && l["side"] == diag.Downstream.String() && l["listener"] == "tls" {
			found = true
			if cl, _ := l["close"].(string); l["outcome"] != "clean" || !strings.Contains(cl, "CloseNotifySent") {
				t.Errorf("client connection closed %v: %v", l["outcome"], l["close"])
			}
		}
	}
	if !found {
		t.Error("no close trace for the client connection")
	}
	if v := env.metric(`sluice_http2_goaways_total{direction="sent",code="NO_ERROR"}`); v != 2 {
		t.Errorf("goaways sent NO_ERROR = %v, want 2", v)
	}
}

// A connection with no stream for the idle timeout gets the same two
// GOAWAYs and closes with outcome idle_timeout.
func TestH2IdleTimeoutGoAway(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	env := h2Start(t, HTTPConfig{IdleTimeout: 200 * time.Millisecond}, be.addr())
	r := rawH2Dial(t, env.addr, false)
	r.get(1, "/")
	start := time.Now()
	var goaways []uint32
	for {
		f, err := r.next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("read: %v", err)
			}
			r.c.Close()
			break
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			goaways = append(goaways, g.LastStreamID)
		}
	}
	if len(goaways) != 2 || goaways[0] != 1<<31-1 || goaways[1] != 1 {
		t.Fatalf("GOAWAY last ids %v, want [2^31-1 1]", goaways)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 5*time.Second {
		t.Errorf("closed after %v, want about the idle timeout", d)
	}
	hpEventually(t, "the close trace", func() bool {
		snap, _ := env.e.Snapshot(context.Background())
		for _, tr := range snap.Recent {
			if tr.Side == diag.Downstream.String() {
				return tr.Outcome == "idle_timeout"
			}
		}
		return false
	})
}
