package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

var (
	sluiceOnce sync.Once
	sluiceBin  string
	sluiceErr  error
)

// sluiceBinary builds cmd/sluice once per test process, and tells go
// test's cache that the result depends on sluice's sources.
func sluiceBinary(t *testing.T) string {
	sluiceOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-bench-bin")
		if err != nil {
			sluiceErr = err
			return
		}
		if sluiceBin, sluiceErr = testutil.BuildSluice(dir); sluiceErr == nil {
			sluiceErr = testutil.ConsultModule()
		}
	})
	if sluiceErr != nil {
		t.Fatal(sluiceErr)
	}
	return sluiceBin
}

type sluiceProc struct {
	*testutil.Sluice
	tls, plain string
}

// startSluice runs the binary on its defaults (demo upstream) with one
// loop, a TLS and a cleartext listener, until the test ends.
func startSluice(t *testing.T, extra ...string) *sluiceProc {
	plain := testutil.FreePort(t)
	args := append([]string{"-listen-plain", plain, "-admin", "", "-loops", "1"}, extra...)
	s := testutil.StartSluice(t, sluiceBinary(t), args...)
	return &sluiceProc{Sluice: s, tls: s.Addr, plain: plain}
}

// bench runs Main with args and decodes its -json output.
func benchJSON(t *testing.T, args ...string) (*Result, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(append(args, "-json", "-progress", "0"), &out, &errb)
	var r Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: exit %d, output %q, stderr %q", args, code, out.String(), errb.String())
	}
	return &r, code
}

func wantClean(t *testing.T, r *Result, code int, minResp int64) {
	t.Helper()
	if code != 0 || r.Requests < minResp || len(r.Errors) != 0 || r.Status["200"] != r.Requests {
		t.Fatalf("exit %d, %d responses (want ≥ %d), status %v, errors %v", code, r.Requests, minResp, r.Status, r.Errors)
	}
	if r.Latency.P50 <= 0 || r.Latency.P50 > r.Latency.P99 || r.Latency.P99 > r.Latency.Max {
		t.Fatalf("latency %+v", r.Latency)
	}
}

func TestSmokeRateModes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts sluice")
	}
	p := startSluice(t)
	pid := fmt.Sprint(p.Cmd.Process.Pid)
	tlsURL, plainURL := "https://"+p.tls+"/", "http://"+p.plain+"/"
	for _, tc := range []struct {
		name string
		args []string
		n    int64
	}{
		{"h1 tls count", []string{"-url", tlsURL, "-k", "-c", "4", "-n", "400", "-pid", pid}, 400},
		{"h1 cleartext post", []string{"-url", plainURL, "-c", "2", "-n", "100", "-method", "POST", "-body", "1000"}, 100},
		{"h2 tls", []string{"-url", tlsURL, "-k", "-h2", "-c", "2", "-m", "8", "-n", "400", "-pid", pid}, 400},
		{"h2c post", []string{"-url", plainURL, "-h2", "-c", "2", "-m", "4", "-n", "100", "-method", "POST", "-body", "100000"}, 100},
		{"h1 duration", []string{"-url", tlsURL, "-k", "-c", "4", "-d", "500ms"}, 10},
		{"open loop", []string{"-url", tlsURL, "-k", "-c", "4", "-rate", "200", "-d", "1s"}, 150},
		{"open loop h2", []string{"-url", tlsURL, "-k", "-h2", "-c", "1", "-m", "4", "-rate", "200", "-n", "100"}, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, code := benchJSON(t, tc.args...)
			wantClean(t, r, code, tc.n)
			if strings.Contains(tc.name, "count") || tc.name == "h2 tls" {
				if r.Requests != tc.n {
					t.Fatalf("%d responses, want exactly %d", r.Requests, tc.n)
				}
				if r.Target == nil || r.Target.PID != p.Cmd.Process.Pid || r.Target.RSSBytes <= 0 {
					t.Fatalf("target %+v", r.Target)
				}
			}
			if tc.name == "open loop" && (r.Requests > 205 || r.Elapsed < 0.9) {
				t.Fatalf("open loop at 200/s for 1s: %d responses in %.2fs", r.Requests, r.Elapsed)
			}
		})
	}
}

