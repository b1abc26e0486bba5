package h2run_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
	"github.com/sluice-proxy/sluice/internal/h2run"
	"github.com/sluice-proxy/sluice/internal/testutil/enginetest"
)

// counts is what the test server reports to the test goroutine.
type counts struct {
	kicks, laters atomic.Int64
	// A callback that called later more than once: Kick did not batch.
	twice atomic.Int64
}

// server is a small HTTP/2 server on a Runner: every request gets 200 and
// "hello <path>", written with two Kicks per stream.
type server struct {
	engine.BaseHandler
	cfg  h2.Config
	n    *counts
	r    h2run.Runner
	sc   *h2.Conn
	c    *engine.Conn
	ev   serverEvents
	news []opened
}

type opened struct {
	id   uint32
	path string
}

type serverEvents struct {
	h2.NopHandler
	s *server
}

func (e *serverEvents) OnHeaders(id uint32, hd *h2.Headers) {
	path := ""
	for _, f := range hd.Fields {
		if f.Name == ":path" {
			path = f.Value
		}
	}
	e.s.news = append(e.s.news, opened{id, path})
}

func (e *serverEvents) OnData(id uint32, data []byte, _ bool) { e.s.sc.Consumed(id, len(data)) }

func (s *server) kick() {
	s.n.kicks.Add(1)
	s.r.Kick()
}

func (s *server) flush() { s.r.WriteOut() }

func (s *server) OnOpen(c *engine.Conn) {
	c.Advance(diag.DataTransfer)
	s.c = c
	s.ev.s = s
	s.sc = h2.NewConn(h2.Server, s.cfg, &s.ev, h2run.Now())
	s.r.Init(s.sc, func() {
		s.n.laters.Add(1)
		if c.Loop().Post(s.flush) != nil {
			s.flush()
		}
	})
	s.r.Attach(c)
	s.kick() // the server preface
	s.r.ArmTimer()
}

func (s *server) OnData(c *engine.Conn, b []byte) int {
	before := s.n.laters.Load()
	n, err := s.r.Feed(c, b)
	for _, o := range s.news {
		s.sc.WriteHeaders(o.id, []hpack.HeaderField{{Name: ":status", Value: "200"}}, false)
		s.kick()
		s.sc.WriteData(o.id, []byte("hello "+o.path), true)
		s.kick()
	}
	s.news = s.news[:0]
	if s.n.laters.Load()-before > 1 {
		s.n.twice.Add(1)
	}
	if err != nil {
		s.r.WriteOut() // the codec's GOAWAY
		c.Close(diag.ProtocolError)
		return 0
	}
	s.r.ArmTimer()
	return n
}

func (s *server) OnTimer(c *engine.Conn, k engine.TimerKind) {
	if k != engine.TimerProto {
		return
	}
	if err := s.r.OnTimer(); err != nil {
		s.r.WriteOut() // the codec's GOAWAY
		c.Close(diag.ProtocolError)
		return
	}
	s.kick()
	s.r.ArmTimer()
}

func (s *server) OnClosed(*engine.Conn, *diag.Trace) { s.r.Detach() }

// start runs an engine whose listener serves with server.
func start(t *testing.T, cfg h2.Config, n *counts) string {
	t.Helper()
	e := enginetest.Start(t, engine.Config{
		Loops: 2,
		Listeners: []engine.Listener{{Name: "h2", Addr: "127.0.0.1:0", Accept: func(*engine.Conn) engine.Handler {
			return &server{cfg: cfg, n: n}
		}}},
	})
	return e.Addr("h2")
}

// TestRunnerServesHTTP2Client: x/net/http2's client (prior knowledge)
// gets every response through Kick's deferred flush, and Kick asks for at
// most one flush per callback however many frames it queued.
func TestRunnerServesHTTP2Client(t *testing.T) {
	var n counts
	addr := start(t, h2.Config{}, &n)
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, a string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, a)
		},
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	const reqs = 40
	var wg sync.WaitGroup
	errs := make(chan error, reqs)
	for i := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/r%d", i)
			resp, err := cl.Get("http://" + addr + path)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				errs <- err
				return
			}
			if resp.StatusCode != 200 || string(b) != "hello "+path {
				errs <- fmt.Errorf("%s: %d %q", path, resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if k := n.twice.Load(); k != 0 {
		t.Errorf("%d callbacks scheduled more than one flush", k)
	}
	// Two kicks per stream, plus the preface's: every flush served several.
	if k, l := n.kicks.Load(), n.laters.Load(); l == 0 || k < 2*reqs || l > k/2 {
		t.Errorf("kicks %d, flushes scheduled %d: want at least %d kicks and at most one flush per two", k, l, 2*reqs)
	}
}

// TestRunnerSettingsDeadline: the codec's deadline is kept on TimerProto.
// A client that never acknowledges the server's SETTINGS gets GOAWAY
// SETTINGS_TIMEOUT once SettingsTimeout has passed, not before; one that
// acknowledges them gets nothing more.
func TestRunnerSettingsDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	addr := start(t, h2.Config{SettingsTimeout: timeout}, new(counts))

	dial := func(t *testing.T) (net.Conn, *http2.Framer) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(c, c)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		return c, fr
	}

	t.Run("no ack", func(t *testing.T) {
		t0 := time.Now()
		c, fr := dial(t)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("no GOAWAY after %v: %v", time.Since(t0), err)
			}
			ga, ok := f.(*http2.GoAwayFrame)
			if !ok {
				continue // the server's SETTINGS, its ACK of ours
			}
			if ga.ErrCode != http2.ErrCodeSettingsTimeout {
				t.Fatalf("GOAWAY %v, want SETTINGS_TIMEOUT", ga.ErrCode)
			}
			if d := time.Since(t0); d < timeout {
				t.Fatalf("GOAWAY after %v, before the %v deadline", d, timeout)
			}
			return
		}
	})

	t.Run("ack", func(t *testing.T) {
		c, fr := dial(t)
		c.SetReadDeadline(time.Now().Add(3 * timeout))
		for {
			f, err := fr.ReadFrame()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return // nothing more came: the deadline was cleared
			}
			if err != nil {
				t.Fatal(err)
			}
			if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				t.Fatalf("GOAWAY %v after the SETTINGS were acknowledged", ga.ErrCode)
			}
		}
	})
}

// TestRunnerNoOutputUnattached: before Attach (an upstream still dialing)
// nothing is scheduled or written; frames wait in the codec.
func TestRunnerNoOutputUnattached(t *testing.T) {
	var r h2run.Runner
	laters := 0
	sc := h2.NewConn(h2.Client, h2.Config{}, h2.NopHandler{}, h2run.Now())
	r.Init(sc, func() { laters++ })
	r.Kick()
	r.WriteOut()
	r.ArmTimer()
	if laters != 0 || r.Kicked() || r.Attached() {
		t.Fatalf("unattached: %d flushes scheduled, kicked %v, attached %v", laters, r.Kicked(), r.Attached())
	}
	if sc.OutputLen() == 0 {
		t.Fatal("the client preface was not kept in the codec")
	}
}
