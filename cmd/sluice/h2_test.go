package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// HTTP/2 through the real binary: ALPN h2 on -listen, h2c with prior
// knowledge on -listen-plain, h2c:// upstreams, the HTTP/2 flags, and the
// two-phase GOAWAY on SIGTERM.

func h2Client(tlsOn bool) *http.Client {
	if tlsOn {
		return &http.Client{Timeout: 30 * time.Second, Transport: &http2.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}}}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}}
}

var plainAddrRe = regexp.MustCompile(`listen_plain=(\S+)`)

func plainAddr(t *testing.T, p *proc) string {
	m := plainAddrRe.FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("no listen_plain in the log\n%s", p.stderr)
	}
	return m[1]
}

func TestH2OverTLSAndH2C(t *testing.T) {
	up := httpBackend(t)
	p := startSluice(t, "-upstream", "http://"+up, "-listen-plain", "127.0.0.1:0")
	for _, c := range []struct {
		name string
		tls  bool
		url  string
	}{{"tls", true, "https://" + p.addr}, {"h2c", false, "http://" + plainAddr(t, p)}} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := h2Client(c.tls).Get(c.url + "/hello")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 || resp.StatusCode != 200 ||
				!strings.Contains(string(body), `backend saw GET /hello via="2.0 sluice" xff="127.0.0.1"`) {
				t.Fatalf("%s %d %q", resp.Proto, resp.StatusCode, body)
			}
			if c.tls && resp.TLS.NegotiatedProtocol != "h2" {
				t.Fatalf("ALPN %q", resp.TLS.NegotiatedProtocol)
			}
			resp, err = h2Client(c.tls).Get(c.url + "/bytes?n=10000000")
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			resp.Body.Close()
			if err != nil || n != 10000000 || !bytes.Equal(h.Sum(nil), func() []byte { s := sha256.Sum256(patternBytes(10000000)); return s[:] }()) {
				t.Fatalf("10 MB: %d bytes, %v", n, err)
			}
		})
	}
	t.Run("curl", func(t *testing.T) {
		curl := testutil.NeedTool(t, "curl")
		out, err := exec.Command(curl, "-sSk", "--http2", "-w", "%{http_version}", "https://"+p.addr+"/curl").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "backend saw GET /curl") || !strings.HasSuffix(string(out), "2") {
			t.Fatalf("curl: %v %s", err, out)
		}
	})
	if !p.stderrHas("proto=HTTP/2.0") {
		t.Fatal("no HTTP/2 access log line")
	}
}

// A gRPC-shaped bidirectional stream to an h2c upstream given as
// -upstream h2c://...: each message is echoed before the next is sent,
// and the trailers arrive.
func TestH2CUpstreamStreaming(t *testing.T) {
	up := testutil.Serve(t, func(c net.Conn) {
		(&http2.Server{}).ServeConn(c, &http2.ServeConnOpts{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "Grpc-Status")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			br := bufio.NewReader(r.Body)
			for {
				line, err := br.ReadString('\n')
				if line != "" {
					io.WriteString(w, "echo:"+line)
					w.(http.Flusher).Flush()
				}
				if err != nil {
					break
				}
			}
			w.Header().Set("Grpc-Status", "0")
		})})
	})
	p := startSluice(t, "-upstream", "h2c://"+up)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "https://"+p.addr+"/svc/Echo", pr)
	req.Header.Set("Te", "trailers")
	respc := make(chan *http.Response, 1)
	go func() {
		resp, err := h2Client(true).Do(req)
		if err != nil {
			t.Error(err)
			close(respc)
			return
		}
		respc <- resp
	}()
	io.WriteString(pw, "m0\n")
	resp := <-respc
	if resp == nil {
		t.FailNow()
	}
	br := bufio.NewReader(resp.Body)
	for i := 0; i < 10; i++ {
		if i > 0 {
			fmt.Fprintf(pw, "m%d\n", i)
		}
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("echo:m%d\n", i) {
			t.Fatalf("message %d: %q %v", i, line, err)
		}
	}
	pw.Close()
	io.ReadAll(br)
	resp.Body.Close()
	if resp.Trailer.Get("Grpc-Status") != "0" {
		t.Fatalf("trailers %v", resp.Trailer)
	}
}

