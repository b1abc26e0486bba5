package bench

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/httpcodec/h2"
)

// h2Conn is one HTTP/2 client connection driven by sluice's own codec
// (httpcodec/h2, client role): a reader goroutine feeds it, the worker
// opens streams; both hold mu while they touch the codec.
type h2Conn struct {
	o  *Options
	nc net.Conn
	t  *tally

	mu      sync.Mutex
	cond    sync.Cond
	c       *h2.Conn
	out     []byte
	streams map[uint32]*h2Stream
	goAway  bool
	lastID  uint32
	dead    bool
	closing bool
}

type h2Stream struct {
	start   time.Time
	status  int
	headers bool
	body    int64
	pending []byte // request body not yet sent (flow control)
}

func (o *Options) h2Fields() []hpack.HeaderField {
	f := []hpack.HeaderField{
		{Name: ":method", Value: o.Method}, {Name: ":scheme", Value: o.URL.Scheme},
		{Name: ":authority", Value: o.URL.Host}, {Name: ":path", Value: o.target()},
		{Name: "user-agent", Value: "sluice-bench"},
	}
	for _, h := range o.Headers {
		name, value, _ := strings.Cut(h, ":")
		f = append(f, hpack.HeaderField{Name: strings.ToLower(strings.TrimSpace(name)), Value: strings.TrimSpace(value)})
	}
	if o.Body > 0 {
		f = append(f, hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(o.Body)})
	}
	return f
}

// newH2Conn starts the codec on an open connection (ALPN h2 or h2c with
// prior knowledge) and its reader goroutine.
func newH2Conn(o *Options, nc net.Conn, t *tally) *h2Conn {
	h := &h2Conn{o: o, nc: nc, t: t, streams: map[uint32]*h2Stream{}}
	h.cond.L = &h.mu
	h.c = h2.NewConn(h2.Client, h2.Config{ConnWindow: 16 << 20, InitialStreamWindow: 1 << 20}, (*h2Events)(h), time.Now())
	h.mu.Lock()
	h.flush()
	h.mu.Unlock()
	go h.read()
	return h
}

// flush writes the codec's output; mu held.
func (h *h2Conn) flush() {
	if h.c.OutputLen() == 0 || h.dead {
		return
	}
	h.out = h.c.AppendOutput(h.out[:0])
	h.nc.SetWriteDeadline(time.Now().Add(h.o.Timeout))
	if _, err := h.nc.Write(h.out); err != nil {
		h.die(errLost)
	}
}

// waitSlot blocks until a stream may be opened; false when the
// connection can take no more (dead or going away).
func (h *h2Conn) waitSlot(m int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for !h.dead && !h.goAway && (len(h.streams) >= m || !h.c.CanOpenStream()) {
		h.cond.Wait()
	}
	return !h.dead && !h.goAway
}

// open starts one request, timed from start; false when the connection
// could not take it (the caller keeps the ticket for the next one).
func (h *h2Conn) open(start time.Time, fields []hpack.HeaderField, body []byte) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dead || h.goAway {
		return false
	}
	id, err := h.c.OpenStream(fields, len(body) == 0)
	if err != nil {
		return false
	}
	s := &h2Stream{start: start}
	h.streams[id] = s
	if len(body) > 0 {
		n, _ := h.c.WriteData(id, body, true)
		s.pending = body[n:]
	}
	live.inflight.Add(1)
	h.flush()
	return true
}

// drain waits for every stream to end, then closes the connection.
func (h *h2Conn) close() {
	h.mu.Lock()
	for !h.dead && len(h.streams) > 0 {
		h.cond.Wait()
	}
	h.closing = true
	if !h.dead {
		h.die("")
	}
	h.mu.Unlock()
}