func TestSmokeHoldHandshakeSlowRead(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts sluice")
	}
	p := startSluice(t)
	pid := fmt.Sprint(p.Cmd.Process.Pid)
	tlsURL := "https://" + p.tls + "/"
	t.Run("hold", func(t *testing.T) {
		for _, h2 := range []string{"-h2=false", "-h2"} {
			r, code := benchJSON(t, "-mode", "hold", h2, "-url", tlsURL, "-k", "-c", "300", "-d", "1s", "-pid", pid)
			if code != 0 || r.Hold == nil || r.Hold.Opened != 300 || r.Hold.StillOpen != 300 || r.Requests != 300 {
				t.Fatalf("%s: exit %d, %+v, errors %v", h2, code, r.Hold, r.Errors)
			}
			// sluice holds an idle TLS connection in well under 1 MiB.
			if r.Hold.RSSHeldBytes <= 0 || r.Hold.RSSPerConnBytes > 1<<20 {
				t.Fatalf("%s: RSS %+v", h2, r.Hold)
			}
		}
	})
	t.Run("hold sees the target close", func(t *testing.T) {
		q := startSluice(t, "-idle-timeout", "300ms")
		r, _ := benchJSON(t, "-mode", "hold", "-url", "https://"+q.tls+"/", "-k", "-c", "20", "-d", "1500ms", "-pid", fmt.Sprint(q.Cmd.Process.Pid))
		if r.Hold == nil || r.Hold.Opened != 20 || r.Hold.ClosedByTarget != 20 {
			t.Fatalf("idle timeout 300ms, held 1.5s: %+v", r.Hold)
		}
	})
	t.Run("handshake", func(t *testing.T) {
		for _, v := range []string{"1.3", "1.2"} {
			r, code := benchJSON(t, "-mode", "handshake", "-tls", v, "-url", tlsURL, "-k", "-c", "2", "-n", "60", "-pid", pid)
			wantClean(t, r, code, 60)
			hs := r.Handshake
			if hs == nil || hs.Full != 60 || hs.Resumed != 0 || (v == "1.3") != (hs.TLS13 == 60) || r.Target.CPUSeconds < 0 {
				t.Fatalf("TLS %s: %+v", v, hs)
			}
		}
	})
	t.Run("slowread", func(t *testing.T) {
		// 200 KB at 100 KB/s does not end in 1s; 20 KB does.
		r, code := benchJSON(t, "-mode", "slowread", "-url", tlsURL+"bytes?n=200000", "-k", "-c", "3", "-read-rate", "100000", "-d", "1s", "-pid", pid)
		sr := r.SlowRead
		if code != 0 || sr == nil || sr.Unfinished != 3 || sr.Completed != 0 || len(r.Errors) != 0 {
			t.Fatalf("exit %d, %+v, errors %v", code, sr, r.Errors)
		}
		// Paced: about 100 KB per client in the second, never much more.
		if sr.BytesRead < 3*50000 || sr.BytesRead > 3*130000 || sr.TTFB.P50 <= 0 {
			t.Fatalf("read %d bytes in 1s at 100 KB/s × 3: %+v", sr.BytesRead, sr)
		}
		r, code = benchJSON(t, "-mode", "slowread", "-url", tlsURL+"bytes?n=20000", "-k", "-c", "3", "-read-rate", "100000", "-d", "2s")
		if code != 0 || r.SlowRead.Completed != 3 || r.BodyBytes != 60000 {
			t.Fatalf("exit %d, %+v, body %d", code, r.SlowRead, r.BodyBytes)
		}
	})
}

func TestSmokeDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts sluice")
	}
	for _, h2 := range []string{"-h2=false", "-h2"} {
		t.Run(h2, func(t *testing.T) {
			p := startSluice(t)
			args := []string{"-mode", "drain", h2, "-url", "https://" + p.tls + "/", "-k", "-c", "20", "-d", "5s", "-pid", fmt.Sprint(p.Cmd.Process.Pid)}
			if h2 == "-h2" {
				args = append(args, "-signal-after", "700ms") // else: 1s after all are open
			}
			r, code := benchJSON(t, args...)
			d := r.Drain
			if code != 0 || d == nil || !d.Signalled || !d.Exited || d.Losses() != 0 || d.AfterSignal == 0 {
				t.Fatalf("exit %d, drain %+v, errors %v", code, d, r.Errors)
			}
			if code := p.Wait(t, 5*time.Second); code != 0 {
				t.Fatalf("sluice exit %d", code)
			}
			if d.SignalToExitMS <= 0 || d.LastResponseToExitMS < 0 || d.LastResponseToExitMS > d.SignalToExitMS {
				t.Fatalf("timings %+v", d)
			}
		})
	}
}

