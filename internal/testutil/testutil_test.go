package testutil

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// Serve's cleanup closes a connection its handler is still reading and
// waits for the handler: nothing it started outlives the test.
func TestServeCleanupClosesAndWaits(t *testing.T) {
	started, ended := make(chan struct{}), make(chan error, 1)
	var c net.Conn // the client stays open through the cleanup
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	t.Run("serve", func(t *testing.T) {
		addr := Serve(t, func(c net.Conn) {
			close(started)
			_, err := io.Copy(io.Discard, c)
			time.Sleep(50 * time.Millisecond) // a handler slower to end than its conn
			ended <- err
		})
		var err error
		if c, err = net.Dial("tcp", addr); err != nil {
			t.Fatal(err)
		}
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("handler not started")
		}
	})
	select {
	case <-ended: // the cleanup closed the conn (the client had not) and waited
	default:
		t.Fatal("the handler was still running after the test's cleanup")
	}
}

func TestEchoAndNeedTool(t *testing.T) {
	c, err := net.Dial("tcp", Echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q %v", buf, err)
	}
	if p := NeedTool(t, "sh"); !strings.HasSuffix(p, "/sh") {
		t.Fatalf("NeedTool(sh) = %q", p)
	}
}

// Run with -race (.ci/run does): writers and readers at once.
func TestBufferConcurrentJSONLines(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.WriteString(`{"w":` + string(rune('0'+i)) + "}\n")
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	b.Write([]byte("not json\n"))
	if n := len(b.JSONLines()); n != 400 {
		t.Fatalf("%d JSON lines, want 400", n)
	}
}

// ReadH2Frame acknowledges SETTINGS and answers PING, and returns every
// frame; HeaderBlock and Get encode a request x/net decodes.
func TestH2ConnAnswersSettingsAndPing(t *testing.T) {
	cl, sv := net.Pipe()
	defer cl.Close()
	defer sv.Close()
	cl.SetDeadline(time.Now().Add(5 * time.Second))
	sv.SetDeadline(time.Now().Add(5 * time.Second))
	got := make(chan []string, 1)
	go func() {
		var seen []string
		defer func() { got <- seen }()
		pre := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(sv, pre); err != nil || string(pre) != http2.ClientPreface {
			return
		}
		fr := http2.NewFramer(sv, sv)
		fr.ReadMetaHeaders = nil
		go func() { // writes on a pipe wait for the reader
			fr.WriteSettings()
			fr.WritePing(false, [8]byte{7})
			fr.WriteRSTStream(1, http2.ErrCodeCancel)
		}()
		for len(seen) < 4 {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				seen = append(seen, "settings ack="+map[bool]string{true: "1", false: "0"}[f.IsAck()])
			case *http2.PingFrame:
				seen = append(seen, "ping ack="+map[bool]string{true: "1", false: "0"}[f.IsAck()])
			case *http2.HeadersFrame:
				seen = append(seen, "headers")
			}
		}
	}()
	h, err := StartH2(cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Get(1, "x", "/p"); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for len(kinds) < 3 {
		f, err := h.Next()
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, f.Header().Type.String())
	}
	if w := "SETTINGS PING RST_STREAM"; strings.Join(kinds, " ") != w {
		t.Fatalf("frames %v, want %s", kinds, w)
	}
	want := []string{"settings ack=0", "headers", "settings ack=1", "ping ack=1"}
	if s := <-got; !bytes.Equal([]byte(strings.Join(s, ",")), []byte(strings.Join(want, ","))) {
		t.Fatalf("the server saw %v, want %v", s, want)
	}
}
