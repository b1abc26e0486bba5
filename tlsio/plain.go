package tlsio

import "sync"

// Plaintext buffers live only between the Feed that decrypts records and
// the ReadPlaintext that hands them out, so they come from pools and an
// idle connection holds none. Two size classes: one full record, and room
// for what one 64 KiB socket read can carry.
const (
	plainSmall = maxPlaintext
	plainLarge = 128 << 10
)

var plainPools = [2]sync.Pool{
	{New: func() any { b := make([]byte, 0, plainSmall); return &b }},
	{New: func() any { b := make([]byte, 0, plainLarge); return &b }},
}

// growPlain makes room for more plaintext: a pooled buffer when one is big
// enough for what is buffered plus what the transport still holds, else an
// exact allocation.
func (c *stdConn) growPlain() {
	c.t.mu.Lock()
	pending := len(c.t.in)
	c.t.mu.Unlock()
	need := max(2*cap(c.plain), len(c.plain)+pending+maxPlaintext)
	if cap(c.plain) == 0 {
		// Plaintext is shorter than its records: at least 21 bytes of
		// header and tag each. A wrong guess only costs a later growth.
		need = max(1, pending-21)
	}
	var box *[]byte
	var grown []byte
	switch {
	case need <= plainSmall:
		box = plainPools[0].Get().(*[]byte)
	case need <= plainLarge:
		box = plainPools[1].Get().(*[]byte)
	default:
		grown = make([]byte, 0, need)
	}
	if box != nil {
		grown = (*box)[:0]
	}
	grown = append(grown, c.plain...)
	c.releasePlain()
	c.plain, c.plainBox = grown, box
}

// releasePlain drops the plaintext buffer, returning it to its pool.
func (c *stdConn) releasePlain() {
	if b := c.plainBox; b != nil {
		*b = (*b)[:0]
		if cap(*b) == plainSmall {
			plainPools[0].Put(b)
		} else {
			plainPools[1].Put(b)
		}
		c.plainBox = nil
	}
	c.plain = nil
}

// takePlain appends the buffered plaintext to dst. When dst is empty and
// too small, append would allocate anyway: hand over the buffer instead of
// copying it.
func (c *stdConn) takePlain(dst []byte) []byte {
	if len(c.plain) == 0 {
		return dst
	}
	if len(dst) == 0 && cap(dst) < len(c.plain) {
		dst = c.plain
		c.plain, c.plainBox = nil, nil // the caller owns it now
		return dst
	}
	dst = append(dst, c.plain...)
	c.releasePlain()
	return dst
}
