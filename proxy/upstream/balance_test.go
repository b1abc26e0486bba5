package upstream

import (
	"fmt"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

func testUpstreams(n int) []*Upstream {
	us := make([]*Upstream, n)
	for i := range us {
		a := fmt.Sprintf("10.0.0.%d:80", i+1)
		us[i] = withMetrics(New(a, a, i, false, nil))
	}
	return us
}

// withMetrics gives u counters of its own (on a set nobody scrapes).
func withMetrics(u *Upstream) *Upstream {
	s := metrics.NewSet()
	u.M = Metrics{
		Ejections:  s.NewCounter("ejections"),
		ChecksOK:   s.NewCounter(`checks{result="ok"}`),
		ChecksFail: s.NewCounter(`checks{result="fail"}`),
	}
	return u
}

func TestRoundRobin(t *testing.T) {
	us := testUpstreams(3)
	rr := &RoundRobin{}
	for i := 0; i < 9; i++ {
		if got := rr.Select(us); got != us[i%3] {
			t.Fatalf("pick %d = %s, want %s", i, got.Addr(), us[i%3].Addr())
		}
	}
}

func TestLeastConn(t *testing.T) {
	us := testUpstreams(4)
	us[0].inflight.Store(3)
	us[1].inflight.Store(1)
	us[2].inflight.Store(2)
	us[3].inflight.Store(5)
	for i := 0; i < 50; i++ {
		if got := (LeastConn{}).Select(us); got != us[1] {
			t.Fatalf("picked %s with %d in flight", got.Addr(), got.InFlight())
		}
	}
	// All idle: the start rotates, so every upstream gets picked.
	for _, u := range us {
		u.inflight.Store(0)
	}
	seen := map[*Upstream]bool{}
	for i := 0; i < 200; i++ {
		seen[(LeastConn{}).Select(us)] = true
	}
	if len(seen) != 4 {
		t.Fatalf("ties went to %d of 4 upstreams", len(seen))
	}
}

func TestPowerOfTwo(t *testing.T) {
	us := testUpstreams(2)
	us[0].inflight.Store(10)
	for i := 0; i < 50; i++ {
		if got := (PowerOfTwo{}).Select(us); got != us[1] {
			t.Fatal("p2c over two picked the busier one")
		}
	}
	us = testUpstreams(5)
	us[4].inflight.Store(100) // never the lesser of any pair
	counts := map[*Upstream]int{}
	for i := 0; i < 2000; i++ {
		counts[(PowerOfTwo{}).Select(us)]++
	}
	if counts[us[4]] != 0 {
		t.Fatalf("the most loaded upstream was picked %d times", counts[us[4]])
	}
	for _, u := range us[:4] {
		if counts[u] == 0 {
			t.Fatalf("%s never picked: %v", u.Addr(), counts)
		}
	}
	if (PowerOfTwo{}).Select(us[:1]) != us[0] {
		t.Fatal("single candidate not picked")
	}
}

func TestNewSelector(t *testing.T) {
	for _, p := range []string{"", BalanceRoundRobin, BalanceLeastConn, BalanceP2C} {
		if _, err := NewSelector(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	if _, err := NewSelector("weighted"); err == nil {
		t.Error("unknown policy accepted")
	}
}

// recorder is a Selector that keeps what it was given.
type recorder struct {
	cands []*Upstream
	next  Selector
}

func (r *recorder) Select(c []*Upstream) *Upstream {
	r.cands = c
	return r.next.Select(c)
}

// The weighted list is built once, by NewSet: while every upstream is
// available and none is avoided, each pick hands the selector that list
// and builds nothing (the scratch slice stays untouched).
func TestSetPickUsesPrebuiltList(t *testing.T) {
	us := testUpstreams(3)
	rec := &recorder{next: &RoundRobin{}}
	s := NewSet(us, []int{3, 1, 2}, rec)
	var scratch []*Upstream
	now := int64(1e12)
	for range 10 {
		s.Pick(nil, now, &scratch)
		if len(rec.cands) != 6 || &rec.cands[0] != &s.all[0] {
			t.Fatalf("selector got a list of %d built for the pick, not the set's prebuilt one", len(rec.cands))
		}
	}
	if cap(scratch) != 0 {
		t.Fatalf("scratch grew to %d: the candidates were rebuilt", cap(scratch))
	}
	if n := testing.AllocsPerRun(100, func() { s.Pick(nil, now, &scratch) }); n != 0 {
		t.Fatalf("%v allocations per pick", n)
	}
}

// Weights, availability and the avoided upstream, with round robin.
func TestSetPick(t *testing.T) {
	us := testUpstreams(3)
	now := int64(1e12)
	var scratch []*Upstream
	count := func(s *Set, avoid *Upstream, n int) map[*Upstream]int {
		c := map[*Upstream]int{}
		for range n {
			c[s.Pick(avoid, now, &scratch)]++
		}
		return c
	}

	s := NewSet(us, []int{3, 1, 2}, &RoundRobin{})
	if c := count(s, nil, 60); c[us[0]] != 30 || c[us[1]] != 10 || c[us[2]] != 20 {
		t.Fatalf("weights 3:1:2 over 60 picks: %d %d %d", c[us[0]], c[us[1]], c[us[2]])
	}
	if c := count(NewSet(us, nil, &RoundRobin{}), nil, 30); c[us[0]] != 10 || c[us[1]] != 10 || c[us[2]] != 10 {
		t.Fatalf("no weights over 30 picks: %d %d %d", c[us[0]], c[us[1]], c[us[2]])
	}

	// The avoided one is skipped while another is available; the weights
	// still hold among the rest.
	if c := count(s, us[0], 30); c[us[0]] != 0 || c[us[1]] != 10 || c[us[2]] != 20 {
		t.Fatalf("avoiding the first, weights 1:2 over 30 picks: %d %d %d", c[us[0]], c[us[1]], c[us[2]])
	}

	// An ejected upstream is skipped, without avoid too.
	us[2].downUntil.Store(now + 1)
	if c := count(s, nil, 40); c[us[2]] != 0 || c[us[0]] != 30 || c[us[1]] != 10 {
		t.Fatalf("third ejected, weights 3:1 over 40 picks: %d %d %d", c[us[0]], c[us[1]], c[us[2]])
	}
	// Only the avoided one is left: it is taken.
	us[1].checkDown.Store(true)
	if c := count(s, us[0], 5); c[us[0]] != 5 {
		t.Fatalf("only the avoided upstream available: picked %v", c)
	}
	// Nothing is available: every upstream, once each.
	us[0].checkDown.Store(true)
	if c := count(s, nil, 30); c[us[0]] != 10 || c[us[1]] != 10 || c[us[2]] != 10 {
		t.Fatalf("none available, 30 picks: %d %d %d", c[us[0]], c[us[1]], c[us[2]])
	}
	for _, u := range scratch[:cap(scratch)] {
		if u != nil {
			t.Fatal("scratch keeps an upstream after a pick")
		}
	}
}

// BenchmarkPick: a weighted route of four upstreams (weights 5, 3, 1, 1),
// every upstream available (the common case), and one ejected.
func BenchmarkPick(b *testing.B) {
	for _, down := range []bool{false, true} {
		b.Run(fmt.Sprintf("down=%v", down), func(b *testing.B) {
			us := testUpstreams(4)
			now := int64(1e12)
			if down {
				us[1].downUntil.Store(now + int64(time.Hour))
			}
			s := NewSet(us, []int{5, 3, 1, 1}, &RoundRobin{})
			var scratch []*Upstream
			b.ReportAllocs()
			for b.Loop() {
				s.Pick(nil, now, &scratch)
			}
		})
	}
}

// Passive health: ejection after MaxFails, half-open re-admission.
func TestPassiveHealthCounters(t *testing.T) {
	p := &Passive{MaxFails: 3, Cooldown: 10 * time.Second}
	cool := int64(p.Cooldown)
	u := testUpstreams(1)[0]
	now := int64(1e12)
	p.Failed(u, now)
	p.Failed(u, now)
	if !u.AvailableAt(now) {
		t.Fatal("ejected after 2 of 3 failures")
	}
	p.Succeeded(u)
	p.Failed(u, now)
	p.Failed(u, now)
	if !u.AvailableAt(now) {
		t.Fatal("a success did not reset the count")
	}
	p.Failed(u, now)
	if u.AvailableAt(now) || u.AvailableAt(now+cool-1) {
		t.Fatal("not ejected after 3 consecutive failures")
	}
	p.Failed(u, now+1) // a late failure while out does not extend the ejection
	if !u.AvailableAt(now + cool) {
		t.Fatal("not re-admitted after the cooldown")
	}
	later := now + cool
	p.Failed(u, later) // half-open: one more failure ejects again
	if u.AvailableAt(later) {
		t.Fatal("half-open upstream not ejected by one failure")
	}
	if n := u.M.Ejections.Get(); n != 2 {
		t.Fatalf("%d ejections counted, want 2", n)
	}
}
