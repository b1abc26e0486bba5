package diag

// Ring keeps the last N close traces. It is not safe for concurrent use:
// each event loop owns one.
type Ring struct {
	traces []Trace
	next   int
	n      int
}

// NewRing returns a ring that keeps the last n traces.
func NewRing(n int) *Ring { return &Ring{n: n} }

// Add copies t into the ring, replacing the oldest once it is full.
func (r *Ring) Add(t *Trace) {
	if len(r.traces) < r.n {
		r.traces = append(r.traces, *t)
		return
	}
	r.traces[r.next] = *t
	r.next = (r.next + 1) % r.n
}

// AppendTo appends the traces that keep accepts (nil: all) to dst.
func (r *Ring) AppendTo(dst []Trace, keep func(*Trace) bool) []Trace {
	for i := range r.traces {
		if keep == nil || keep(&r.traces[i]) {
			dst = append(dst, r.traces[i])
		}
	}
	return dst
}
