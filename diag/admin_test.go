package diag

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"
)

// fakeSource stands in for the engine: fixed traces, a chosen error.
type fakeSource struct {
	traces []Trace
	err    error
}

func (f *fakeSource) Snapshot(ctx context.Context) (Snapshot, error) {
	s := Snapshot{Conns: []ConnInfo{{ID: "c1", State: DataTransfer.String()}}}
	for i := range f.traces {
		s.Recent = append(s.Recent, f.traces[i].Info())
	}
	return s, f.err
}

func (f *fakeSource) RecentCloses(ctx context.Context, keep func(*Trace) bool) ([]TraceInfo, error) {
	var out []TraceInfo
	for i := range f.traces {
		if keep == nil || keep(&f.traces[i]) {
			out = append(out, f.traces[i].Info())
		}
	}
	return out, f.err
}

func adminGet(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// The admin server on its own, against a fake Source: /debug/shutdowns
// filters by outcome and side and refuses unknown values with 400;
// /debug/connections carries the drain status and says when a loop did
// not answer.
func TestAdminOnASource(t *testing.T) {
	src := &fakeSource{traces: []Trace{
		{ID: 1, Side: Downstream, Outcome: Clean},
		{ID: 2, Side: Upstream, Outcome: Clean},
		{ID: 3, Side: Downstream, Outcome: LingerTimeout},
	}}
	for i := range src.traces {
		src.traces[i].Entered[Created] = 1
		src.traces[i].Entered[SocketClosed] = 2
	}
	a, err := NewAdmin("127.0.0.1:0", src, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go a.Serve()
	t.Cleanup(func() { a.Close(context.Background()) })
	base := "http://" + a.Addr()

	ids := func(q string) []string {
		resp, b := adminGet(t, base+"/debug/shutdowns"+q)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", q, resp.StatusCode, b)
		}
		var out struct{ Closes []TraceInfo }
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var s []string
		for _, c := range out.Closes {
			s = append(s, c.ID)
		}
		return s
	}
	for q, want := range map[string]string{
		"":                               "[c1 c2 c3]",
		"?outcome=clean":                 "[c1 c2]",
		"?outcome=clean&side=downstream": "[c1]",
		"?outcome=linger_timeout,clean&side=upstream": "[c2]",
		"?side=downstream":                            "[c1 c3]",
	} {
		if got := ids(q); fmt.Sprint(got) != want {
			t.Errorf("%q: %v, want %s", q, got, want)
		}
	}
	for _, q := range []string{"?outcome=nonsense", "?side=sideways"} {
		if resp, _ := adminGet(t, base+"/debug/shutdowns"+q); resp.StatusCode != 400 {
			t.Errorf("%s: %d, want 400", q, resp.StatusCode)
		}
	}

	a.SetDrainStatus(func() any { return map[string]string{"phase": "Draining"} })
	src.err = errors.New("loop 1 did not answer")
	resp, b := adminGet(t, base+"/debug/connections")
	var snap struct {
		Connections []ConnInfo
		Drain       map[string]string
	}
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Connections) != 1 || snap.Drain["phase"] != "Draining" {
		t.Errorf("/debug/connections: %s", b)
	}
	if resp.Header.Get("X-Sluice-Partial") == "" {
		t.Error("a loop that did not answer is not reported")
	}
}
