package bench

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

func TestHistogramPercentiles(t *testing.T) {
	h := NewHistogram()
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * 100 * time.Microsecond) // 0.1 ms .. 1 s
	}
	// HDR histogram with 3 significant digits: within 0.1% of the exact value.
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond},
		{0.999, 999 * time.Millisecond}, {1, time.Second}} {
		got := h.Quantile(c.q)
		if d := got - c.want; d < -c.want/1000 || d > c.want/1000 {
			t.Errorf("q%.3f = %v, want %v ±0.1%%", c.q, got, c.want)
		}
	}
	if h.Count() != 10000 {
		t.Fatalf("count %d", h.Count())
	}
	o := NewHistogram()
	for i := 0; i < 10000; i++ {
		o.Record(2 * time.Second)
	}
	h.Merge(o)
	if got := h.Quantile(0.5); got < 999*time.Millisecond || got > 1001*time.Millisecond {
		t.Fatalf("merged median %v, want 1 s", got)
	}
	if got := h.Quantile(0.75); got < 1998*time.Millisecond || got > 2002*time.Millisecond {
		t.Fatalf("merged p75 %v, want 2 s", got)
	}
	s := h.Summary()
	if s.Max < 1998 || s.Max > 2002 || s.P999 < 1998 {
		t.Fatalf("summary %+v", s)
	}
	if (NewHistogram()).Quantile(0.5) != 0 {
		t.Fatal("empty histogram has a median")
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses, as /proc prints it.
	line := "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 3 0 100 1000 200 0\n"
	state, cpu, err := parseStat([]byte(line))
	if err != nil || state != 'S' || cpu != 3800*time.Millisecond {
		t.Fatalf("state %c cpu %v err %v, want S 3.8s", state, cpu, err)
	}
	if _, _, err := parseStat([]byte("12 (x) S 1 2")); err == nil {
		t.Fatal("short stat parsed")
	}
	if got := parseVmRSS([]byte("Name:\tx\nVmPeak:\t  9 kB\nVmRSS:\t  1234 kB\nThreads: 1\n")); got != 1234<<10 {
		t.Fatalf("VmRSS %d", got)
	}
	if got := parseVmRSS([]byte("Name:\tkthreadd\nState:\tS\n")); got != 0 {
		t.Fatalf("kernel thread VmRSS %d", got)
	}
}

func TestReadProcRSSAndChildren(t *testing.T) {
	self := os.Getpid()
	before, err := ReadProc(self)
	if err != nil || before.RSS <= 0 || before.Procs != 1 {
		t.Fatalf("self: %+v %v", before, err)
	}
	// 64 MiB touched page by page must show in RSS.
	buf := make([]byte, 64<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	after, _ := ReadProc(self)
	if grow := after.RSS - before.RSS; grow < 60<<20 {
		t.Fatalf("RSS grew %d bytes after touching 64 MiB", grow)
	}
	buf[len(buf)-1] = 2
	// A busy child is summed in; a zombie is gone.
	child := exec.Command("sleep", "10")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	tree, _ := ReadProc(self)
	if tree.Procs != 2 || tree.RSS <= after.RSS {
		t.Fatalf("with a child: %+v (self alone %+v)", tree, after)
	}
	if !alive(child.Process.Pid) {
		t.Fatal("running child not alive")
	}
	child.Process.Signal(unix.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for alive(child.Process.Pid) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// Not waited for yet: a zombie, which counts as exited.
	if _, err := ReadProc(child.Process.Pid); !errors.Is(err, ErrNoProcess) {
		t.Fatalf("zombie: %v", err)
	}
	child.Wait()
	if _, err := ReadProc(1 << 30); !errors.Is(err, ErrNoProcess) {
		t.Fatalf("no such pid: %v", err)
	}
}

func TestFDLimitMessageNamesTheLimit(t *testing.T) {
	err := raiseFDLimit(1 << 30)
	if err == nil || !strings.Contains(err.Error(), "RLIMIT_NOFILE") || !strings.Contains(err.Error(), "ulimit -Hn") {
		t.Fatalf("err %v", err)
	}
	var lim unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	if lim.Cur != lim.Max {
		t.Fatalf("soft limit %d not raised to the hard %d", lim.Cur, lim.Max)
	}
	if err := raiseFDLimit(100); err != nil {
		t.Fatal(err)
	}
}

// rawServer accepts connections and hands each to serve.
func rawServer(t *testing.T, serve func(c net.Conn)) *Options {
	u, _ := ParseURL("http://" + testutil.Serve(t, serve) + "/")
	return &Options{Mode: ModeRate, URL: u, Conns: 1, Streams: 1, Duration: time.Second, Method: "GET",
		Timeout: 2 * time.Second, ReadRate: 1}
}

// readReq reads one request head.
func readReq(br *bufio.Reader) bool {
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		if l == "\r\n" {
			return true
		}
	}
}

// oneExchange runs requests on one HTTP/1.1 connection and returns the
// error kind of each.
func h1Kinds(t *testing.T, o *Options, n int) []string {
	c, kind := o.connect(t.Context(), newDialer(o))
	if kind != "" {
		t.Fatal(kind)
	}
	defer c.Close()
	h := newH1Conn(c, false)
	var kinds []string
	for i := 0; i < n; i++ {
		c.SetDeadline(time.Now().Add(o.Timeout))
		kinds = append(kinds, h.roundTrip(o.h1Request(), nil).kind)
	}
	return kinds
}

const okResp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

func TestLostResponseDetectionHTTP1(t *testing.T) {
	cases := []struct {
		name  string
		serve func(c net.Conn, br *bufio.Reader)
		n     int
		want  string
	}{
		{"first request, closed unanswered: lost", func(c net.Conn, br *bufio.Reader) { readReq(br) }, 1, errLost + ","},
		{"keep-alive race: unprocessed", func(c net.Conn, br *bufio.Reader) {
			readReq(br)
			io.WriteString(c, okResp)
			readReq(br)
		}, 2, "," + errUnprocessed},
		{"body cut short: truncated", func(c net.Conn, br *bufio.Reader) {
			readReq(br)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
		}, 1, errTruncated + ","},
		{"head cut short: truncated", func(c net.Conn, br *bufio.Reader) {
			readReq(br)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Le")
		}, 1, errTruncated + ","},
		{"chunked without its last chunk: truncated", func(c net.Conn, br *bufio.Reader) {
			readReq(br)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
		}, 1, errTruncated + ","},
		{"reset after the request: lost", func(c net.Conn, br *bufio.Reader) {
			readReq(br)
			c.(*net.TCPConn).SetLinger(0)
		}, 1, errLost + ","},
		{"no answer in time: timeout", func(c net.Conn, br *bufio.Reader) {
			readReq(br)
			time.Sleep(700 * time.Millisecond)
		}, 1, errTimeout + ","},
		{"until-close body that ends: whole", func(c net.Conn, br *bufio.Reader) {
			readReq(br)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
		}, 1, ","},
		{"garbage: bad response", func(c net.Conn, br *bufio.Reader) {
			readReq(br)
			io.WriteString(c, "SMTP ready\r\n\r\n")
		}, 1, errBadResponse + ","},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := rawServer(t, func(c net.Conn) { tc.serve(c, bufio.NewReader(c)) })
			o.Timeout = 300 * time.Millisecond
			got := strings.Join(h1Kinds(t, o, tc.n), ",")
			if tc.n == 1 {
				got += ","
			}
			if got != tc.want {
				t.Fatalf("kinds %q, want %q", got, tc.want)
			}
		})
	}
}

