package h1

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func naiveHasCtl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

func TestHasCtl(t *testing.T) {
	var b [8]byte
	for pos := range 8 {
		for v := range 256 {
			for i := range b {
				b[i] = 'a'
			}
			b[pos] = byte(v)
			if got, want := hasCtl(binary.LittleEndian.Uint64(b[:])), naiveHasCtl(b[:]); got != want {
				t.Fatalf("%q: %v, want %v", b, got, want)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{0x00, 0x01, 0x09, 0x1f, 0x20, 0x21, 0x7e, 0x7f, 0x80, 0x9f, 0xa0, 0xff}
	for range 200000 {
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		if got, want := hasCtl(binary.LittleEndian.Uint64(b[:])), naiveHasCtl(b[:]); got != want {
			t.Fatalf("%q: %v, want %v", b, got, want)
		}
	}
}
