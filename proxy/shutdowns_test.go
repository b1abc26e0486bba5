package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// The diagnostics of a close, as the operator reads them: /debug/shutdowns
// (who closed first, bytes at each step, filtered by outcome and side),
// the debug log lines of each step as JSON attributes, and the shutdown
// metrics. Two HTTP/1.1-over-TLS clients: one asks for Connection: close
// (sluice ends first), one sends close_notify after its response (the
// peer ends first).
func TestDebugShutdownsAndShutdownLog(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	logs := &testutil.Buffer{} // several loops write it
	lg := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env := h2StartEngine(t, HTTPConfig{}, engine.Config{Logger: lg}, be.addr())
	a, err := diag.NewAdmin("127.0.0.1:0", env.e, slog.New(slog.DiscardHandler), env.set)
	if err != nil {
		t.Fatal(err)
	}
	go a.Serve()
	t.Cleanup(func() { a.Close(t.Context()) })
	get := func(path string) (int, []byte) {
		cl := http.Client{Timeout: 5 * time.Second}
		resp, err := cl.Get("http://" + a.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	dial := func() *tls.Conn {
		c, err := tls.Dial("tcp", env.tlsAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	// A: Connection: close; sluice ends it after the response.
	ca := dial()
	io.WriteString(ca, "GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
	if b, err := io.ReadAll(ca); err != nil || !bytes.HasSuffix(b, []byte("hello")) {
		t.Fatalf("A: %q %v", b, err)
	}
	ca.Close() // the FIN sluice lingers for
	// B: keep-alive, then close_notify once the response is in.
	cb := dial()
	io.WriteString(cb, "GET /b HTTP/1.1\r\nHost: t\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(cb), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	cb.CloseWrite()
	io.ReadAll(cb)
	cb.Close()
	remA, remB := ca.LocalAddr().String(), cb.LocalAddr().String()

	type closes struct {
		Closes []diag.TraceInfo `json:"closes"`
	}
	var all closes
	hpEventually(t, "both client traces", func() bool {
		_, b := get("/debug/shutdowns?side=downstream")
		all = closes{}
		json.Unmarshal(b, &all)
		return len(all.Closes) == 2
	})
	by := map[string]diag.TraceInfo{}
	for _, tr := range all.Closes {
		by[tr.Remote] = tr
	}
	ta, tb := by[remA], by[remB]
	if ta.Outcome != "clean" || ta.ClosedFirst != "sluice" || ta.Shutdown == nil || !ta.Shutdown.FlushCompleted ||
		!ta.Shutdown.CloseNotifySent || ta.Shutdown.StateAtShutdown != "DataTransfer" {
		t.Errorf("A: %+v %+v", ta, ta.Shutdown)
	}
	if ta.Shutdown != nil && ta.Shutdown.BytesOutAt["SocketClosed"] != ta.BytesOut {
		t.Errorf("A: bytes out at each step %v, total %d", ta.Shutdown.BytesOutAt, ta.BytesOut)
	}
	if tb.Outcome != "peer_closed" || tb.ClosedFirst != "peer" || tb.PeerEnded != "close_notify" || tb.PeerEndedAt == nil {
		t.Errorf("B: %+v", tb)
	}
	// Filters.
	_, b := get("/debug/shutdowns?outcome=peer_closed&side=downstream")
	var only closes
	if err := json.Unmarshal(b, &only); err != nil || len(only.Closes) != 1 || only.Closes[0].Remote != remB {
		t.Fatalf("outcome filter: %s", b)
	}
	_, b = get("/debug/shutdowns?outcome=flush_timeout,linger_timeout")
	if err := json.Unmarshal(b, &only); err != nil || len(only.Closes) != 0 {
		t.Fatalf("outcome filter with nothing to show: %s", b)
	}
	if code, b := get("/debug/shutdowns?outcome=nope"); code != 400 || !strings.Contains(string(b), "nope") {
		t.Fatalf("unknown outcome: %d %s", code, b)
	}
	if code, _ := get("/debug/shutdowns?side=left"); code != 400 {
		t.Fatalf("unknown side: %d", code)
	}
	// The debug lines of A's close, one per step, as attributes.
	steps := map[string]map[string]any{}
	for _, m := range logs.JSONLines() {
		if m["msg"] == "shutdown" && m["conn"] == ta.ID {
			steps[m["step"].(string)] = m
		}
	}
	si, bf, cn, sc := steps["ShutdownInitiated"], steps["BufferFlushed"], steps["CloseNotifySent"], steps["SocketClosed"]
	if si == nil || si["state_at_shutdown"] != "DataTransfer" || si["pending"] == nil || si["cause"] != "clean" {
		t.Errorf("ShutdownInitiated line %v", si)
	}
	if bf == nil || bf["flush_completed"] != true {
		t.Errorf("BufferFlushed line %v", bf)
	}
	if cn == nil || cn["close_notify_sent"] != true {
		t.Errorf("CloseNotifySent line %v", cn)
	}
	if sc == nil || sc["outcome"] != "clean" || sc["closed_first"] != "sluice" || sc["shutdown"] == nil ||
		sc["flush_completed"] != true || sc["close_notify_sent"] != true {
		t.Errorf("SocketClosed line %v", sc)
	}
	for _, m := range []string{`sluice_connection_state_duration_seconds_count{state="ShutdownInitiated"}`,
		`sluice_connection_state_duration_seconds_count{state="BufferFlushed"}`,
		`sluice_shutdown_pending_bytes_count`} {
		if v := env.metric(m); v < 2 {
			t.Errorf("%s = %v, want 2 or more", m, v)
		}
	}
}
