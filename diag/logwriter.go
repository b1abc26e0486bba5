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
type LogWriter struct {
	mu   sync.Mutex
	w    io.Writer
	buf  []byte
	err  error // the first write error, reported by Close
	stop chan struct{}
	done chan struct{}
}

// NewLogWriter buffers up to size bytes for w and flushes every interval.
func NewLogWriter(w io.Writer, size int, interval time.Duration) *LogWriter {
	lw := &LogWriter{w: w, buf: make([]byte, 0, size), stop: make(chan struct{}), done: make(chan struct{})}
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
			lw.mu.Lock()
			lw.flushLocked()
			lw.mu.Unlock()
		case <-lw.stop:
			return
		}
	}
}

// Write appends p (whole lines). A line longer than the buffer goes out
// at once.
func (lw *LogWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if len(lw.buf)+len(p) > cap(lw.buf) {
		lw.flushLocked()
		if len(p) > cap(lw.buf) {
			lw.writeLocked(p)
			return len(p), nil
		}
	}
	lw.buf = append(lw.buf, p...)
	return len(p), nil
}

// Flush writes out what is buffered.
func (lw *LogWriter) Flush() {
	lw.mu.Lock()
	lw.flushLocked()
	lw.mu.Unlock()
}

func (lw *LogWriter) flushLocked() {
	if len(lw.buf) > 0 {
		lw.writeLocked(lw.buf)
		lw.buf = lw.buf[:0]
	}
}

// writeLocked writes p; a failing stream (a full disk, a closed pipe) drops
// lines rather than stall the loops that log, and the first error is kept.
func (lw *LogWriter) writeLocked(p []byte) {
	if _, err := lw.w.Write(p); err != nil && lw.err == nil {
		lw.err = err
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
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.flushLocked()
	return lw.err
}
