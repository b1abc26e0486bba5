package main

import (
	"io"
	"math"
	"os/exec"
	"strings"
	"testing"
)

func TestSpreadMedianAndRange(t *testing.T) {
	s := spreadOf([]float64{3, 1, math.NaN(), 2, math.Inf(1), 10})
	if s.med != 2.5 || s.lo != 1 || s.hi != 10 || s.n != 4 {
		t.Fatalf("%+v", s)
	}
	if s := spreadOf([]float64{5, 1, 3}); s.med != 3 || s.fmt(1) != "3.0 (1.0–5.0)" {
		t.Fatalf("%+v %q", s, s.fmt(1))
	}
	if s := spreadOf(nil); !math.IsNaN(s.med) || s.fmt(0) != "—" {
		t.Fatalf("%+v", s)
	}
}

// Ratios are taken within a round, then summarised: the median of the
// per-round ratios, not the ratio of the medians.
func TestRatiosPerRoundAndGoals(t *testing.T) {
	h := &harness{s: &settings{targets: []string{"sluice", "haproxy", "nginx"}, scenarios: []string{"h2"}, rounds: 3},
		res: map[string]map[string][]sample{"h2-return": {
			"sluice":  {{rps: 100, cpuPerReq: 10}, {rps: 300, cpuPerReq: 10}, {rps: 130, cpuPerReq: 10}},
			"haproxy": {{rps: 100, cpuPerReq: 20}, {rps: 100, cpuPerReq: 20}, {rps: 100, cpuPerReq: 5}},
			"nginx":   {{skipped: true}, {rps: 50}, {rps: 50}},
		}}}
	v, r := h.stat("h2-return", "haproxy", mRPS)
	if v.med != 100 || r.med != 1.3 || r.lo != 1 || r.hi != 3 {
		t.Fatalf("value %+v ratio %+v", v, r)
	}
	_, c := h.stat("h2-return", "haproxy", mCPU)
	if c.med != 0.5 || c.hi != 2 {
		t.Fatalf("cpu ratio %+v", c)
	}
	if _, r := h.stat("h2-return", "nginx", mRPS); r.n != 2 || r.lo != 2.6 {
		t.Fatalf("a skipped round is left out: %+v", r)
	}
	g := h.goals()
	if !strings.Contains(g, "HTTP/2 req/s ≥ 1.2× HAProxy, nginx return 200 (1 KiB) | 1.300 | met") ||
		!strings.Contains(g, "HTTP/2 CPU/request ≤ 0.8× HAProxy, nginx return 200 (1 KiB) | 0.500 | met") {
		t.Fatalf("goals:\n%s", g)
	}
	h.res["h2-return"]["sluice"][1].rps = 105
	if g := h.goals(); !strings.Contains(g, "| 1.050 | **missed** by 12%") {
		t.Fatalf("a missed target shows its gap:\n%s", g)
	}
}

// A target's output is copied into its capped buffer by os/exec's own
// goroutine while the harness reads it (startProc's "did not listen"
// errors): run with -race. The buffer keeps the end and stays bounded.
func TestCappedOutputReadWhileWritten(t *testing.T) {
	seq, err := exec.LookPath("seq")
	if err != nil {
		t.Skip("seq (coreutils) not installed")
	}
	p, err := startProc(io.Discard, "seq", nil, seq, "1", "400000")
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	reads := 0
	for running := true; running; reads++ {
		select {
		case <-p.done:
			running = false
		default:
		}
		lastLine(p.out.Bytes())
	}
	b := p.out.Bytes()
	if got := lastLine(b); got != "400000" {
		t.Fatalf("last line %q, want 400000", got)
	}
	if len(b) > 1<<20+64<<10 {
		t.Fatalf("kept %d bytes: the cap did not hold", len(b))
	}
	t.Logf("%d reads while writing, %d bytes kept", reads, len(b))
}
