package diag

import (
	"io"
	"sync"
	"time"
)

// LogWriter buffers a log stream (the access log) so that a busy proxy
// pays one write(2) per batch of lines, not one per request. Each Write
// must be whole lines, as a slog handler writes one record per call; the
// buffer is only ever flushed between writes, so a line is never split
// and lines interleave cleanly with another logger on the same fd. It
// flushes when the buffer would overflow, every interval (so a quiet
// proxy's lines still show up promptly), and on Close. Safe for
// concurrent use; one goroutine runs the interval flush until Close.
//
// Two buffers take turns: a flush takes the full one and writes it
// holding only the write lock, so lines keep landing in the other while
// write(2) runs (a slow disk or a full pipe stalls the flusher, not every
// loop that logs). Begin and Commit let an encoder format a line straight
// into the buffer, so a line is copied once.
type LogWriter struct {
	mu    sync.Mutex // guards buf, spare, mark, err
	buf   []byte     // lines waiting; cap size
	spare []byte     // the other buffer; nil while a flush writes it
	mark  int        // len(buf) at Begin
	size  int
	err   error // the first write error, reported by Close

	wmu sync.Mutex // held across write(2): batches go out one at a time, in order
	w   io.Writer

	stop chan struct{}
	done chan struct{}
}

// lineRoom is the space Begin wants left for one line; with less, the
// batch is flushed first. Longer lines still work (Commit moves them).
const lineRoom = 1 << 10

// NewLogWriter buffers up to size bytes for w and flushes every interval.
func NewLogWriter(w io.Writer, size int, interval time.Duration) *LogWriter {
	lw := &LogWriter{w: w, size: size, buf: make([]byte, 0, size), spare: make([]byte, 0, size),
		stop: make(chan struct{}), done: make(chan struct{})}
	go lw.run(interval)
	return lw
}

func (lw *LogWriter) run(interval time.Duration) {
	defer close(lw.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			lw.Flush()
		case <-lw.stop:
			return
		}
	}
}

// Write appends p (whole lines). A line longer than the buffer goes out
// at once, after what is buffered.
func (lw *LogWriter) Write(p []byte) (int, error) {
	if len(p) > lw.size {
		lw.wmu.Lock()
		lw.flushHeld()
		lw.write(p)
		lw.wmu.Unlock()
		return len(p), nil
	}
	for {
		lw.mu.Lock()
		if len(lw.buf)+len(p) <= lw.size {
			lw.buf = append(lw.buf, p...)
			lw.mu.Unlock()
			return len(p), nil
		}
		lw.mu.Unlock()
		lw.Flush()
	}
}

// Begin returns the buffer for one whole line to be appended to, and
// holds the writer's lock until Commit: append the line, nothing slow,
// then Commit the result.
func (lw *LogWriter) Begin() []byte {
	lw.mu.Lock()
	if lw.size-len(lw.buf) < min(lineRoom, lw.size) && len(lw.buf) > 0 {
		lw.mu.Unlock()
		lw.Flush()
		lw.mu.Lock()
	}
	lw.mark = len(lw.buf)
	return lw.buf
}

// Commit takes the buffer Begin returned with one line appended, and
// releases the lock.
func (lw *LogWriter) Commit(b []byte) {
	if len(b) <= lw.size {
		lw.buf = b
		lw.mu.Unlock()
		return
	}
	// The line did not fit: append moved it, with the batch before it, to
	// a new array that is ours alone. The batch is still in lw.buf; the
	// line goes through Write (a rare copy).
	line := b[lw.mark:]
	lw.mu.Unlock()
	lw.Write(line)
}

// Flush writes out what is buffered.
func (lw *LogWriter) Flush() {
	lw.wmu.Lock()
	lw.flushHeld()
	lw.wmu.Unlock()
}

// flushHeld swaps the buffers and writes the full one; wmu is held, so
// the spare is free.
func (lw *LogWriter) flushHeld() {
	lw.mu.Lock()
	b := lw.buf
	if len(b) == 0 {
		lw.mu.Unlock()
		return
	}
	lw.buf, lw.spare = lw.spare[:0], nil
	lw.mu.Unlock()
	lw.write(b)
	lw.mu.Lock()
	lw.spare = b[:0]
	lw.mu.Unlock()
}

// write writes p; wmu is held. A failing stream (a full disk, a closed
// pipe) drops lines rather than stall the loops that log, and the first
// error is kept.
func (lw *LogWriter) write(p []byte) {
	if _, err := lw.w.Write(p); err != nil {
		lw.mu.Lock()
		if lw.err == nil {
			lw.err = err
		}
		lw.mu.Unlock()
	}
}

// Close stops the interval flush, flushes, and returns the first write
// error seen. Writes after Close still go to the buffer; call Flush.
func (lw *LogWriter) Close() error {
	select {
	case <-lw.stop:
	default:
		close(lw.stop)
	}
	<-lw.done
	lw.Flush()
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.err
}
