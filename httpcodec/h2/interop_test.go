package h2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
)

// Interop: a Conn driven over net.Pipe against a real HTTP/2 peer. The
// package has no goroutines; the test harness does, playing the event
// loop: a reader goroutine hands chunks to the loop, the loop is the only
// goroutine touching the Conn, a writer goroutine drains output.
//
// The peers are net/http's HTTP/2 (the bundled copy of
// golang.org/x/net/http2) and, from xnet_test.go, x/net/http2's
// Server.ServeConn and Transport.NewClientConn.

// peerServer serves h on one end of a connection.
type peerServer struct {
	name  string
	serve func(t *testing.T, nc net.Conn, h http.Handler)
}

// peerClient returns a RoundTripper whose connections come from dial.
type peerClient struct {
	name string
	rt   func(t *testing.T, dial func() net.Conn) http.RoundTripper
}

var (
	peerServers = []peerServer{{"net/http", serveNetHTTP}}
	peerClients = []peerClient{{"net/http", netHTTPClient}}
)

// oneConnListener hands out one connection, then blocks until closed.
type oneConnListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *oneConnListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *oneConnListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

func serveNetHTTP(t *testing.T, nc net.Conn, h http.Handler) {
	srv := &http.Server{Handler: h, Protocols: new(http.Protocols)}
	srv.Protocols.SetUnencryptedHTTP2(true)
	l := &oneConnListener{ch: make(chan net.Conn, 1), done: make(chan struct{})}
	l.ch <- nc
	go srv.Serve(l)
	t.Cleanup(func() { l.Close(); srv.Close() })
}

func netHTTPClient(t *testing.T, dial func() net.Conn) http.RoundTripper {
	tr := &http.Transport{
		Protocols: new(http.Protocols),
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			return dial(), nil
		},
	}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// loop owns one Conn and the goroutines around it.
type loop struct {
	t     *testing.T
	nc    net.Conn
	c     *Conn
	tasks chan func()
	done  chan struct{}
	err   error  // the Conn's error, set on the loop
	post  func() // runs after each Feed, like work an event loop defers
}

