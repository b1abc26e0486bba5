package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	loadgen "github.com/sluice-proxy/sluice/bench"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// Issue #9's attacks 2 and 3, each against sluice (the real binary on its
// defaults, -loops 1) and nginx (one worker, HTTP/2 on its TLS port) in
// front of the same nginx backend, in the same run. A well-behaved client
// (sluice-bench rate mode: 8 HTTP/1.1 keep-alive connections over TLS,
// 1 KiB responses) measures its req/s before the attack and during it; the
// benchmark reports during/before for each. Target: sluice ≥ 0.8.
//
//	go test -run '^$' -bench 'StalledStreams|TrickledBodies' -benchtime 1x ./proxy/bench/
//
// Knobs: SLUICE_BENCH_ROUNDS (default 2, order swapped every round),
// SLUICE_BENCH_SECONDS per measurement (default 6; 12 for attack 3).

// BenchmarkStalledStreamsVsNginx is attack 2: 30 HTTP/2 connections ×
// 100 streams of 10 MiB responses with the client's windows at zero
// (SETTINGS_INITIAL_WINDOW_SIZE 0); every stream the server resets is
// replaced by a new one at once.
func BenchmarkStalledStreamsVsNginx(b *testing.B) {
	attackBench(b, func(addr string) attacker { return startStall(b, addr, 30, 100) })
}

// BenchmarkTrickledBodiesVsNginx is attack 3: 2,000 HTTPS clients each
// sending a POST body of 1 MB a byte every 2 seconds; a client whose
// connection the server closes reconnects at once.
//
// Its measurements default to 12 s, so that they span sluice's body
// deadline (-body-grace 10s at -body-min-rate 500) and the reconnections
// it brings.
func BenchmarkTrickledBodiesVsNginx(b *testing.B) {
	if os.Getenv("SLUICE_BENCH_SECONDS") == "" {
		b.Setenv("SLUICE_BENCH_SECONDS", "12")
	}
	attackBench(b, func(addr string) attacker { return startTrickle(addr, 2000, 2*time.Second) })
}

type attacker interface {
	stop()
	stats() string
	ready() bool // every attacking connection is open
}

func attackBench(b *testing.B, start func(addr string) attacker) {
	rounds := envInt("SLUICE_BENCH_ROUNDS", 2)
	secs := envInt("SLUICE_BENCH_SECONDS", 6)
	dir := b.TempDir()
	os.Chmod(dir, 0o755) // and its parent: nginx workers run as nobody under root
	os.Chmod(filepath.Dir(dir), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "big"), bytes.Repeat([]byte("x"), 10<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	backend := testutil.FreePort(b)
	startNginx(b, "backend", 1, fmt.Sprintf(`  server {
    listen %s;
    location = /1k { default_type application/octet-stream; return 200 "%s"; }
    location = /big { root %s; }
    location = /up { client_max_body_size 10m; proxy_pass http://127.0.0.1:1; }
  }`, backend, strings.Repeat("x", 1024), dir), backend)

	kp := testutil.SelfSigned(b)
	certFile, keyFile := testutil.WriteKeyPair(b, dir, kp)

	ngxAddr := testutil.FreePort(b)
	ngx := startNginx(b, "proxy", 1, fmt.Sprintf(`  upstream backend { server %s; keepalive 64; }
  server {
    listen %s ssl http2;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3;
    client_max_body_size 10m;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`, backend, ngxAddr, certFile, keyFile), ngxAddr)
	slAddr := testutil.FreePort(b)
	sl := startProc(b, "sluice", slAddr, testutil.SluiceBinary(b, dir), "-listen", slAddr, "-admin", "",
		"-loops", "1", "-upstream", "http://"+backend, "-cert", certFile, "-key", keyFile)
	for _, a := range []string{slAddr, ngxAddr} {
		// The attack must get its 10 MiB responses (nginx workers may run
		// as another user than the one who wrote the file).
		if err := check("https://"+a+"/big", 10<<20); err != nil {
			b.Fatalf("%s/big: %v", a, err)
		}
	}

	targets := []struct {
		name, addr string
		cpu        func() time.Duration
	}{
		{"sluice", slAddr, func() time.Duration { return cpuTime(sl.Process.Pid) }},
		{"nginx", ngxAddr, func() time.Duration {
			var d time.Duration
			for _, pid := range ngx.workerPIDs() {
				d += cpuTime(pid)
			}
			return d
		}},
	}
	ratios := map[string][]float64{}
	before := map[string][]float64{}
	for r := 0; r < rounds; r++ {
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			t := targets[i]
			url := "https://" + t.addr + "/1k"
			c0 := t.cpu()
			quiet := rateLoad(b, url, 8, time.Duration(secs)*time.Second)
			c1 := t.cpu()
			a := start(t.addr)
			// The attack in place: its connections open (their handshakes
			// cost the load generator's process too), then a second.
			for deadline := time.Now().Add(20 * time.Second); !a.ready() && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(time.Second)
			c2 := t.cpu()
			under := rateLoad(b, url, 8, time.Duration(secs)*time.Second)
			c3 := t.cpu()
			a.stop()
			b.Logf("%s CPU: %.2f cores before, %.2f during the attack", t.name,
				(c1-c0).Seconds()/float64(secs), (c3-c2).Seconds()/float64(secs))
			ratio := under.ReqPerSec / quiet.ReqPerSec
			ratios[t.name] = append(ratios[t.name], ratio)
			before[t.name] = append(before[t.name], quiet.ReqPerSec)
			b.Logf("round %d %s: %.0f req/s before, %.0f during (errors %v; attack: %s), ratio %.3f",
				r+1, t.name, quiet.ReqPerSec, under.ReqPerSec, under.Errors, a.stats(), ratio)
			time.Sleep(2 * time.Second) // let the target close what the attack left
		}
	}
	reportSpread(b, "sluice_ratio", ratios["sluice"])
	reportSpread(b, "nginx_ratio", ratios["nginx"])
	b.ReportMetric(median(before["sluice"]), "sluice_req/s_before")
	b.ReportMetric(median(before["nginx"]), "nginx_req/s_before")
	b.ReportMetric(0, "ns/op")
}

