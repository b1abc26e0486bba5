package testutil

import "sync"

// Writes is an io.Writer that keeps each Write as one chunk, for tests of
// what a writer passes on in one call (whole lines, batches). Safe for
// concurrent use.
type Writes struct {
	mu sync.Mutex
	w  [][]byte
}

func (c *Writes) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.w = append(c.w, append([]byte(nil), p...))
	c.mu.Unlock()
	return len(p), nil
}

// All returns a copy of the chunks written so far, in order.
func (c *Writes) All() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.w...)
}
