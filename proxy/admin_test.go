package proxy

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
)

func TestAdminEndpoints(t *testing.T) {
	up := tcpTestBackend(t, func(c *net.TCPConn) { io.Copy(io.Discard, c) })
	addr, e := tcpTestRelay(t, up, 0)
	a, err := diag.NewAdmin("127.0.0.1:0", e, slog.New(slog.DiscardHandler), e.Metrics())
	if err != nil {
		t.Fatal(err)
	}
	go a.Serve()
	t.Cleanup(func() { a.Close(t.Context()) })
	c := tcpTestDial(t, addr)
	c.Write([]byte("x"))
	base := "http://" + a.Addr()
	get := func(path string) (int, string) {
		cl := http.Client{Timeout: 5 * time.Second}
		resp, err := cl.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	if code, _ := get("/readyz"); code != 503 {
		t.Fatalf("/readyz before SetReady: %d", code)
	}
	a.SetReady(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz %d", code)
	}
	// Wait until the relay is established, then look at it.
	var snap diag.Snapshot
	var live string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_, body := get("/debug/connections")
		live = body
		if err := json.Unmarshal([]byte(body), &snap); err != nil {
			t.Fatalf("bad JSON: %v\n%s", err, body)
		}
		if len(snap.Conns) == 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(snap.Conns) != 2 {
		t.Fatalf("want the client and the upstream connection, got %+v", snap.Conns)
	}
	sides := map[string]bool{}
	for _, ci := range snap.Conns {
		sides[ci.Side] = true
		if ci.ID == "" || ci.State != "DataTransfer" || ci.Local == "" || ci.Remote == "" {
			t.Fatalf("incomplete conn info %+v", ci)
		}
	}
	if !sides["downstream"] || !sides["upstream"] {
		t.Fatalf("sides %v", sides)
	}
	_, m := get("/metrics")
	for _, want := range []string{
		`sluice_connections_active{state="DataTransfer"} 1`,
		`sluice_connections_accepted_total 1`,
		`sluice_connection_closes_total{outcome="clean"}`,
		`sluice_output_buffered_bytes`,
		`sluice_upstream_connections_active{state="DataTransfer"} 1`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get("/debug/pprof/"); code != 200 {
		t.Fatalf("/debug/pprof/ %d", code)
	}

	// One unit for every time in /debug/connections: seconds, as floats.
	c.Close()
	var raw map[string]any
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_, body := get("/debug/connections")
		raw = nil
		if err := json.Unmarshal([]byte(body), &raw); err != nil {
			t.Fatalf("bad JSON: %v\n%s", err, body)
		}
		if rc, _ := raw["recent_closes"].([]any); len(rc) > 0 {
			break
		}
	}
	keys := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				keys[k] = true
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(raw)
	var liveRaw any
	json.Unmarshal([]byte(live), &liveRaw)
	walk(liveRaw)
	for _, want := range []string{"age_seconds", "in_state_seconds", "duration_seconds", "states_seconds"} {
		if !keys[want] {
			t.Errorf("/debug/connections has no %q key", want)
		}
	}
	for k := range keys {
		if strings.HasSuffix(k, "_ms") || strings.HasSuffix(k, "_us") || strings.HasSuffix(k, "_ns") {
			t.Errorf("/debug/connections key %q is not in seconds", k)
		}
	}
	rc := raw["recent_closes"].([]any)[0].(map[string]any)
	d, _ := rc["duration_seconds"].(float64)
	if d <= 0 || d > 30 {
		t.Errorf("duration_seconds %v: not a connection's life in seconds", rc["duration_seconds"])
	}
	states, _ := rc["states_seconds"].(map[string]any)
	for st, v := range states {
		if v, _ := v.(float64); v > d {
			t.Errorf("states_seconds[%s] %v after the end %v", st, v, d)
		}
	}
}