// startLoop runs the event loop for c on nc. mk builds the Conn once the
// loop exists, so handlers can refer to it.
func startLoop(t *testing.T, nc net.Conn, mk func(l *loop) *Conn) *loop {
	l := &loop{t: t, nc: nc, tasks: make(chan func(), 64), done: make(chan struct{})}
	l.c = mk(l)
	reads := make(chan []byte, 16)
	writes := make(chan []byte, 4096)
	go func() { // reader
		defer close(reads)
		for {
			b := make([]byte, 32<<10)
			n, err := nc.Read(b)
			if n > 0 {
				reads <- b[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { // writer
		for b := range writes {
			if _, err := nc.Write(b); err != nil {
				for range writes {
				}
				return
			}
		}
	}()
	go func() { // the loop
		defer close(l.done)
		defer close(writes)
		defer nc.Close()
		var in []byte
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		flush := func() bool {
			if out := l.c.AppendOutput(nil); len(out) > 0 {
				writes <- out
			}
			if d := l.c.NextDeadline(); !d.IsZero() {
				timer.Reset(time.Until(d))
			}
			return l.c.Err() == nil
		}
		flush()
		for {
			select {
			case b, ok := <-reads:
				if !ok {
					return
				}
				in = append(in, b...)
				n, err := l.c.Feed(time.Now(), in)
				in = append(in[:0], in[n:]...)
				if l.post != nil && err == nil {
					l.post()
				}
				if err != nil {
					l.err = err
					flush()
					time.Sleep(10 * time.Millisecond) // let the GOAWAY out
					return
				}
			case fn := <-l.tasks:
				fn()
			case now := <-timer.C:
				l.c.OnTimer(now)
			}
			if !flush() {
				l.err = l.c.Err()
				time.Sleep(10 * time.Millisecond)
				return
			}
		}
	}()
	t.Cleanup(func() {
		nc.Close()
		<-l.done
	})
	return l
}

// run executes fn on the loop and waits for it.
func (l *loop) run(fn func()) {
	ch := make(chan struct{})
	select {
	case l.tasks <- func() { fn(); close(ch) }:
		<-ch
	case <-l.done:
	}
}

// serverApp is the origin behind a server-role Conn:
//
//	GET  /hello       200 "hello"
//	POST /echo        200, the request body, trailer x-len and the request's x-req-trailer
//	GET  /big?n=N     200, N pattern bytes, content-length
type serverApp struct {
	NopHandler
	c       *Conn
	streams map[uint32]*appStream
	slow    bool // consume request DATA in batches, not at once
	defer_  bool // answer after Feed returns, as a proxy waiting on its upstream would
	ready   []uint32
}

type appStream struct {
	method, path string
	body         []byte
	reqTrailers  []hpack.HeaderField
	out          []byte
	trailers     []hpack.HeaderField
	unconsumed   int
}

func newServerApp() *serverApp { return &serverApp{streams: map[uint32]*appStream{}} }

func (a *serverApp) OnHeaders(id uint32, h *Headers) {
	a.streams[id] = &appStream{method: h.Method, path: h.Path}
	if h.EndStream {
		a.respond(id)
	}
}

func (a *serverApp) OnData(id uint32, data []byte, es bool) {
	s := a.streams[id]
	if s == nil {
		a.c.Consumed(id, len(data))
		return
	}
	s.body = append(s.body, data...)
	s.unconsumed += len(data)
	// Batches must stay under the stream window, or the peer stalls
	// waiting for credit we wait to give: the caller's side of the deal.
	if !a.slow || s.unconsumed >= 16<<10 || es {
		a.c.Consumed(id, s.unconsumed)
		s.unconsumed = 0
	}
	if es {
		a.respond(id)
	}
}

func (a *serverApp) OnTrailers(id uint32, fields []hpack.HeaderField) {
	if s := a.streams[id]; s != nil {
		s.reqTrailers = append([]hpack.HeaderField(nil), fields...)
		a.respond(id)
	}
}

func (a *serverApp) OnReset(id uint32, err *StreamError) { delete(a.streams, id) }

func (a *serverApp) OnWindowOpen(id uint32) { a.writePending(id) }

func (a *serverApp) respond(id uint32) {
	if a.defer_ {
		a.ready = append(a.ready, id)
		return
	}
	a.respondNow(id)
}

// flushReady answers the requests respond deferred.
func (a *serverApp) flushReady() {
	for _, id := range a.ready {
		if a.streams[id] != nil {
			a.respondNow(id)
		}
	}
	a.ready = a.ready[:0]
}

func (a *serverApp) respondNow(id uint32) {
	s := a.streams[id]
	status := "200"
	fields := []hpack.HeaderField{hf(":status", status)}
	switch {
	case s.path == "/hello":
		s.out = []byte("hello")
	case s.path == "/echo":
		s.out = s.body
		s.trailers = []hpack.HeaderField{hf("x-len", strconv.Itoa(len(s.body)))}
		for _, f := range s.reqTrailers {
			if f.Name == "x-req-trailer" {
				s.trailers = append(s.trailers, hf("x-req-trailer", f.Value))
			}
		}
	case strings.HasPrefix(s.path, "/big?n="):
		n, _ := strconv.Atoi(strings.TrimPrefix(s.path, "/big?n="))
		s.out = pattern(n)
		fields = append(fields, hf("content-length", strconv.Itoa(n)))
	default:
		fields[0].Value = "404"
		s.out = []byte("not found")
	}
	if err := a.c.WriteHeaders(id, fields, len(s.out) == 0 && s.trailers == nil); err != nil {
		panic(err)
	}
	a.writePending(id)
}

func (a *serverApp) writePending(id uint32) {
	s := a.streams[id]
	if s == nil || (len(s.out) == 0 && s.trailers == nil) {
		delete(a.streams, id)
		return
	}
	n, err := a.c.WriteData(id, s.out, s.trailers == nil)
	if err != nil {
		delete(a.streams, id)
		return
	}
	s.out = s.out[n:]
	if len(s.out) > 0 {
		return // OnWindowOpen will call again
	}
	if s.trailers != nil {
		a.c.WriteTrailers(id, s.trailers)
	}
	delete(a.streams, id)
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26 + i/4096%7)
	}
	return b
}

// startServer returns an http.Client whose connections each end in a
// fresh server-role Conn serving serverApp.
func startServer(t *testing.T, pc peerClient, cfg Config, slow bool) *http.Client {
	dial := func() net.Conn {
		c1, c2 := net.Pipe()
		startLoop(t, c2, func(l *loop) *Conn {
			app := newServerApp()
			app.slow = slow
			app.c = NewConn(Server, cfg, app, time.Now())
			return app.c
		})
		return c1
	}
	return &http.Client{Transport: pc.rt(t, dial), Timeout: 30 * time.Second}
}

func TestInteropServerRole(t *testing.T) {
	for _, pc := range peerClients {
		t.Run(pc.name, func(t *testing.T) {
			t.Run("GET", func(t *testing.T) {
				cl := startServer(t, pc, Config{}, false)
				resp, err := cl.Get("http://sluice.test/hello")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.ProtoMajor != 2 || string(body) != "hello" {
					t.Fatalf("proto %d body %q", resp.ProtoMajor, body)
				}
			})
			t.Run("POST echo with trailers", func(t *testing.T) {
				cl := startServer(t, pc, Config{}, false)
				body := pattern(300 << 10)
				req, _ := http.NewRequest("POST", "http://sluice.test/echo", io.MultiReader(bytes.NewReader(body)))
				req.Trailer = http.Header{"X-Req-Trailer": nil}
				req.Body = &trailerBody{r: bytes.NewReader(body), set: func() { req.Trailer.Set("X-Req-Trailer", "t-value") }}
				req.ContentLength = -1
				resp, err := cl.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !bytes.Equal(got, body) {
					t.Fatalf("echo of %d bytes returned %d", len(body), len(got))
				}
				if resp.Trailer.Get("X-Len") != strconv.Itoa(len(body)) || resp.Trailer.Get("X-Req-Trailer") != "t-value" {
					t.Fatalf("trailers %v", resp.Trailer)
				}
			})
			t.Run("large bodies under flow control", func(t *testing.T) {
				// Small windows on our side, batched Consumed: the client
				// blocks on our windows, we block on its windows.
				cl := startServer(t, pc, Config{InitialStreamWindow: 32 << 10, ConnWindow: 96 << 10}, true)
				body := pattern(1 << 20)
				resp, err := cl.Post("http://sluice.test/echo", "application/octet-stream", bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if sha256.Sum256(got) != sha256.Sum256(body) {
					t.Fatalf("echo differs: %d bytes", len(got))
				}
				resp, err = cl.Get("http://sluice.test/big?n=" + strconv.Itoa(4<<20))
				if err != nil {
					t.Fatal(err)
				}
				got, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				if sha256.Sum256(got) != sha256.Sum256(pattern(4<<20)) {
					t.Fatalf("download differs: %d bytes", len(got))
				}
			})
			t.Run("many concurrent streams", func(t *testing.T) {
				cl := startServer(t, pc, Config{MaxConcurrentStreams: 50}, false)
				var wg sync.WaitGroup
				errs := make(chan error, 300)
				for i := range 300 {
					wg.Go(func() {
						body := pattern(1000 + i*37)
						resp, err := cl.Post("http://sluice.test/echo", "x", bytes.NewReader(body))
						if err != nil {
							errs <- err
							return
						}
						got, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if !bytes.Equal(got, body) {
							errs <- fmt.Errorf("request %d: echo differs", i)
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
			})
		})
	}
}

// trailerBody sets request trailers when the body hits EOF, as net/http
// requires.
type trailerBody struct {
	r   io.Reader
	set func()
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.set()
	}
	return n, err
}
func (b *trailerBody) Close() error { return nil }

// clientApp sends requests through a client-role Conn and collects
// responses, queueing requests while the server's stream limit is reached.
type clientApp struct {
	NopHandler
	c       *Conn
	waiting []*clientReq
	active  map[uint32]*clientReq
	slow    bool
}

type clientReq struct {
	fields   []hpack.HeaderField
	body     []byte
	trailers []hpack.HeaderField
	done     chan *clientResp
	resp     clientResp
	id       uint32
}

type clientResp struct {
	status   int
	header   []hpack.HeaderField
	body     []byte
	trailers []hpack.HeaderField
	err      error
	held     int
}

func (a *clientApp) submit(r *clientReq) {
	a.waiting = append(a.waiting, r)
	a.tryStart()
}

func (a *clientApp) tryStart() {
	for len(a.waiting) > 0 && a.c.CanOpenStream() {
		r := a.waiting[0]
		a.waiting = a.waiting[1:]
		id, err := a.c.OpenStream(r.fields, len(r.body) == 0 && r.trailers == nil)
		if err != nil {
			r.resp.err = err
			r.done <- &r.resp
			continue
		}
		r.id = id
		a.active[id] = r
		a.sendBody(id)
	}
}

func (a *clientApp) sendBody(id uint32) {
	r := a.active[id]
	if r == nil || (len(r.body) == 0 && r.trailers == nil) {
		return
	}
	n, err := a.c.WriteData(id, r.body, r.trailers == nil)
	if err != nil {
		return
	}
	r.body = r.body[n:]
	if len(r.body) == 0 && r.trailers != nil {
		a.c.WriteTrailers(id, r.trailers)
		r.trailers = nil
	}
}

func (a *clientApp) finish(id uint32, err error) {
	r := a.active[id]
	if r == nil {
		return
	}
	delete(a.active, id)
	if r.resp.held > 0 {
		a.c.Consumed(id, r.resp.held)
	}
	r.resp.err = err
	r.done <- &r.resp
	a.tryStart()
}

func (a *clientApp) OnHeaders(id uint32, h *Headers) {
	r := a.active[id]
	if r == nil || h.Status < 200 {
		return
	}
	r.resp.status = h.Status
	r.resp.header = append([]hpack.HeaderField(nil), h.Fields...)
	if h.EndStream {
		a.finish(id, nil)
	}
}

func (a *clientApp) OnData(id uint32, data []byte, es bool) {
	r := a.active[id]
	if r == nil {
		a.c.Consumed(id, len(data))
		return
	}
	r.resp.body = append(r.resp.body, data...)
	r.resp.held += len(data)
	if !a.slow || r.resp.held >= 64<<10 {
		a.c.Consumed(id, r.resp.held)
		r.resp.held = 0
	}
	if es {
		a.finish(id, nil)
	}
}

func (a *clientApp) OnTrailers(id uint32, fields []hpack.HeaderField) {
	if r := a.active[id]; r != nil {
		r.resp.trailers = append([]hpack.HeaderField(nil), fields...)
		a.finish(id, nil)
	}
}

func (a *clientApp) OnReset(id uint32, err *StreamError) { a.finish(id, err) }
func (a *clientApp) OnWindowOpen(id uint32)              { a.sendBody(id) }
func (a *clientApp) OnSettings(Settings)                 { a.tryStart() }

// startClient connects a client-role Conn to a peer server running h.
func startClient(t *testing.T, ps peerServer, h http.Handler, cfg Config, slow bool) (*loop, *clientApp) {
	c1, c2 := net.Pipe()
	ps.serve(t, c2, h)
	app := &clientApp{active: map[uint32]*clientReq{}, slow: slow}
	l := startLoop(t, c1, func(l *loop) *Conn {
		app.c = NewConn(Client, cfg, app, time.Now())
		return app.c
	})
	return l, app
}

func (l *loop) do(app *clientApp, r *clientReq) *clientResp {
	r.done = make(chan *clientResp, 1)
	l.run(func() { app.submit(r) })
	select {
	case resp := <-r.done:
		return resp
	case <-time.After(30 * time.Second):
		l.t.Fatal("request timed out")
	case <-l.done:
		l.t.Fatalf("connection ended: %v", l.err)
	}
	return nil
}

func request(method, path string, extra ...hpack.HeaderField) []hpack.HeaderField {
	return append([]hpack.HeaderField{hf(":method", method), hf(":scheme", "http"), hf(":authority", "upstream.test"), hf(":path", path)}, extra...)
}

func getField(fields []hpack.HeaderField, name string) string {
	for _, f := range fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// upstreamHandler is the origin for client-role tests.
func upstreamHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "not h2", 500)
			return
		}
		io.WriteString(w, "hello from upstream")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Len, X-Req-Trailer")
		n, _ := io.Copy(w, r.Body)
		w.Header().Set("X-Len", strconv.FormatInt(n, 10))
		w.Header().Set("X-Req-Trailer", r.Trailer.Get("X-Req-Trailer"))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(pattern(n))
	})
	return mux
}

func TestInteropClientRole(t *testing.T) {
	for _, ps := range peerServers {
		t.Run(ps.name, func(t *testing.T) {
			t.Run("GET", func(t *testing.T) {
				l, app := startClient(t, ps, upstreamHandler(), Config{}, false)
				resp := l.do(app, &clientReq{fields: request("GET", "/hello")})
				if resp.err != nil || resp.status != 200 || string(resp.body) != "hello from upstream" {
					t.Fatalf("%+v", resp)
				}
			})
			t.Run("POST echo with trailers", func(t *testing.T) {
				l, app := startClient(t, ps, upstreamHandler(), Config{}, false)
				body := pattern(500 << 10)
				resp := l.do(app, &clientReq{
					fields:   request("POST", "/echo", hf("trailer", "x-req-trailer")),
					body:     body,
					trailers: []hpack.HeaderField{hf("x-req-trailer", "from-sluice")},
				})
				if resp.err != nil || !bytes.Equal(resp.body, body) {
					t.Fatalf("err %v, %d bytes back", resp.err, len(resp.body))
				}
				if getField(resp.trailers, "x-len") != strconv.Itoa(len(body)) || getField(resp.trailers, "x-req-trailer") != "from-sluice" {
					t.Fatalf("trailers %v", resp.trailers)
				}
			})
			t.Run("large download under flow control", func(t *testing.T) {
				l, app := startClient(t, ps, upstreamHandler(), Config{InitialStreamWindow: 64 << 10, ConnWindow: 128 << 10}, true)
				const n = 4 << 20
				resp := l.do(app, &clientReq{fields: request("GET", "/big?n="+strconv.Itoa(n))})
				if resp.err != nil || sha256.Sum256(resp.body) != sha256.Sum256(pattern(n)) {
					t.Fatalf("err %v, %d bytes", resp.err, len(resp.body))
				}
				var held int64
				l.run(func() { held = l.c.recvHeld })
				if held != 0 {
					t.Fatalf("%d bytes never consumed", held)
				}
			})
			t.Run("many concurrent streams", func(t *testing.T) {
				l, app := startClient(t, ps, upstreamHandler(), Config{}, false)
				var wg sync.WaitGroup
				errs := make(chan error, 500)
				for i := range 500 {
					wg.Go(func() {
						body := pattern(100 + i*13)
						resp := l.do(app, &clientReq{fields: request("POST", "/echo"), body: body})
						if resp.err != nil || !bytes.Equal(resp.body, body) {
							errs <- fmt.Errorf("request %d: %v", i, resp.err)
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
				var opened uint64
				l.run(func() { opened = l.c.Stats().StreamsOpened })
				if opened != 500 {
					t.Fatalf("opened %d streams", opened)
				}
			})
			t.Run("graceful shutdown", func(t *testing.T) {
				l, app := startClient(t, ps, upstreamHandler(), Config{}, false)
				resp := l.do(app, &clientReq{fields: request("GET", "/hello")})
				if resp.err != nil {
					t.Fatal(resp.err)
				}
				var drained bool
				var err error
				l.run(func() {
					l.c.Shutdown(time.Now())
					drained = l.c.Drained()
					_, err = l.c.OpenStream(request("GET", "/hello"), true)
				})
				if !drained {
					t.Fatal("not drained with no streams")
				}
				if !errors.Is(err, ErrGoAway) {
					t.Fatalf("request after Shutdown: %v", err)
				}
			})
		})
	}
}

// TestInteropServerShutdown: our server Shutdown while a net/http client
// has requests in flight; they complete and the client moves to a new
// connection for later requests.
func TestInteropServerShutdown(t *testing.T) {
	for _, pc := range peerClients {
		t.Run(pc.name, func(t *testing.T) {
			var mu sync.Mutex
			var loops []*loop
			dial := func() net.Conn {
				c1, c2 := net.Pipe()
				l := startLoop(t, c2, func(l *loop) *Conn {
					app := newServerApp()
					app.c = NewConn(Server, Config{}, app, time.Now())
					return app.c
				})
				mu.Lock()
				loops = append(loops, l)
				mu.Unlock()
				return c1
			}
			cl := &http.Client{Transport: pc.rt(t, dial), Timeout: 30 * time.Second}
			get := func() {
				resp, err := cl.Get("http://sluice.test/big?n=100000")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if len(b) != 100000 {
					t.Fatalf("%d bytes", len(b))
				}
			}
			get()
			mu.Lock()
			first := loops[0]
			mu.Unlock()
			var drained bool
			first.run(func() { first.c.Shutdown(time.Now()) })
			deadline := time.Now().Add(10 * time.Second)
			for !drained && time.Now().Before(deadline) {
				first.run(func() { drained = first.c.Drained() })
				time.Sleep(5 * time.Millisecond)
			}
			if !drained {
				t.Fatal("first connection never drained")
			}
			get()
			mu.Lock()
			n := len(loops)
			mu.Unlock()
			if n != 2 {
				t.Fatalf("%d connections, want a second one after GOAWAY", n)
			}
		})
	}
}
