package h2run

import (
	"time"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
)

// Runner drives one h2.Conn on one engine.Conn. Loop-owned. The zero
// value is unusable: call Init.
type Runner struct {
	codec  *h2.Conn
	c      *engine.Conn // nil until Attach (dialing) and after Detach
	later  func()       // schedules the owner's flush after the loop's batch
	kicked bool         // later was called and that flush has not run yet

	timerAt int64 // engine clock of the armed TimerProto, 0 if none
}

// Init sets the codec to drive and later, the function Kick calls to have
// the owner's flush (which calls WriteOut) run once the loop has handled
// its current batch of events. later may be nil if Kick is never used.
func (r *Runner) Init(codec *h2.Conn, later func()) {
	r.codec = codec
	r.later = later
}

// Codec returns the codec being driven.
func (r *Runner) Codec() *h2.Conn { return r.codec }

// Attach gives the connection frames go to. Until then (an upstream still
// dialing) frames wait in the codec.
func (r *Runner) Attach(c *engine.Conn) { r.c = c }

// Detach stops all output: once the connection is closed (or given up),
// Kick, WriteOut and ArmTimer do nothing.
func (r *Runner) Detach() { r.c = nil }

// Attached reports whether frames can go out.
func (r *Runner) Attached() bool { return r.c != nil }

// Kick has the owner's flush run after the loop's current batch of events,
// once however often it is called in that batch. It is the one place
// output is deferred.
func (r *Runner) Kick() {
	if r.kicked || r.c == nil {
		return
	}
	r.kicked = true
	r.later()
}

// Kicked reports whether a deferred flush is due.
func (r *Runner) Kicked() bool { return r.kicked }

// WriteOut moves the codec's queued frames to the connection now (the
// engine copies or seals them in Write). A deferred flush is no longer due.
func (r *Runner) WriteOut() {
	r.kicked = false
	if r.c != nil && r.codec.OutputLen() > 0 {
		r.c.Write(r.codec.Output())
		r.codec.DiscardOutput()
	}
}

// Feed hands bytes read to the codec at the loop's clock for the current
// callback and returns how many it consumed (whole frames; the engine
// keeps the rest for the next read).
func (r *Runner) Feed(c *engine.Conn, b []byte) (int, error) {
	return r.codec.Feed(time.Unix(0, c.Loop().Now()), b)
}

// ArmTimer keeps TimerProto set to the codec's next deadline (SETTINGS
// acknowledgement, the second GOAWAY), or cleared if it has none. Call it
// after anything that may move the deadline.
func (r *Runner) ArmTimer() {
	if r.c == nil {
		return
	}
	d := r.codec.NextDeadline()
	switch {
	case d.IsZero():
		if r.timerAt != 0 {
			r.timerAt = 0
			r.c.ClearTimer(engine.TimerProto)
		}
	case d.UnixNano() != r.timerAt:
		r.timerAt = d.UnixNano()
		r.c.SetTimer(engine.TimerProto, max(r.timerAt-engine.Now(), 1))
	}
}

// OnTimer runs the codec's deadline when TimerProto fires and returns the
// codec's error if that ended the connection. Output it queued is the
// caller's to flush.
func (r *Runner) OnTimer() error {
	r.timerAt = 0
	return r.codec.OnTimer(Now())
}

// Now is the engine clock as the codec's time.
func Now() time.Time { return time.Unix(0, engine.Now()) }

// CarriesH2 reports whether c, an upstream connection, may carry HTTP/2:
// cleartext (h2c, prior knowledge) or TLS with ALPN h2 selected.
func CarriesH2(c *engine.Conn) bool {
	if !c.IsTLS() {
		return true
	}
	in, ok := c.TLSInfo()
	return ok && in.ALPN == "h2"
}
