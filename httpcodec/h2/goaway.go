package h2

import (
	"slices"
	"time"
)

// goAwayState tracks GOAWAY in both directions.
type goAwayState struct {
	// Sent side. phase 1: Shutdown sent GOAWAY(2^31-1) and a PING and
	// waits for the ACK or the deadline. sent: a GOAWAY with a real last
	// stream id went out; peer streams above lastID are ignored.
	phase    uint8
	deadline time.Time
	sent     bool
	lastID   uint32

	// Received side.
	recv     bool
	recvLast uint32
}

// shutdownPing is the opaque data of Shutdown's PING.
var shutdownPing = [8]byte{'s', 'l', 'u', 'i', 'c', 'e', 'g', 'a'}

// Shutdown starts a graceful close (RFC 9113 §6.8). In the server role it
// takes two phases, because a client may have requests in flight that the
// server has not seen yet:
//
//  1. GOAWAY(last stream id 2^31-1, NO_ERROR) tells the client to stop
//     opening streams, and a PING follows it.
//  2. When the PING's ACK arrives, every stream the client opened before it
//     saw the GOAWAY has arrived too; then (or at now+GoAwayTimeout, see
//     NextDeadline) GOAWAY goes out again with the highest stream id
//     actually processed.
//
// Streams up to that id carry on; Drained reports when the last one ends.
// In the client role one GOAWAY(NO_ERROR) suffices and OpenStream is
// refused from now on. Its last stream id is the highest stream this
// client opened: the RFC's id counts server-opened streams (none here,
// so 0 would do), but hyperium h2 (hyper's) resets every stream above it,
// whoever opened it, and so failed every request in flight at a drain.
func (c *Conn) Shutdown(now time.Time) {
	c.now = now
	if c.err != nil || c.goAway.sent || c.goAway.phase != 0 {
		return
	}
	if c.role == Client {
		var last uint32
		if c.nextLocalID > 2 {
			last = c.nextLocalID - 2
		}
		c.sendGoAway(last, ErrCodeNo, nil)
		return
	}
	c.goAway.phase = 1
	c.goAway.deadline = now.Add(c.cfg.GoAwayTimeout)
	c.out = appendGoAway(c.out, MaxStreamID, ErrCodeNo, nil)
	c.stats.GoAwaySent.add(ErrCodeNo)
	c.out = appendPing(c.out, false, shutdownPing)
}

// goAwayFinal is phase 2 of Shutdown.
func (c *Conn) goAwayFinal() {
	c.goAway.phase = 0
	c.sendGoAway(c.lastProcessedPeerID, ErrCodeNo, nil)
}

func (c *Conn) sendGoAway(last uint32, code ErrCode, debug []byte) {
	c.out = appendGoAway(c.out, last, code, debug)
	c.stats.GoAwaySent.add(code)
	c.goAway.sent = true
	c.goAway.lastID = last
}

// GoAway sends GOAWAY at once with the last stream id processed so far. With
// NO_ERROR, streams up to that id carry on (see Drained). Any other code
// ends the connection: later calls return a *ConnError with By == ByCaller,
// and the caller should flush AppendOutput and close.
func (c *Conn) GoAway(code ErrCode, debug string) error {
	if c.err != nil {
		return c.err
	}
	last := c.lastProcessedPeerID
	if c.goAway.sent && c.goAway.lastID < last {
		// "Endpoints MUST NOT increase the value they send in the last
		// stream identifier, since the peers might already have retried
		// unprocessed requests on another connection."
		last = c.goAway.lastID
	}
	c.goAway.phase = 0
	c.sendGoAway(last, code, []byte(debug))
	if code != ErrCodeNo {
		c.err = &ConnError{Code: code, Reason: debug, By: ByCaller}
	}
	return nil
}

// Drained reports that the connection has nothing left to do: this endpoint
// sent its final GOAWAY (or, in the client role, received one) and no
// stream remains open. The caller should flush AppendOutput and close.
func (c *Conn) Drained() bool {
	if c.err != nil || len(c.streams) > 0 || c.goAway.phase != 0 {
		return false
	}
	return c.goAway.sent || (c.role == Client && c.goAway.recv)
}

// GoingAway reports whether a GOAWAY was sent (either phase) or received.
func (c *Conn) GoingAway() bool {
	return c.goAway.sent || c.goAway.phase != 0 || c.goAway.recv
}

func (c *Conn) onGoAway(f *frame) {
	last := f.LastStreamID
	if c.goAway.recv && last > c.goAway.recvLast {
		last = c.goAway.recvLast // a peer may not raise it; keep the lower
	}
	c.goAway.recv = true
	c.goAway.recvLast = last
	c.stats.GoAwayReceived.add(f.Code)

	// Streams we opened above last were never processed: "The sender of the
	// GOAWAY frame ... streams ... with identifiers higher than the last
	// stream identifier ... were not processed and can be retried".
	ids := c.scratch[:0]
	for id, s := range c.streams {
		if s.local && id > last {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		s := c.streams[id]
		s.closeWith(causeLocalReset) // whatever still arrives for it is ignored
		c.closeStream(s)
	}
	c.h.OnGoAway(last, f.Code, f.Payload)
	for _, id := range ids {
		if c.err != nil {
			break
		}
		c.h.OnReset(id, &StreamError{StreamID: id, Code: ErrCodeRefusedStream, Reason: "not processed before GOAWAY", By: ByPeer})
	}
	c.scratch = ids[:0]
}
