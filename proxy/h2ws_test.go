package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/websocket"
)

// WebSocket over HTTP/2 (RFC 8441) tests: a hand-driven HTTP/2 client
// (rawH2) opens extended CONNECT streams; the upstream is x/net's
// WebSocket server behind net/http.

// wsStream reads one stream's DATA as a byte stream (granting the window
// back as it goes), so RFC 6455 frames can be read across DATA frames.
type wsStream struct {
	r      *rawH2
	id     uint32
	buf    bytes.Buffer
	end    bool  // END_STREAM seen
	rst    error // RST_STREAM seen
	status string
	fields map[string]string
	// noGrant: DATA read is not granted back (the test opens windows).
	noGrant bool
}

func (s *wsStream) Read(p []byte) (int, error) {
	for s.buf.Len() == 0 {
		if s.end {
			return 0, io.EOF
		}
		if s.rst != nil {
			return 0, s.rst
		}
		if err := s.readFrame(); err != nil {
			return 0, err
		}
	}
	return s.buf.Read(p)
}

// readFrame takes the next frame of the connection that concerns s.
func (s *wsStream) readFrame() error {
	f, err := s.r.next()
	if err != nil {
		return err
	}
	if f.Header().StreamID != s.id {
		return nil
	}
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		if s.status == "" {
			s.fields = map[string]string{}
			for _, hf := range f.Fields {
				s.fields[hf.Name] = hf.Value
			}
			s.status = s.fields[":status"]
		}
		s.end = s.end || f.StreamEnded()
	case *http2.DataFrame:
		s.buf.Write(f.Data())
		if n := uint32(len(f.Data())); n > 0 && !s.noGrant {
			s.r.fr.WriteWindowUpdate(0, n)
			s.r.fr.WriteWindowUpdate(s.id, n)
		}
		s.end = s.end || f.StreamEnded()
	case *http2.RSTStreamFrame:
		s.rst = fmt.Errorf("RST_STREAM %v", f.ErrCode)
	}
	return nil
}

// head waits for the response head.
func (s *wsStream) head(t *testing.T) {
	t.Helper()
	for s.status == "" {
		if s.rst != nil {
			t.Fatalf("stream reset before its head: %v", s.rst)
		}
		if err := s.readFrame(); err != nil {
			t.Fatal(err)
		}
	}
}

// send writes b as DATA frames of at most 16 KiB.
func (s *wsStream) send(t *testing.T, b []byte, end bool) {
	t.Helper()
	for len(b) > 0 || end {
		k := min(len(b), 16384)
		last := k == len(b)
		if err := s.r.fr.WriteData(s.id, end && last, b[:k]); err != nil {
			t.Fatal(err)
		}
		b = b[k:]
		if last {
			return
		}
	}
}

// openWS sends an extended CONNECT for path on stream id.
func openWS(t *testing.T, r *rawH2, id uint32, path string, extra ...string) *wsStream {
	t.Helper()
	kv := append([]string{":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":authority", "ws.test",
		":path", path, "sec-websocket-version", "13", "origin", "https://ws.test"}, extra...)
	r.writeBlock(id, r.block(kv...), false)
	return &wsStream{r: r, id: id}
}

// wsRawUpstream is a hand-written HTTP/1.1 upstream: serve runs on each
// connection's first request.
func wsRawUpstream(t *testing.T, serve func(c net.Conn, br *bufio.Reader, req *http.Request)) string {
	return hpRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		serve(c, br, req)
	})
}

// wsAccept101 answers a WebSocket handshake with its 101.
func wsAccept101(c net.Conn, req *http.Request) {
	fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		wsAccept(req.Header.Get("Sec-WebSocket-Key")))
}

// wsEchoBackend is x/net's WebSocket server echoing each message; it
// counts connections and records the subprotocol asked for.
func wsEchoBackend(t *testing.T, conns *atomic.Int64) *hpBackend {
	return hpServe(t, websocket.Server{Handler: func(ws *websocket.Conn) {
		conns.Add(1)
		for {
			var m []byte
			if err := websocket.Message.Receive(ws, &m); err != nil {
				return
			}
			if err := websocket.Message.Send(ws, m); err != nil {
				return
			}
		}
	}})
}

