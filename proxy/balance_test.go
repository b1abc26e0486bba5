package proxy

import (
	"fmt"
	"testing"
)

func testUpstreams(n int) []*Upstream {
	us := make([]*Upstream, n)
	for i := range us {
		us[i] = newUpstream(fmt.Sprintf("10.0.0.%d:80", i+1), i, nil)
	}
	return us
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

// Passive health: ejection after MaxFails, half-open re-admission.
func TestPassiveHealthCounters(t *testing.T) {
	h, err := NewHTTP(HTTPConfig{Routes: []Route{{PathPrefix: "/", Upstreams: []string{"a:1"}}}, MaxFails: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	u := h.Upstreams()[0]
	now := int64(1e12)
	h.failed(u, now)
	h.failed(u, now)
	if !u.available(now) {
		t.Fatal("ejected after 2 of 3 failures")
	}
	h.succeeded(u)
	h.failed(u, now)
	h.failed(u, now)
	if !u.available(now) {
		t.Fatal("a success did not reset the count")
	}
	h.failed(u, now)
	if u.available(now) || u.available(now+h.failCooldown-1) {
		t.Fatal("not ejected after 3 consecutive failures")
	}
	h.failed(u, now+1) // a late failure while out does not extend the ejection
	if !u.available(now + h.failCooldown) {
		t.Fatal("not re-admitted after the cooldown")
	}
	later := now + h.failCooldown
	h.failed(u, later) // half-open: one more failure ejects again
	if u.available(later) {
		t.Fatal("half-open upstream not ejected by one failure")
	}
}
