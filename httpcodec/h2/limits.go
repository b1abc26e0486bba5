package h2

import "time"

// rateCounter counts events in fixed windows of a Budget's Per. A fixed
// window lets a burst of up to 2*Max straddle a boundary; that is still a
// constant bound, and it needs no timers and no history.
type rateCounter struct {
	start time.Time
	n     int
	// For WINDOW_UPDATE: DATA frames we sent in this and the previous window.
	credit, prevCredit int
}

func (r *rateCounter) roll(now time.Time, per time.Duration) {
	if r.start.IsZero() || now.Sub(r.start) >= per || now.Before(r.start) {
		// A gap of more than one window means the previous one was empty.
		if !r.start.IsZero() && now.Sub(r.start) < 2*per && !now.Before(r.start) {
			r.prevCredit = r.credit
		} else {
			r.prevCredit = 0
		}
		r.start = now
		r.n = 0
		r.credit = 0
	}
}

// hit records one event and reports whether the budget is exceeded.
func (r *rateCounter) hit(now time.Time, b Budget) bool {
	if b.Max < 0 {
		return false
	}
	r.roll(now, b.Per)
	r.n++
	return r.n > b.Max+2*(r.credit+r.prevCredit)
}

// earn adds allowance (WINDOW_UPDATE budget: DATA frames sent).
func (r *rateCounter) earn(now time.Time, b Budget, n int) {
	if b.Max < 0 {
		return
	}
	r.roll(now, b.Per)
	r.credit += n
}

// closedEntry remembers one closed stream; at is nanoseconds since the
// Conn's epoch, which keeps the entry small and the clock monotonic.
type closedEntry struct {
	id    uint32
	cause closeCause
	at    int64
}

// closedRing remembers recently closed streams, newest last, bounded both in
// count and in age. It grows on demand so idle connections stay small.
type closedRing struct {
	ents []closedEntry
	head int // index of the oldest entry once the ring is full
}

func (r *closedRing) add(e closedEntry, max int) {
	if len(r.ents) < max {
		r.ents = append(r.ents, e)
		return
	}
	r.ents[r.head] = e
	r.head = (r.head + 1) % len(r.ents)
}

// lookup finds id among entries not older than minAt.
func (r *closedRing) lookup(id uint32, minAt int64) (closeCause, bool) {
	n := len(r.ents)
	for i := n - 1; i >= 0; i-- {
		e := &r.ents[(r.head+i)%n]
		if e.at < minAt {
			break // older entries are older still
		}
		if e.id == id {
			return e.cause, true
		}
	}
	return causeNone, false
}
