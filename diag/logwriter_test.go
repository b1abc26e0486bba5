package diag

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// Eight writers, 1,000 lines each, into a 4 KiB buffer: every write(2)
// is whole lines, none is lost or split, and there are far fewer writes
// than lines.
func TestLogWriterWholeLines(t *testing.T) {
	out := &testutil.Writes{}
	lw := NewLogWriter(out, 4096, time.Hour)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				fmt.Fprintf(lw, "writer=%d line=%d %s\n", g, i, strings.Repeat("x", i%50))
			}
		}()
	}
	wg.Wait()
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	ws := out.All()
	seen := map[string]bool{}
	for _, w := range ws {
		if len(w) == 0 || w[len(w)-1] != '\n' || len(w) > 4096 {
			t.Fatalf("a write of %d bytes that is not whole lines within the buffer: %q", len(w), w)
		}
		for _, l := range bytes.Split(w[:len(w)-1], []byte("\n")) {
			seen[string(l)] = true
		}
	}
	if len(seen) != 8000 {
		t.Errorf("%d distinct lines, want 8000", len(seen))
	}
	if len(ws) > 8000/20 {
		t.Errorf("%d writes for 8000 lines: not buffered", len(ws))
	}
}

// A quiet stream still shows up: the interval flush writes what waits.
func TestLogWriterIntervalFlush(t *testing.T) {
	out := &testutil.Writes{}
	lw := NewLogWriter(out, 64<<10, 20*time.Millisecond)
	defer lw.Close()
	lw.Write([]byte("one line\n"))
	deadline := time.Now().Add(5 * time.Second)
	for len(out.All()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the line was not flushed by the interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := string(out.All()[0]); got != "one line\n" {
		t.Errorf("flushed %q", got)
	}
}
