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

// stuckWriter blocks each Write until released, like a full pipe.
type stuckWriter struct {
	entered chan struct{}
	release chan struct{}
	testutil.Writes
}

func (s *stuckWriter) Write(p []byte) (int, error) {
	s.entered <- struct{}{}
	<-s.release
	return s.Writes.Write(p)
}

// While a flush is stuck in write(2), lines still go into the buffer at
// once: the loops that log never wait for the stream.
func TestLogWriterWritesDuringStuckFlush(t *testing.T) {
	out := &stuckWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	lw := NewLogWriter(out, 4096, time.Hour)
	lw.Write([]byte("first\n"))
	go lw.Flush()
	<-out.entered
	done := make(chan struct{})
	go func() {
		lw.Write([]byte("second\n"))
		lw.Commit(append(lw.Begin(), "third\n"...))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("a Write waited for the flush's write(2)")
	}
	close(out.release)
	<-done
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range out.All() {
		got = append(got, string(w))
	}
	if strings.Join(got, "|") != "first\n|second\nthird\n" {
		t.Errorf("writes %q", got)
	}
}

// Lines formatted in place (Begin, Commit) of every length, some longer
// than the room Begin keeps and some longer than the buffer, arrive whole
// and in order, each write within the buffer unless one line alone is
// larger.
func TestLogWriterCommitAnyLength(t *testing.T) {
	out := &testutil.Writes{}
	const size = 4096
	lw := NewLogWriter(out, size, time.Hour)
	var want strings.Builder
	for i := 0; i < 300; i++ {
		n := (i * 97) % 3000
		if i%50 == 7 {
			n = 6000 // longer than the buffer
		}
		line := fmt.Sprintf("line=%d %s\n", i, strings.Repeat("y", n))
		want.WriteString(line)
		lw.Commit(append(lw.Begin(), line...))
	}
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	for _, w := range out.All() {
		if len(w) == 0 || w[len(w)-1] != '\n' || (len(w) > size && bytes.Count(w, []byte("\n")) != 1) {
			t.Fatalf("a write of %d bytes that is not whole lines within the buffer", len(w))
		}
		got.Write(w)
	}
	if got.String() != want.String() {
		t.Errorf("lines lost, split or out of order: %d bytes, want %d", got.Len(), want.Len())
	}
}