// TestDrainCountsLosses: a target that dies on SIGTERM with requests in
// flight must be reported as losing them, and the run must fail.
func TestDrainCountsLosses(t *testing.T) {
	// A child that answers slowly and exits at once on SIGTERM.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, _ := ln.(*net.TCPListener).File()
	ln.Close()
	cmd.ExtraFiles = []*os.File{f}
	cmd.Env = append(os.Environ(), "SLUICE_BENCH_SLOW_SERVER=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	r, code := benchJSON(t, "-mode", "drain", "-h2", "-m", "2", "-url", "http://"+ln.Addr().String()+"/", "-c", "5", "-d", "4s",
		"-signal-after", "1500ms", "-pid", fmt.Sprint(cmd.Process.Pid))
	if code != 1 || r.Drain == nil || !r.Drain.Exited || r.Drain.Losses() == 0 {
		t.Fatalf("exit %d, drain %+v, errors %v", code, r.Drain, r.Errors)
	}
}

// slowServer serves h2c on fd 3, each answer after a second, and dies on
// SIGTERM: every stream in flight then is lost (no GOAWAY says otherwise).
func slowServer() int {
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		return 1
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second)
		w.Write([]byte("ok"))
	})}
	srv.Serve(ln)
	return 0
}

func TestSourceAddressesSpread(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		mu.Lock()
		seen[host] = true
		mu.Unlock()
		// Slow answers, so every worker's connection is needed: with fast
		// ones, one worker can take all the requests before the others run.
		time.Sleep(20 * time.Millisecond)
	}))
	defer srv.Close()
	// The dialer itself: connection i comes from 127.0.0.(1 + i%4).
	u, _ := ParseURL(srv.URL)
	d := newDialer(&Options{URL: u, Conns: 8, SourceIPs: 4, Timeout: time.Second})
	for i := 0; i < 8; i++ {
		c, err := d.dial(t.Context(), u.Host)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.LocalAddr().(*net.TCPAddr).IP.String(), fmt.Sprintf("127.0.0.%d", 1+i%4); got != want {
			t.Fatalf("connection %d from %s, want %s", i, got, want)
		}
		c.Close()
	}
	r, code := benchJSON(t, "-url", srv.URL+"/", "-c", "8", "-n", "80", "-source-ips", "4")
	if code != 0 || r.Requests != 80 {
		t.Fatalf("exit %d: %+v", code, r)
	}
	if len(seen) != 4 || !seen["127.0.0.1"] || !seen["127.0.0.4"] {
		t.Fatalf("source addresses %v, want 127.0.0.1-4", seen)
	}
}

func TestMainHelpAndBadFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"-h"}, &out, &errb); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	for _, want := range []string{"rate", "hold", "handshake", "drain", "slowread", "-url", "-pid", "-json", "-rate", "-source-ips", "RLIMIT_NOFILE", "Examples"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h lacks %q", want)
		}
	}
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{}, "-url"}, {[]string{"-url", "ftp://x"}, "-url"}, {[]string{"-url", "http://x", "-c", "0"}, "-c"},
		{[]string{"-url", "http://x", "-c", "200000"}, "-c"}, {[]string{"-url", "http://x", "-method", "G T"}, "-method"},
		{[]string{"-url", "http://x", "-mode", "flood"}, "-mode"}, {[]string{"-url", "http://x", "-mode", "hold"}, "-pid"},
		{[]string{"-url", "http://x", "-mode", "handshake"}, "-url"}, {[]string{"-url", "http://x", "-tls", "1.1"}, "-tls"},
		{[]string{"-url", "http://x", "-H", "no colon"}, "-H"}, {[]string{"-url", "http://x", "-d", "soon"}, "-d"},
		{[]string{"-url", "http://x", "stray"}, "stray"},
	} {
		out.Reset()
		errb.Reset()
		code := Main(tc.args, &out, &errb)
		if code != 2 || strings.Count(errb.String(), "\n") != 1 || !strings.Contains(errb.String(), tc.flag) {
			t.Errorf("%v: exit %d, stderr %q (want one line naming %s)", tc.args, code, errb.String(), tc.flag)
		}
	}
	// A table, not JSON, by default; exit 1 when nothing succeeded.
	out.Reset()
	if code := Main([]string{"-url", "http://" + testutil.FreePort(t) + "/", "-c", "1", "-d", "200ms", "-progress", "0"}, &out, &errb); code != 1 ||
		!strings.Contains(out.String(), "dial_refused") || !strings.Contains(out.String(), "responses") {
		t.Fatalf("nothing listening: exit %d\n%s", code, out.String())
	}
}