// SIGTERM with HTTP/2 streams in flight: GOAWAY(2^31-1), then the final
// GOAWAY, every stream completes, sluice exits 0.
func TestH2SIGTERMGoAway(t *testing.T) {
	release := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "done "+r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p := startSluice(t, "-upstream", "http://"+ln.Addr().String(), "-drain-timeout", "20s")
	c, err := tls.Dial("tcp", p.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	h, err := testutil.StartH2(c)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := 0; i < n; i++ {
		h.Get(uint32(2*i+1), "x", fmt.Sprintf("/s%d", i))
	}
	time.Sleep(300 * time.Millisecond) // the requests reach the upstream
	p.cmd.Process.Signal(syscall.SIGTERM)
	var goaways []uint32
	ended := 0
	for ended < n {
		f, err := h.Next()
		if err != nil {
			t.Fatalf("after %d streams: %v\n%s", ended, err, p.stderr)
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			goaways = append(goaways, f.LastStreamID)
			if len(goaways) == 2 {
				close(release)
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				ended++
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("stream %d reset %v", f.StreamID, f.ErrCode)
		}
	}
	if len(goaways) != 2 || goaways[0] != 1<<31-1 || goaways[1] != 2*n-1 {
		t.Fatalf("GOAWAY last ids %v, want [2^31-1 %d]", goaways, 2*n-1)
	}
	// Then a clean end (close_notify: EOF), and our FIN ends its linger.
	for {
		if _, err := h.Fr.ReadFrame(); err != nil {
			if err != io.EOF {
				t.Fatalf("after the last stream: %v", err)
			}
			break
		}
	}
	c.Close()
	if code, took := p.wait(t, 10*time.Second); code != 0 || took > 3*time.Second {
		t.Fatalf("exit %d after %v\n%s", code, took, p.stderr)
	}
}

func TestH2FlagsDocumentedAndChecked(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-h"}, &stdout, &stderr, nil); code != 0 {
		t.Fatalf("-h exit %d", code)
	}
	for _, want := range []string{"-h2-max-concurrent-streams", "(default 100)", "-h2-max-header-list-size", "(default 65536)",
		"-h2-stream-window", "(default 262144)", "-h2-conn-window", "(default 1048576)", "-h2-max-buffered", "h2c://",
		"-h2-websocket", "(default true)", "-h2-stall-timeout", "(default 15s)", "-client-max-upstreams", "(default 16)",
		"-client-max-upstream-streams", "-client-upstream-wait", "(default 30s)", "-body-timeout", "(default 5m0s)",
		"-body-grace", "(default 10s)", "-body-min-rate", "(default 500)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("-h output lacks %q", want)
		}
	}
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"-h2-max-concurrent-streams", "0"}, "-h2-max-concurrent-streams"},
		{[]string{"-h2-max-header-list-size", "10"}, "-h2-max-header-list-size"},
		{[]string{"-h2-stream-window", "1"}, "-h2-stream-window"},
		{[]string{"-h2-conn-window", "3000000000"}, "-h2-conn-window"},
		{[]string{"-h2-max-buffered", "1"}, "-h2-max-buffered"},
		{[]string{"-upstream", "h3://x:1"}, "-upstream"},
		{[]string{"-h2-stall-timeout", "2m"}, "-h2-stall-timeout"},
		{[]string{"-client-max-upstreams", "0"}, "-client-max-upstreams"},
		{[]string{"-client-max-upstream-streams", "-1"}, "-client-max-upstream-streams"},
		{[]string{"-client-upstream-wait", "0s"}, "-client-upstream-wait"},
		{[]string{"-body-timeout", "-1s"}, "-body-timeout"},
		{[]string{"-body-grace", "0s"}, "-body-grace"},
		{[]string{"-body-min-rate", "-5"}, "-body-min-rate"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr, nil); code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if out := stderr.String(); strings.Count(out, "\n") != 1 || !strings.Contains(out, tc.flag) {
			t.Errorf("%v: %q", tc.args, out)
		}
	}
}
