package engine

import (
	"runtime"
	"testing"
)

// SetProcs adds one P per loop to the runtime's own choice, idempotently,
// and leaves an explicit GOMAXPROCS alone.
func TestSetProcs(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(orig)
	t.Setenv("GOMAXPROCS", "")
	base := baseProcs()
	if got := SetProcs(2); got != base+2 || runtime.GOMAXPROCS(0) != base+2 {
		t.Fatalf("SetProcs(2) = %d, GOMAXPROCS %d; want %d", got, runtime.GOMAXPROCS(0), base+2)
	}
	if got := SetProcs(2); got != base+2 {
		t.Fatalf("second SetProcs(2) = %d, want %d (not cumulative)", got, base+2)
	}
	t.Setenv("GOMAXPROCS", "1")
	runtime.GOMAXPROCS(1)
	if got := SetProcs(4); got != 1 || runtime.GOMAXPROCS(0) != 1 {
		t.Fatalf("with GOMAXPROCS=1 set, SetProcs(4) = %d, GOMAXPROCS %d; want 1 untouched", got, runtime.GOMAXPROCS(0))
	}
}