// rateLoad runs sluice-bench's rate mode (HTTP/1.1 keep-alive) against url.
func rateLoad(b *testing.B, url string, conns int, d time.Duration) *loadgen.Result {
	b.Helper()
	return loadgenRun(b, "-url", url, "-k", "-c", fmt.Sprint(conns), "-d", d.String())
}

// loadgenRun runs sluice-bench with args, parsed like its command line,
// so every other option is its default.
func loadgenRun(b *testing.B, args ...string) *loadgen.Result {
	b.Helper()
	o, err := loadgen.Parse(args, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	r, err := loadgen.Run(context.Background(), o, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// stall holds HTTP/2 connections whose every stream stalls at a zero
// window; a reset stream is replaced by a new one.
type stall struct {
	wg              sync.WaitGroup
	opened, resets  atomic.Int64
	conns           []net.Conn
	mu              sync.Mutex
	connErrs, heads atomic.Int64
}

func startStall(b *testing.B, addr string, conns, streams int) *stall {
	s := &stall{}
	for range conns {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if err != nil {
			b.Logf("stall attack dial: %v", err)
			s.connErrs.Add(1)
			continue
		}
		s.conns = append(s.conns, c)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.run(c, addr, streams)
		}()
	}
	return s
}

func (s *stall) run(c net.Conn, addr string, streams int) {
	h, err := testutil.StartH2(c, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	if err != nil {
		return
	}
	next := uint32(1)
	open := func() error {
		err := h.Get(next, addr, "/big")
		next += 2
		s.opened.Add(1)
		return err
	}
	for range streams {
		if open() != nil {
			return
		}
	}
	for {
		f, err := h.Next()
		if err != nil {
			return
		}
		switch f.(type) {
		case *http2.MetaHeadersFrame:
			s.heads.Add(1)
		case *http2.RSTStreamFrame:
			s.resets.Add(1)
			if open() != nil {
				return
			}
		case *http2.GoAwayFrame:
			return
		}
	}
}

func (s *stall) ready() bool { return true } // dialed before startStall returns

func (s *stall) stop() {
	for _, c := range s.conns {
		c.Close()
	}
	s.wg.Wait()
}

func (s *stall) stats() string {
	return fmt.Sprintf("%d connections (%d failed), %d streams opened, %d heads, %d reset", len(s.conns), s.connErrs.Load(),
		s.opened.Load(), s.heads.Load(), s.resets.Load())
}

// trickle holds HTTPS clients sending a POST body a byte at a time; a
// client whose connection ends reconnects.
type trickler struct {
	done               chan struct{}
	wg                 sync.WaitGroup
	clients            int
	conns, ended, s408 atomic.Int64
}

func startTrickle(addr string, clients int, gap time.Duration) *trickler {
	t := &trickler{done: make(chan struct{}), clients: clients}
	for i := range clients {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			// Spread the start so the attack is not a handshake flood.
			select {
			case <-t.done:
				return
			case <-time.After(time.Duration(i) * time.Millisecond / 4):
			}
			for {
				t.once(addr, gap)
				select {
				case <-t.done:
					return
				default:
				}
			}
		}()
	}
	return t
}

func (t *trickler) once(addr string, gap time.Duration) {
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		select {
		case <-t.done:
		case <-time.After(100 * time.Millisecond):
		}
		return
	}
	t.conns.Add(1)
	defer c.Close()
	got := make(chan struct{})
	go func() {
		defer close(got)
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		if bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 408")) {
			t.s408.Add(1)
		}
		io.Copy(io.Discard, c)
	}()
	fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000000\r\n\r\n", addr)
	for {
		select {
		case <-t.done:
			c.Close()
			<-got
			return
		case <-got:
			t.ended.Add(1)
			return
		case <-time.After(gap):
		}
		if _, err := c.Write([]byte{'x'}); err != nil {
			c.Close()
			<-got
			t.ended.Add(1)
			return
		}
	}
}

func (t *trickler) ready() bool { return t.conns.Load() >= int64(t.clients) }

func (t *trickler) stop() {
	close(t.done)
	t.wg.Wait()
}

func (t *trickler) stats() string {
	return fmt.Sprintf("%d connections made, %d ended by the server (%d with 408)", t.conns.Load(), t.ended.Load(), t.s408.Load())
}