// A WebSocket over HTTP/2, on the TLS port and the h2c port: the setting
// is advertised, the handshake becomes :status 200 with the upstream's
// subprotocol and no Sec-WebSocket-Accept, messages up to 1 MiB echo
// whole across many DATA frames (window granted as read), and a close
// frame then END_STREAM ends both sides cleanly and is logged once.
func TestH2WebSocket(t *testing.T) {
	var conns atomic.Int64
	be := wsEchoBackend(t, &conns)
	env := h2Start(t, HTTPConfig{}, be.addr())
	for _, tlsOn := range []bool{true, false} {
		addr := env.addr
		if tlsOn {
			addr = env.tlsAddr
		}
		r := rawH2Dial(t, addr, tlsOn, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		if r.peer[http2.SettingEnableConnectProtocol] != 1 {
			t.Fatalf("tls=%v: SETTINGS_ENABLE_CONNECT_PROTOCOL = %d, want 1", tlsOn, r.peer[http2.SettingEnableConnectProtocol])
		}
		r.fr.WriteWindowUpdate(0, 1<<30)
		s := openWS(t, r, 1, "/chat", "sec-websocket-protocol", "chat")
		s.head(t)
		if s.status != "200" || s.fields["sec-websocket-protocol"] != "chat" || s.fields["sec-websocket-accept"] != "" || s.end {
			t.Fatalf("tls=%v: head %v (end %v)", tlsOn, s.fields, s.end)
		}
		br := bufio.NewReader(s)
		for i, size := range []int{5, 125, 126, 70000, 1 << 20} {
			msg := bytes.Repeat([]byte{byte('a' + i)}, size)
			var fb bytes.Buffer
			wsWriteFrame(&fb, 0x2, msg, []byte{9, 8, 7, 6})
			s.send(t, fb.Bytes(), false)
			op, p, err := wsReadFrame(br)
			if err != nil || op != 2 || !bytes.Equal(p, msg) {
				t.Fatalf("tls=%v: echo of %d bytes: op %d, %d bytes, %v", tlsOn, size, op, len(p), err)
			}
		}
		// A close frame, then END_STREAM: x/net's server ends its side
		// (FIN, and no close frame of its own), which ends the stream.
		var fb bytes.Buffer
		wsWriteFrame(&fb, 0x8, []byte{0x03, 0xe8}, []byte{1, 2, 3, 4})
		s.send(t, fb.Bytes(), true)
		rest, err := io.ReadAll(br)
		if err != nil || s.rst != nil || !s.end || len(rest) > 0 && rest[0] != 0x88 {
			t.Fatalf("tls=%v: after the close: %q, %v (reset %v), want END_STREAM", tlsOn, rest, err, s.rst)
		}
	}
	recs := env.log.wait(t, 2)
	for _, rec := range recs {
		if rec["status"] != int64(200) || rec["method"] != "CONNECT" || rec["path"] != "/chat" || rec["end"] != "ok" {
			t.Errorf("access log: %v", rec)
		}
	}
	if conns.Load() != 2 {
		t.Errorf("upstream WebSocket connections %d, want 2", conns.Load())
	}
	if v := env.metric(`sluice_http_tunnels_total{proto="h2"}`); v != 2 {
		t.Errorf("tunnels_total{h2} = %v, want 2", v)
	}
	if v := env.metric(`sluice_http_tunnels_active{proto="h2"}`); v != 0 {
		t.Errorf("tunnels_active{h2} = %v after both ended", v)
	}
	hpSettled(t, env.hpEnv)
}

// The upstream's other answers: a refusal passes on as an ordinary
// response; a 101 whose Sec-WebSocket-Accept is not for sluice's key is
// 502; an extended CONNECT without sec-websocket-version 13 is 400; a
// plain CONNECT stays 405.
func TestH2WebSocketRefusals(t *testing.T) {
	up := hpRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/refuse": // keep-alive: the next request may come on this connection
				io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nno ws\n")
			case "/badaccept":
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
					"Sec-WebSocket-Accept: "+wsAccept("someone else's key")+"\r\n\r\n")
				io.Copy(io.Discard, c)
				return
			}
		}
	})
	env := h2Start(t, HTTPConfig{Retries: -1}, up)
	r := rawH2Dial(t, env.addr, false)
	for _, c := range []struct {
		id     uint32
		path   string
		extra  []string
		status string
	}{
		{1, "/refuse", nil, "403"},
		{3, "/badaccept", nil, "502"},
	} {
		s := openWS(t, r, c.id, c.path, c.extra...)
		s.head(t)
		if s.status != c.status {
			t.Fatalf("%s: status %s, want %s", c.path, s.status, c.status)
		}
	}
	r.writeBlock(5, r.block(":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":authority", "ws.test", ":path", "/v"), false)
	s := &wsStream{r: r, id: 5}
	s.head(t)
	if s.status != "400" {
		t.Fatalf("no sec-websocket-version: status %s, want 400", s.status)
	}
	r.writeBlock(7, r.block(":method", "CONNECT", ":authority", "ws.test:443"), false)
	s = &wsStream{r: r, id: 7}
	s.head(t)
	if s.status != "405" {
		t.Fatalf("plain CONNECT: status %s, want 405", s.status)
	}
}

// Resets cross the tunnel: a client RST_STREAM resets the upstream
// connection, an upstream that dies resets the stream.
func TestH2WebSocketResets(t *testing.T) {
	upErr := make(chan error, 4)
	up := wsRawUpstream(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
		wsAccept101(c, req)
		if req.URL.Path == "/die" {
			io.WriteString(c, "partial")
			c.(*net.TCPConn).SetLinger(0)
			return
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.Copy(io.Discard, br)
		upErr <- err
	})
	env := h2Start(t, HTTPConfig{}, up)
	r := rawH2Dial(t, env.addr, false)
	s := openWS(t, r, 1, "/hold")
	s.head(t)
	if s.status != "200" {
		t.Fatalf("status %s", s.status)
	}
	s.send(t, []byte("bytes on their way"), false)
	r.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	select {
	case err := <-upErr:
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("upstream read ended with %v, want a reset", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream connection outlived the client's RST_STREAM")
	}

	s = openWS(t, r, 3, "/die")
	s.head(t)
	got, err := io.ReadAll(s)
	if err == nil || !strings.Contains(err.Error(), "RST_STREAM") || string(got) != "partial" {
		t.Fatalf("upstream died: read %q, %v; want the bytes then RST_STREAM", got, err)
	}
}

// SETTINGS_ENABLE_CONNECT_PROTOCOL is not advertised with an h2c
// upstream in the configuration or with NoH2WebSocket, and an extended
// CONNECT sent anyway is refused by the codec (RST_STREAM
// PROTOCOL_ERROR).
func TestH2WebSocketNotAdvertised(t *testing.T) {
	var conns atomic.Int64
	be := wsEchoBackend(t, &conns)
	h2c := h2cServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, c := range []struct {
		name string
		cfg  HTTPConfig
	}{
		{"h2c-upstream", HTTPConfig{Routes: []Route{{PathPrefix: "/", Upstreams: []string{be.addr()}},
			{PathPrefix: "/grpc/", Upstreams: []string{h2c.url()}}}}},
		{"disabled", HTTPConfig{NoH2WebSocket: true}},
	} {
		env := h2Start(t, c.cfg, be.addr())
		r := rawH2Dial(t, env.addr, false)
		if v, ok := r.peer[http2.SettingEnableConnectProtocol]; ok && v != 0 {
			t.Fatalf("%s: SETTINGS_ENABLE_CONNECT_PROTOCOL = %d", c.name, v)
		}
		s := openWS(t, r, 1, "/chat")
		for s.rst == nil && s.status == "" {
			if err := s.readFrame(); err != nil {
				t.Fatal(err)
			}
		}
		if s.rst == nil || !strings.Contains(s.rst.Error(), "PROTOCOL_ERROR") {
			t.Fatalf("%s: extended CONNECT got status %q, reset %v; want RST_STREAM PROTOCOL_ERROR", c.name, s.status, s.rst)
		}
	}
	if conns.Load() != 0 {
		t.Fatalf("%d WebSocket connections reached the upstream", conns.Load())
	}
}

// An upstream that bursts 4 MiB into a tunnel whose client window is the
// default 64 KiB and opens only as the client reads: every byte arrives,
// in order (the upstream is paused while the window is shut, then
// resumed), and the upstream's FIN ends the stream.
func TestH2WebSocketBackpressure(t *testing.T) {
	const total = 4 << 20
	pattern := func(i int) byte { return byte(i*7 + i/4096) }
	up := wsRawUpstream(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
		wsAccept101(c, req)
		b := make([]byte, total)
		for i := range b {
			b[i] = pattern(i)
		}
		c.Write(b)
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	})
	env := h2Start(t, HTTPConfig{}, up)
	r := rawH2Dial(t, env.addr, false)
	s := openWS(t, r, 1, "/burst")
	s.head(t)
	time.Sleep(50 * time.Millisecond) // let the burst pile up against the shut window
	got, err := io.ReadAll(s)
	if err != nil || len(got) != total {
		t.Fatalf("read %d of %d bytes: %v", len(got), total, err)
	}
	for i := range got {
		if got[i] != pattern(i) {
			t.Fatalf("byte %d is %d, want %d", i, got[i], pattern(i))
		}
	}
	s.send(t, nil, true) // our side ends too: the upstream connection closes
	if rec := env.log.wait(t, 1)[0]; rec["status"] != int64(200) || rec["end"] != "ok" {
		t.Fatalf("access log: %v", rec)
	}
	hpSettled(t, env.hpEnv)
}

// A tunnel paused by the client's window and resumed keeps the tunnel's
// idle timeout, not the response read timeout: quiet for longer than
// ReadTimeout after a burst, it still carries bytes both ways.
func TestH2WebSocketIdleAfterResume(t *testing.T) {
	up := wsRawUpstream(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
		wsAccept101(c, req)
		c.Write(bytes.Repeat([]byte("b"), 100<<10)) // past the client's 64 KiB window: the rest waits, the upstream paused
		io.Copy(c, br)                              // then an echo
	})
	env := h2Start(t, HTTPConfig{ReadTimeout: 150 * time.Millisecond, TunnelIdleTimeout: 10 * time.Second}, up)
	// A stream window of 0, opened 4 KiB at a time: every upstream read
	// meets a shut window, so the upstream is paused and resumed again and
	// again, the last time with nothing more to send.
	r := rawH2Dial(t, env.addr, false, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	s := openWS(t, r, 1, "/burst")
	s.noGrant = true
	s.head(t)
	got := make([]byte, 4096)
	for i := 0; i < 25; i++ { // 100 KiB
		r.fr.WriteWindowUpdate(0, 4096)
		r.fr.WriteWindowUpdate(1, 4096)
		if _, err := io.ReadFull(s, got); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	r.fr.WriteWindowUpdate(1, 1<<20)   // room for the echo
	time.Sleep(500 * time.Millisecond) // quiet for over three read timeouts
	s.send(t, []byte("still there?"), false)
	echo := make([]byte, len("still there?"))
	if _, err := io.ReadFull(s, echo); err != nil || string(echo) != "still there?" {
		t.Fatalf("after a quiet spell: %q, %v (the tunnel should be open)", echo, err)
	}
}

// A WebSocket client sends nothing until its 200: an upstream slower to
// answer the handshake than IdleTimeout is not the client stalling its
// body (no 408); the upstream's own header timeout is what runs.
func TestH2WebSocketSlowHandshake(t *testing.T) {
	up := wsRawUpstream(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
		time.Sleep(600 * time.Millisecond)
		wsAccept101(c, req)
		io.Copy(c, br)
	})
	env := h2Start(t, HTTPConfig{IdleTimeout: 150 * time.Millisecond}, up)
	r := rawH2Dial(t, env.addr, false)
	s := openWS(t, r, 1, "/slow")
	s.head(t)
	if s.status != "200" {
		t.Fatalf("status %s, want 200 after the slow handshake", s.status)
	}
	s.send(t, []byte("ping"), false)
	got := make([]byte, 4)
	if _, err := io.ReadFull(s, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo %q, %v", got, err)
	}
}
