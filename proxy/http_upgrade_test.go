package proxy

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A minimal WebSocket (RFC 6455) written for the test: the upgrade
// handshake and unfragmented frames, enough for an echo.

// wsAccept and wsGUID are the proxy's own (h2ws.go).

// wsWriteFrame writes one final frame; mask is non-nil for a client.
func wsWriteFrame(w io.Writer, op byte, payload []byte, mask []byte) error {
	hdr := []byte{0x80 | op}
	mbit := byte(0)
	if mask != nil {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, mbit|byte(n))
	case n < 1<<16:
		hdr = append(hdr, mbit|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, mbit|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	p := payload
	if mask != nil {
		hdr = append(hdr, mask...)
		p = make([]byte, len(payload))
		for i := range payload {
			p[i] = payload[i] ^ mask[i%4]
		}
	}
	_, err := w.Write(append(hdr, p...))
	return err
}

// wsReadFrame reads one frame and unmasks it.
func wsReadFrame(r *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return
	}
	op = h[0] & 0x0f
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	var mask []byte
	if h[1]&0x80 != 0 {
		mask = make([]byte, 4)
		if _, err = io.ReadFull(r, mask); err != nil {
			return
		}
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(r, payload); err != nil {
		return
	}
	for i := range payload {
		if mask != nil {
			payload[i] ^= mask[i%4]
		}
	}
	return
}

// wsEchoServer upgrades and echoes every frame until a close frame.
func wsEchoServer(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
		http.Error(w, "not a websocket upgrade", 400)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		wsAccept(r.Header.Get("Sec-WebSocket-Key")))
	brw.Flush()
	for {
		op, p, err := wsReadFrame(brw.Reader)
		if err != nil {
			return
		}
		if err := wsWriteFrame(conn, op, p, nil); err != nil || op == 0x8 {
			return
		}
	}
}

func TestHTTPWebSocketEcho(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(wsEchoServer))
	env := hpStart(t, HTTPConfig{}, be.addr())
	c, br := hpRaw(t, env.addr)
	key := base64.StdEncoding.EncodeToString([]byte("sluice-test-key!"))
	// The first frame rides in the same write as the handshake: it must
	// wait in the proxy until the 101 and then go through the tunnel.
	var first bytes.Buffer
	wsWriteFrame(&first, 0x1, []byte("early"), []byte{1, 2, 3, 4})
	fmt.Fprintf(c, "GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n%s", key, first.Bytes())
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) ||
		!strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	if op, p, err := wsReadFrame(br); err != nil || op != 1 || string(p) != "early" {
		t.Fatalf("early frame: %d %q %v", op, p, err)
	}
	for i, size := range []int{1, 125, 126, 70000, 1 << 20} {
		msg := bytes.Repeat([]byte{byte('a' + i)}, size)
		if err := wsWriteFrame(c, 0x2, msg, []byte{9, 8, 7, 6}); err != nil {
			t.Fatal(err)
		}
		op, p, err := wsReadFrame(br)
		if err != nil || op != 2 || !bytes.Equal(p, msg) {
			t.Fatalf("echo of %d bytes: op %d, %d bytes, %v", size, op, len(p), err)
		}
	}
	wsWriteFrame(c, 0x8, nil, []byte{1, 1, 1, 1})
	if op, _, err := wsReadFrame(br); err != nil || op != 0x8 {
		t.Fatalf("close frame: %d %v", op, err)
	}
	// The upstream closed after its close frame: the client sees EOF.
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after close: %v, want EOF", err)
	}
	c.CloseWrite() // both directions done: the exchange ends and is logged
	recs := env.log.wait(t, 1)
	if r := recs[0]; r["status"] != int64(101) || r["path"] != "/chat" || r["end"] != "ok" {
		t.Errorf("access log: %v", r)
	}
	hpSettled(t, env)
}

// An upgrade the upstream declines is an ordinary response, and the
// connection goes on.
func TestHTTPUpgradeDeclined(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "no upgrade here")
	}))
	env := hpStart(t, HTTPConfig{}, be.addr())
	c, br := hpRaw(t, env.addr)
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"no upgrade here", "no upgrade here"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("got %d %q", resp.StatusCode, b)
		}
	}
}

// Every tunnel is accounted once, however it ends: a clean close by the
// client, the tunnel idle timeout, or the upstream dying. Each leaves one
// access log record, and sluice_http_tunnels_active returns to 0.
func TestHTTPTunnelAccounting(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(wsEchoServer))
	env := hpStart(t, HTTPConfig{TunnelIdleTimeout: 150 * time.Millisecond}, be.addr())
	open := func() (*net.TCPConn, *bufio.Reader) {
		c, br := hpRaw(t, env.addr)
		key := base64.StdEncoding.EncodeToString([]byte("sluice-test-key!"))
		fmt.Fprintf(c, "GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("handshake: %v %v", resp, err)
		}
		return c, br
	}
	c, _ := open()
	hpEventually(t, "one tunnel active", func() bool { return env.metric(`sluice_http_tunnels_active{proto="http/1.1"}`) == 1 })
	c.Close() // the client ends it
	c2, br := open()
	if _, err := io.ReadAll(br); err != nil { // the idle timeout ends it (FIN)
		t.Fatalf("idle tunnel: %v", err)
	}
	c2.Close() // ends sluice's linger
	recs := env.log.wait(t, 2)
	for _, r := range recs {
		if r["status"] != int64(101) {
			t.Errorf("access log: %v", r)
		}
	}
	hpEventually(t, "no tunnel active", func() bool { return env.metric(`sluice_http_tunnels_active{proto="http/1.1"}`) == 0 })
	if v := env.metric(`sluice_http_tunnels_total{proto="http/1.1"}`); v != 2 {
		t.Fatalf("tunnels_total %v, want 2", v)
	}
}
