package engine

import "sync"

// outChunk is the unit of an output queue. 16 KiB matches a TLS record, so a
// sealed record rarely straddles two chunks.
const outChunk = 16 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, outChunk); return &b }}

// outq is a FIFO of bytes waiting for the socket, kept as pooled chunks so a
// large backlog never needs one big contiguous allocation or a compaction.
// The chunk list keeps its backing array across drain cycles, so a
// keep-alive connection's steady state allocates nothing. Loop-owned.
type outq struct {
	chunks []*[]byte // live chunks are chunks[head:]; the first starts at off
	head   int
	off    int
	n      int
}

func (q *outq) len() int { return q.n }

func (q *outq) write(p []byte) {
	q.n += len(p)
	for len(p) > 0 {
		if k := len(q.chunks); k > q.head {
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
	for i := q.head; i < len(q.chunks) && len(dst) < max; i++ {
		b := *q.chunks[i]
		if i == q.head {
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
		avail := len(*q.chunks[q.head]) - q.off
		if n < avail {
			q.off += n
			return
		}
		n -= avail
		q.popFront()
	}
}

func (q *outq) popFront() {
	c := q.chunks[q.head]
	*c = (*c)[:0]
	chunkPool.Put(c)
	q.chunks[q.head] = nil
	q.head++
	q.off = 0
	if q.head == len(q.chunks) {
		q.chunks = q.chunks[:0]
		q.head = 0
	}
}

// reset drops everything and returns the chunks to the pool; it reports how
// many bytes were thrown away.
func (q *outq) reset() int {
	n := q.n
	for q.head < len(q.chunks) {
		q.popFront()
	}
	q.n, q.off = 0, 0
	return n
}