// die ends the connection; streams still open are counted by kind. mu held.
func (h *h2Conn) die(kind string) {
	if h.dead {
		return
	}
	h.dead = true
	for id, s := range h.streams {
		k := kind
		switch {
		case h.goAway && id > h.lastID:
			k = errUnprocessed
		case k == errTimeout:
		case s.headers:
			k = errTruncated
		default:
			k = errLost
		}
		h.t.fail(k)
		live.inflight.Add(-1)
		delete(h.streams, id)
	}
	h.nc.Close()
	h.cond.Broadcast()
}

func (h *h2Conn) read() {
	buf := make([]byte, 64<<10)
	have := 0
	for {
		h.nc.SetReadDeadline(time.Now().Add(h.o.Timeout))
		n, err := h.nc.Read(buf[have:])
		h.mu.Lock()
		if h.dead {
			h.mu.Unlock()
			return
		}
		now := time.Now()
		if n > 0 {
			have += n
			k, ferr := h.c.Feed(now, buf[:have])
			copy(buf, buf[k:have])
			have -= k
			h.c.OnTimer(now)
			h.flush()
			if ferr != nil || have == len(buf) {
				h.t.fail(errH2)
				h.die(errLost)
			}
		}
		if err != nil && !h.dead {
			switch {
			case isTimeout(err) && len(h.streams) == 0:
				// idle between open-loop requests
			case isTimeout(err):
				h.die(errTimeout)
			default:
				h.die(errLost)
			}
		}
		if !h.dead && h.goAway && len(h.streams) == 0 {
			h.die("")
		}
		h.cond.Broadcast()
		dead := h.dead
		h.mu.Unlock()
		if dead {
			return
		}
	}
}

// finish records a whole response; mu held.
func (h *h2Conn) finish(id uint32, s *h2Stream) {
	delete(h.streams, id)
	live.inflight.Add(-1)
	h.t.done(s.status, s.body, s.start, time.Now())
	h.cond.Broadcast()
}

// h2Events is the codec's Handler; it runs inside Feed with mu held.
type h2Events h2Conn

func (e *h2Events) OnHeaders(id uint32, hd *h2.Headers) {
	h := (*h2Conn)(e)
	s := h.streams[id]
	if s == nil || hd.Status < 200 {
		return
	}
	s.status, s.headers = hd.Status, true
	if hd.EndStream {
		h.finish(id, s)
	}
}

func (e *h2Events) OnData(id uint32, data []byte, end bool) {
	h := (*h2Conn)(e)
	h.c.Consumed(id, len(data))
	if s := h.streams[id]; s != nil {
		s.body += int64(len(data))
		if end {
			h.finish(id, s)
		}
	}
}

func (e *h2Events) OnTrailers(id uint32, _ []hpack.HeaderField) {
	h := (*h2Conn)(e)
	if s := h.streams[id]; s != nil {
		h.finish(id, s)
	}
}

func (e *h2Events) OnReset(id uint32, err *h2.StreamError) {
	h := (*h2Conn)(e)
	s := h.streams[id]
	if s == nil {
		return
	}
	delete(h.streams, id)
	live.inflight.Add(-1)
	switch {
	case err.Code == h2.ErrCodeRefusedStream:
		h.t.fail(errUnprocessed)
	case s.headers:
		h.t.fail(errTruncated)
	default:
		h.t.fail(errLost)
	}
	h.cond.Broadcast()
}

func (e *h2Events) OnWindowOpen(id uint32) {
	h := (*h2Conn)(e)
	if s := h.streams[id]; s != nil && len(s.pending) > 0 {
		n, _ := h.c.WriteData(id, s.pending, true)
		s.pending = s.pending[n:]
	}
}

func (e *h2Events) OnGoAway(last uint32, _ h2.ErrCode, _ []byte) {
	h := (*h2Conn)(e)
	h.goAway, h.lastID = true, last
	h.cond.Broadcast()
}

func (e *h2Events) OnPingAck([8]byte, time.Duration) {}
func (e *h2Events) OnSettings(h2.Settings)           {}
