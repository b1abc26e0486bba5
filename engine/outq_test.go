package engine

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestOutqFIFO(t *testing.T) {
	var q outq
	var want []byte
	r := rand.New(rand.NewPCG(5, 6))
	iov := make([][]byte, 0, 8)
	for step := 0; step < 2000; step++ {
		if r.IntN(2) == 0 {
			p := make([]byte, r.IntN(40000))
			for i := range p {
				p[i] = byte(r.Uint32())
			}
			q.write(p)
			want = append(want, p...)
		} else if q.len() > 0 {
			iov = q.iovecs(iov[:0], cap(iov))
			var got []byte
			for _, b := range iov {
				got = append(got, b...)
			}
			if !bytes.HasPrefix(want, got) {
				t.Fatalf("step %d: iovecs are not the queue's front", step)
			}
			n := r.IntN(len(got) + 1)
			q.consume(n)
			want = want[n:]
		}
		if q.len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", step, q.len(), len(want))
		}
	}
	if q.reset() != len(want) || q.len() != 0 {
		t.Fatal("reset")
	}
}

// A drained queue keeps its chunk list, so a keep-alive write cycle
// allocates nothing.
func TestOutqSteadyStateAllocs(t *testing.T) {
	var q outq
	msg := make([]byte, 1200)
	iov := make([][]byte, 0, 8)
	cycle := func() {
		q.write(msg)
		q.write(msg)
		iov = q.iovecs(iov[:0], cap(iov))
		q.consume(q.len())
	}
	cycle()
	if a := testing.AllocsPerRun(1000, cycle); a != 0 {
		t.Fatalf("%v allocs per write/drain cycle", a)
	}
}