// h2Server plays an HTTP/2 server with x/net's Framer: it answers each
// request stream by what act says for its index (0, 1, ...).
func h2Server(t *testing.T, act func(fr *http2.Framer, enc func(...string) []byte, i int, id uint32) (hangUp bool)) *Options {
	o := rawServer(t, func(c net.Conn) {
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, preface); err != nil {
			return
		}
		fr := http2.NewFramer(c, c)
		fr.WriteSettings()
		var hb strings.Builder
		henc := hpack.NewEncoder(&hb)
		enc := func(kv ...string) []byte {
			hb.Reset()
			for i := 0; i+1 < len(kv); i += 2 {
				henc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
			}
			return []byte(hb.String())
		}
		i := 0
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.HeadersFrame:
				if act(fr, enc, i, f.StreamID) {
					return
				}
				i++
			}
		}
	})
	o.H2 = true
	return o
}

func TestLostResponseDetectionHTTP2(t *testing.T) {
	ok := func(fr *http2.Framer, enc func(...string) []byte, id uint32) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: enc(":status", "200"), EndHeaders: true})
		fr.WriteData(id, true, []byte("hello"))
	}
	cases := []struct {
		name string
		act  func(fr *http2.Framer, enc func(...string) []byte, i int, id uint32) bool
		want map[string]int64
	}{
		{"REFUSED_STREAM is unprocessed, CANCEL before headers lost", func(fr *http2.Framer, enc func(...string) []byte, i int, id uint32) bool {
			switch i {
			case 0:
				ok(fr, enc, id)
			case 1:
				fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
			case 2:
				fr.WriteRSTStream(id, http2.ErrCodeCancel)
			}
			return false
		}, map[string]int64{"ok": 1, errUnprocessed: 1, errLost: 1}},
		{"reset after headers is truncated", func(fr *http2.Framer, enc func(...string) []byte, i int, id uint32) bool {
			if i == 0 {
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: enc(":status", "200"), EndHeaders: true})
				fr.WriteData(id, false, []byte("part"))
				fr.WriteRSTStream(id, http2.ErrCodeInternal)
				return false
			}
			ok(fr, enc, id)
			return false
		}, map[string]int64{"ok": 2, errTruncated: 1}},
		{"GOAWAY: streams above last id unprocessed, accepted ones lost at close", func(fr *http2.Framer, enc func(...string) []byte, i int, id uint32) bool {
			switch i {
			case 0:
				ok(fr, enc, id)
			case 3:
				// Streams 3, 5 and 7 are open; 7 is above the last id.
				fr.WriteGoAway(5, http2.ErrCodeNo, nil)
				ok(fr, enc, 3)
				time.Sleep(50 * time.Millisecond)
				return true // hang up with 5 unanswered
			}
			return false
		}, map[string]int64{"ok": 2, errLost: 1, errUnprocessed: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := h2Server(t, tc.act)
			tl := newTally()
			c, kind := o.connect(t.Context(), newDialer(o))
			if kind != "" {
				t.Fatal(kind)
			}
			h := newH2Conn(o, c, tl)
			want := int(tc.want["ok"] + tc.want[errLost] + tc.want[errUnprocessed] + tc.want[errTruncated])
			for i := 0; i < want; i++ {
				if i < 2 {
					// one at a time, so the server sees them in order
					if !h.waitSlot(1) || !h.open(time.Now(), o.h2Fields(), nil) {
						t.Fatalf("stream %d not opened", i)
					}
					continue
				}
				if !h.open(time.Now(), o.h2Fields(), nil) {
					t.Fatalf("stream %d not opened", i)
				}
			}
			h.close()
			got := map[string]int64{"ok": tl.ok}
			for k, v := range tl.errs {
				got[k] = v
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}
