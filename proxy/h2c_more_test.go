package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawH2CServer is a hand-driven h2c upstream: serve runs on each accepted
// connection with a framer past the preface and SETTINGS exchange.
func rawH2CServer(t *testing.T, serve func(c *rawUp)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				pre := make([]byte, len(http2.ClientPreface))
				if _, err := io.ReadFull(c, pre); err != nil {
					return
				}
				u := &rawUp{c: c, n: n, fr: http2.NewFramer(c, c)}
				u.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
				u.enc = hpack.NewEncoder(&u.hb)
				u.fr.WriteSettings()
				serve(u)
			}()
		}
	}()
	return ln.Addr().String()
}

type rawUp struct {
	c   net.Conn
	n   int // connection number, from 0
	fr  *http2.Framer
	hb  bytes.Buffer
	enc *hpack.Encoder
}

// request reads frames until a request's HEADERS; other frames are
// answered (SETTINGS, PING) or returned through seen.
func (u *rawUp) request(seen func(http2.Frame)) (*http2.MetaHeadersFrame, error) {
	for {
		f, err := u.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			return f, nil
		case *http2.SettingsFrame:
			if !f.IsAck() {
				u.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				u.fr.WritePing(true, f.Data)
			}
		default:
			if seen != nil {
				seen(f)
			}
		}
	}
}

func (u *rawUp) respond(id uint32, body string) {
	u.hb.Reset()
	u.enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	u.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, BlockFragment: u.hb.Bytes()})
	u.fr.WriteData(id, true, []byte(body))
}

// A stream above the last stream id of the upstream's GOAWAY was not
// processed: it is retried on a new connection, a POST with its body too.
func TestH2CGoAwayRetries(t *testing.T) {
	var conns atomic.Int64
	up := rawH2CServer(t, func(u *rawUp) {
		conns.Add(1)
		if u.n == 0 {
			// Take two streams, process the first, refuse the second by
			// GOAWAY.
			a, err := u.request(nil)
			if err != nil {
				return
			}
			b, err := u.request(nil)
			if err != nil {
				return
			}
			first, _ := a.StreamID, b.StreamID
			u.fr.WriteGoAway(first, http2.ErrCodeNo, nil)
			u.respond(first, "first")
			time.Sleep(200 * time.Millisecond)
			return
		}
		for {
			h, err := u.request(nil)
			if err != nil {
				return
			}
			body := ""
			if !h.StreamEnded() {
				for {
					f, err := u.fr.ReadFrame()
					if err != nil {
						return
					}
					if d, ok := f.(*http2.DataFrame); ok && d.StreamID == h.StreamID {
						body += string(d.Data())
						if d.StreamEnded() {
							break
						}
					}
				}
			}
			u.respond(h.StreamID, "retried "+h.PseudoValue("method")+" "+body)
		}
	})
	env := h2Start(t, HTTPConfig{}, "h2c://"+up)
	r := rawH2Dial(t, env.addr, false)
	r.get(1, "/a")
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: true,
		BlockFragment: r.block(":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/b")})
	r.fr.WriteData(3, true, []byte("payload"))
	bodies := map[uint32]string{}
	ended := 0
	for ended < 2 {
		f, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			bodies[f.StreamID] += string(f.Data())
			if f.StreamEnded() {
				ended++
			}
		case *http2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "200" {
				t.Fatalf("stream %d status %s", f.StreamID, s)
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("stream %d reset %v", f.StreamID, f.ErrCode)
		}
	}
	if bodies[1] != "first" || bodies[3] != "retried POST payload" {
		t.Fatalf("bodies %v", bodies)
	}
	if conns.Load() != 2 {
		t.Errorf("upstream connections %d, want 2", conns.Load())
	}
	if v := env.metric(`sluice_http2_goaways_total{direction="received",code="NO_ERROR"}`); v != 1 {
		t.Errorf("goaways received = %v", v)
	}
}

