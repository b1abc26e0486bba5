package engine

// timer is an entry in a loop's deadline heap. Each connection owns one entry
// keyed by its earliest deadline (quic-go's maybeResetTimer idea): moving a
// deadline later costs nothing (the entry fires early, finds nothing due and
// re-queues itself), moving it earlier is one sift. A tick therefore costs
// only the entries that expire, never the number of connections.
type timer struct {
	when int64 // heap key, engine clock
	idx  int   // position in the heap, -1 when not queued
	fire func(now int64)
}

// timerHeap is a binary min-heap of timers. Loop-owned.
type timerHeap []*timer

func (h *timerHeap) push(t *timer) {
	t.idx = len(*h)
	*h = append(*h, t)
	h.up(t.idx)
}

func (h *timerHeap) remove(t *timer) {
	i := t.idx
	if i < 0 {
		return
	}
	last := len(*h) - 1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil
	*h = (*h)[:last]
	t.idx = -1
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
}

// schedule queues t for when, or moves it earlier. A later when is ignored
// while t is queued: the early firing re-queues it (see Conn.onTimer).
func (h *timerHeap) schedule(t *timer, when int64) {
	if t.idx < 0 {
		t.when = when
		h.push(t)
		return
	}
	if when < t.when {
		t.when = when
		h.up(t.idx)
	}
}

// reset queues t at exactly when, earlier or later.
func (h *timerHeap) reset(t *timer, when int64) {
	if t.idx < 0 {
		t.when = when
		h.push(t)
		return
	}
	old := t.when
	t.when = when
	if when < old {
		h.up(t.idx)
	} else {
		h.down(t.idx)
	}
}

func (h timerHeap) min() int64 {
	if len(h) == 0 {
		return 0
	}
	return h[0].when
}

// popDue removes and returns the earliest timer if it is due at now.
func (h *timerHeap) popDue(now int64) *timer {
	if len(*h) == 0 || (*h)[0].when > now {
		return nil
	}
	t := (*h)[0]
	h.remove(t)
	return t
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].when <= h[i].when {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) bool {
	start := i
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h[r].when < h[l].when {
			m = r
		}
		if h[i].when <= h[m].when {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > start
}

// Timer is a one-shot loop timer for code above the engine (pool idle
// checks, protocol timeouts not tied to one connection). Its function runs
// on the loop. Create, Reset and Stop it only on its loop.
type Timer struct {
	l *Loop
	t timer
}

// AfterFunc runs fn on the loop after d (engine-clock nanoseconds). Call on the loop.
func (l *Loop) AfterFunc(d int64, fn func()) *Timer {
	tm := &Timer{l: l}
	tm.t.idx = -1
	tm.t.fire = func(int64) { fn() }
	l.timers.reset(&tm.t, l.now()+d)
	l.armTimer()
	return tm
}

// Reset reschedules the timer d from now.
func (tm *Timer) Reset(d int64) {
	tm.l.timers.reset(&tm.t, tm.l.now()+d)
	tm.l.armTimer()
}

// Stop cancels the timer if it has not fired.
func (tm *Timer) Stop() { tm.l.timers.remove(&tm.t) }
