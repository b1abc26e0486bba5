package engine

import "sync"

// outChunk is the unit of an output queue. 16 KiB matches a TLS record, so a
// sealed record rarely straddles two chunks.
const outChunk = 16 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, outChunk); return &b }}

// outq is a FIFO of bytes waiting for the socket, kept as pooled chunks so a
// large backlog never needs one big contiguous allocation or a compaction.
// Loop-owned.
type outq struct {
	chunks []*[]byte // data of chunk i is (*chunks[i])[off:] for i == 0, else all of it
	off    int
	n      int
}

func (q *outq) len() int { return q.n }

func (q *outq) write(p []byte) {
	q.n += len(p)
	for len(p) > 0 {
		if k := len(q.chunks); k > 0 {
			tail := q.chunks[k-1]
			if room := cap(*tail) - len(*tail); room > 0 {
				m := min(room, len(p))
				*tail = append(*tail, p[:m]...)
				p = p[m:]
				continue
			}
		}
		q.chunks = append(q.chunks, chunkPool.Get().(*[]byte))
	}
}

// iovecs appends up to max slices describing the queued bytes.
func (q *outq) iovecs(dst [][]byte, max int) [][]byte {
	for i, c := range q.chunks {
		if len(dst) == max {
			break
		}
		b := *c
		if i == 0 {
			b = b[q.off:]
		}
		if len(b) > 0 {
			dst = append(dst, b)
		}
	}
	return dst
}

// consume drops n bytes from the front.
func (q *outq) consume(n int) {
	q.n -= n
	for n > 0 {
		c := q.chunks[0]
		avail := len(*c) - q.off
		if n < avail {
			q.off += n
			return
		}
		n -= avail
		q.popFront()
	}
}

func (q *outq) popFront() {
	c := q.chunks[0]
	*c = (*c)[:0]
	chunkPool.Put(c)
	q.chunks[0] = nil
	q.chunks = q.chunks[1:]
	q.off = 0
	if len(q.chunks) == 0 {
		q.chunks = nil
	}
}

// reset drops everything and returns the chunks to the pool; it reports how
// many bytes were thrown away.
func (q *outq) reset() int {
	n := q.n
	for len(q.chunks) > 0 {
		q.popFront()
	}
	q.n, q.off = 0, 0
	return n
}