// The upstream's SETTINGS_MAX_CONCURRENT_STREAMS is respected: 40
// concurrent streams to an upstream that allows 10 per connection spread
// over more connections, and every one succeeds (the first connection's
// excess, sent before its SETTINGS arrived, is refused and retried).
func TestH2CMaxConcurrentStreamsMoreConnections(t *testing.T) {
	var active, peak atomic.Int64
	release := make(chan struct{})
	be := h2cServeWith(t, &http2.Server{MaxConcurrentStreams: 10}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := active.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		active.Add(-1)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	env := h2Start(t, HTTPConfig{}, be.url())
	cl := h2cClient()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := cl.Get(env.h2cURL(fmt.Sprintf("/%d", i)))
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "ok" {
				errs <- fmt.Errorf("%d %q", resp.StatusCode, b)
			}
		}()
	}
	hpEventually(t, "40 requests at the upstream", func() bool { return active.Load() == 40 })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := be.conns.Load(); n < 4 {
		t.Errorf("upstream connections %d, want at least 4 (10 streams each)", n)
	}
	refused := env.metric(`sluice_http2_rst_streams_total{direction="received",code="REFUSED_STREAM"}`)
	retries := env.metric("sluice_http_retries_total")
	t.Logf("%d upstream connections for 40 concurrent streams; %v refused (REFUSED_STREAM) and retried %v times",
		be.conns.Load(), refused, retries)
	if retries != refused {
		t.Errorf("%v streams refused, %v retries", refused, retries)
	}
}

// Drain: an h2c upstream connection gets GOAWAY from sluice, its stream in
// flight completes, then it closes.
func TestH2CUpstreamDrain(t *testing.T) {
	sawGoAway := make(chan struct{}, 1)
	release := make(chan struct{})
	up := rawH2CServer(t, func(u *rawUp) {
		h, err := u.request(nil)
		if err != nil {
			return
		}
		go func() {
			for {
				f, err := u.fr.ReadFrame()
				if err != nil {
					return
				}
				if _, ok := f.(*http2.GoAwayFrame); ok {
					sawGoAway <- struct{}{}
				}
			}
		}()
		<-release
		u.respond(h.StreamID, "after drain")
		time.Sleep(100 * time.Millisecond)
	})
	env := h2Start(t, HTTPConfig{}, "h2c://"+up)
	resc := make(chan string, 1)
	go func() {
		resp, err := h2cClient().Get(env.h2cURL("/"))
		if err != nil {
			resc <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resc <- string(b)
	}()
	time.Sleep(200 * time.Millisecond)
	go env.e.Drain(context.Background())
	select {
	case <-sawGoAway:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream saw no GOAWAY")
	}
	close(release)
	if got := <-resc; got != "after drain" {
		t.Fatalf("response %q", got)
	}
	select {
	case <-env.e.Idle():
	case <-time.After(10 * time.Second):
		t.Fatal("not idle after the drain")
	}
}

// A POST to an h2c upstream whose dial fails goes to the next upstream,
// body whole, from HTTP/2 and HTTP/1.1 clients alike: the stream's body
// waits with the client until its connection is open, so nothing of it
// was taken (bodies up to 250 KB, past the stream window and the retry
// hold).
func TestH2CRetryPostAfterDialFailure(t *testing.T) {
	for _, h1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h1client=%v", h1), func(t *testing.T) {
			var got atomic.Int64
			be := h2cServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got.Add(1)
				w.Write(b)
			}))
			dead := "h2c://" + hpDeadAddr(t)
			env := h2Start(t, HTTPConfig{MaxFails: -1}, dead, be.url())
			cl, url := h2cClient(), env.h2cURL("/")
			if h1 {
				cl, url = hpClient(), env.url("/")
			}
			postsRetried(t, env.hpEnv, cl, url, &got, dead, func(i int) string {
				return strings.Repeat(fmt.Sprintf("post %d ", i), 1+i*6000)
			})
			hpSettled(t, env.hpEnv)
		})
	}
}
