package exchange

// Replay keeps the request body bytes sent upstream while a retry may
// still need them, in the form the attempt wrote them (HTTP/1.1 framing
// for an HTTP/1.1 upstream, DATA payload for an HTTP/2 one), bounded by
// the limit given to Keep: past it, or once no retry is left, the copy is
// dropped for good and OK turns false. The zero value keeps nothing.
type Replay struct {
	buf  []byte
	ok   bool // every body byte taken so far is in buf
	sent int  // bytes of buf sent on the current attempt (an HTTP/2 window may take part)
}

// Arm starts a request's replay, empty, keeping bytes when on.
func (r *Replay) Arm(on bool) {
	r.buf = r.buf[:0]
	r.sent = 0
	r.ok = on
}

// Keep copies p, sent on the current attempt; past limit, or with no
// retry left, the replay gives up.
func (r *Replay) Keep(p []byte, limit int, retriesLeft bool) {
	if !r.ok {
		return
	}
	if len(r.buf)+len(p) > limit || !retriesLeft {
		r.ok = false
		r.buf = r.buf[:0]
		r.sent = 0
		return
	}
	r.buf = append(r.buf, p...)
	r.sent = len(r.buf)
}

// OK reports whether every body byte taken so far is held.
func (r *Replay) OK() bool { return r.ok }

// Len is how many bytes are held.
func (r *Replay) Len() int { return len(r.buf) }

// Bytes is everything held, for an attempt that resends it whole; Resent
// records that it did.
func (r *Replay) Bytes() []byte { return r.buf }

// Resent: a new attempt wrote all of Bytes.
func (r *Replay) Resent() { r.sent = len(r.buf) }

// NewAttempt: the next attempt has sent nothing of it yet.
func (r *Replay) NewAttempt() { r.sent = 0 }

// Rest is what the current attempt has still to resend.
func (r *Replay) Rest() []byte { return r.buf[r.sent:] }

// Sent records that the current attempt resent n more bytes of Rest.
func (r *Replay) Sent(n int) { r.sent += n }

// Trim drops the buffer when it grew past max, for a reused request
// record; a new request re-arms it anyway.
func (r *Replay) Trim(max int) {
	if cap(r.buf) > max {
		r.buf = nil
	}
}

// Reset empties the replay for the next request, keeping its memory.
func (r *Replay) Reset() { r.Arm(false) }
