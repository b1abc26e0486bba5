package h1

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// firstCtl returns the index of the first control byte, or 8.
func firstCtl(b []byte) int {
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			return i
		}
	}
	return 8
}

func maskFirst(w uint64) int {
	m := ctlMask(w)
	if m == 0 {
		return 8
	}
	return bits.TrailingZeros64(m) >> 3
}

func TestCtlMask(t *testing.T) {
	var b [8]byte
	for pos := range 8 {
		for v := range 256 {
			for i := range b {
				b[i] = 'a'
			}
			b[pos] = byte(v)
			if got, want := maskFirst(binary.LittleEndian.Uint64(b[:])), firstCtl(b[:]); got != want {
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
		if got, want := maskFirst(binary.LittleEndian.Uint64(b[:])), firstCtl(b[:]); got != want {
			t.Fatalf("%q: %v, want %v", b, got, want)
		}
	}
}
