package upstream

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
)

// Selector picks the upstream for one request. cands is never empty and
// holds the route's available upstreams (or all of them when none is
// available). Implementations are shared by every loop, so their state
// must be safe for concurrent use, and Select must not block or keep cands.
type Selector interface {
	Select(cands []*Upstream) *Upstream
}

// Balancing policies, for the proxy's Balance setting.
const (
	BalanceRoundRobin = "round_robin"
	BalanceLeastConn  = "least_conn"
	BalanceP2C        = "p2c"
)

// NewSelector returns a fresh selector for a policy name.
func NewSelector(policy string) (Selector, error) {
	switch policy {
	case "", BalanceRoundRobin:
		return &RoundRobin{}, nil
	case BalanceLeastConn:
		return LeastConn{}, nil
	case BalanceP2C:
		return PowerOfTwo{}, nil
	}
	return nil, fmt.Errorf("balance policy %q: want %s, %s or %s", policy, BalanceRoundRobin, BalanceLeastConn, BalanceP2C)
}

// RoundRobin takes the candidates in turn. One counter is shared by all
// loops, so the rotation is global.
type RoundRobin struct{ n atomic.Uint64 }

// Select returns the next candidate in turn.
func (r *RoundRobin) Select(cands []*Upstream) *Upstream {
	if len(cands) == 1 {
		return cands[0]
	}
	return cands[(r.n.Add(1)-1)%uint64(len(cands))]
}

// LeastConn takes the candidate with the fewest requests in flight over all
// loops. Ties go to the first one found scanning from a random start, so
// an idle pool is not always served by its first member.
type LeastConn struct{}

// Select returns the least loaded candidate.
func (LeastConn) Select(cands []*Upstream) *Upstream {
	n := len(cands)
	if n == 1 {
		return cands[0]
	}
	start := rand.IntN(n)
	best := cands[start]
	bl := best.InFlight()
	for i := 1; i < n && bl > 0; i++ {
		c := cands[(start+i)%n]
		if l := c.InFlight(); l < bl {
			best, bl = c, l
		}
	}
	return best
}

// PowerOfTwo ("power of two choices") samples two distinct candidates at
// random and takes the one with fewer requests in flight: nearly the load
// spread of LeastConn without reading every counter, and no herd on one
// newly idle upstream.
type PowerOfTwo struct{}

// Select returns the less loaded of two random candidates.
func (PowerOfTwo) Select(cands []*Upstream) *Upstream {
	n := len(cands)
	if n == 1 {
		return cands[0]
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := cands[i], cands[j]
	if b.InFlight() < a.InFlight() {
		return b
	}
	return a
}

// Set is a route's upstreams, their weights and its selector, built once
// per route (a reload builds new ones). Read-only once built, shared by
// every loop.
type Set struct {
	ups   []*Upstream
	all   []*Upstream // ups, each once per unit of weight: the candidates while all are available
	start []int       // ups[i] fills all[start[i]:start[i+1]]
	sel   Selector
}

// NewSet binds ups (each once) to their weights (nil: all 1; else one per
// upstream, at least 1) and sel.
func NewSet(ups []*Upstream, weights []int, sel Selector) *Set {
	s := &Set{ups: ups, start: make([]int, 0, len(ups)+1), sel: sel}
	for i, u := range ups {
		s.start = append(s.start, len(s.all))
		w := 1
		if weights != nil {
			w = weights[i]
		}
		for range w {
			s.all = append(s.all, u)
		}
	}
	s.start = append(s.start, len(s.all))
	return s
}

// Pick chooses an upstream for an attempt at engine clock now. avoid, if
// not nil, is skipped when another candidate is available (the one that
// just failed). When every upstream is available and none is avoided, the
// selector gets the weighted list built by NewSet; otherwise the available
// ones are gathered in *scratch (the caller's, per loop: the slice is
// reused, its contents cleared). When nothing is available, avoid is
// tried, then every upstream once, unweighted.
func (s *Set) Pick(avoid *Upstream, now int64, scratch *[]*Upstream) *Upstream {
	k := 0
	for k < len(s.ups) && s.ups[k] != avoid && s.ups[k].AvailableAt(now) {
		k++
	}
	if k == len(s.ups) {
		return s.sel.Select(s.all)
	}
	// ups[:k] are in, ups[k] is not. Element by element: for a few
	// pointers, append's typed slice copy costs more than the loop.
	c := (*scratch)[:0]
	for _, u := range s.all[:s.start[k]] {
		c = append(c, u)
	}
	for i := k + 1; i < len(s.ups); i++ {
		if u := s.ups[i]; u != avoid && u.AvailableAt(now) {
			for range s.start[i+1] - s.start[i] {
				c = append(c, u)
			}
		}
	}
	if len(c) == 0 && avoid != nil && avoid.AvailableAt(now) {
		c = append(c, avoid)
	}
	if len(c) == 0 {
		c = append(c, s.ups...) // everything is out: try anyway
	}
	u := s.sel.Select(c)
	clear(c)
	*scratch = c[:0]
	return u
}
