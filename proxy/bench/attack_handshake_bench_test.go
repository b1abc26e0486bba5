package bench

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	loadgen "github.com/sluice-proxy/sluice/bench"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// BenchmarkHandshakeFloodVsNginx is issue #9's attack 1: 1,100 TCP
// connections that send nothing plus 1,100 that send half a ClientHello
// and stall, each reopened as soon as the server closes it. A well-behaved
// client (sluice-bench's handshake mode: 8 clients, a new full TLS
// handshake and one request per connection, no resumption) measures its
// req/s before the attack and during it; the benchmark reports the ratio
// during/before for sluice (the real binary on its defaults, -loops 1) and
// for nginx (one worker, TLS 1.2 and 1.3), both proxying to the same nginx
// backend, in the same run. Target: sluice ≥ 0.8.
//
//	go test -run '^$' -bench HandshakeFlood -benchtime 1x ./proxy/bench/
//
// Knobs: SLUICE_BENCH_ROUNDS (default 2; each runs both targets, order
// swapped every round), SLUICE_BENCH_SECONDS per measurement (default 6).
func BenchmarkHandshakeFloodVsNginx(b *testing.B) {
	rounds := envInt("SLUICE_BENCH_ROUNDS", 2)
	// 6s, so the attack's window spans sluice's first-byte resets (5s
	// after accept) and the reconnections they bring.
	secs := envInt("SLUICE_BENCH_SECONDS", 6)
	const silentN, partialN, clients = 1100, 1100, 8

	backend := testutil.FreePort(b)
	startNginx(b, "backend", 1, fmt.Sprintf(`  server {
    listen %s;
    location / { default_type application/octet-stream; return 200 "%s"; }
  }`, backend, strings.Repeat("x", 1024)), backend)

	kp := testutil.SelfSigned(b)
	dir := b.TempDir()
	certFile, keyFile := testutil.WriteKeyPair(b, dir, kp)

	ngxAddr := testutil.FreePort(b)
	startNginx(b, "proxy", 1, fmt.Sprintf(`  upstream backend { server %s; keepalive 64; }
  server {
    listen %s ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`, backend, ngxAddr, certFile, keyFile), ngxAddr)
	slAddr := testutil.FreePort(b)
	startProc(b, "sluice", slAddr, testutil.SluiceBinary(b, dir), "-listen", slAddr, "-admin", "",
		"-loops", "1", "-upstream", "http://"+backend, "-cert", certFile, "-key", keyFile)

	hello := clientHelloBytes(b)
	targets := []struct {
		name string
		addr string
	}{{"sluice", slAddr}, {"nginx", ngxAddr}}
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
			quiet := handshakeLoad(b, url, clients, time.Duration(secs)*time.Second)
			a := startFlood(t.addr, silentN, partialN, hello[:len(hello)/2])
			if !a.waitOpen(silentN+partialN, 10*time.Second) {
				b.Logf("%s: only %d of %d attack connections open", t.name, a.open.Load(), silentN+partialN)
			}
			under := handshakeLoad(b, url, clients, time.Duration(secs)*time.Second)
			open := a.open.Load()
			a.stop()
			ratio := under.ReqPerSec / quiet.ReqPerSec
			ratios[t.name] = append(ratios[t.name], ratio)
			before[t.name] = append(before[t.name], quiet.ReqPerSec)
			b.Logf("round %d %s: %.0f req/s before, %.0f during (errors %v; %d attack connections open, %d reopened), ratio %.3f",
				r+1, t.name, quiet.ReqPerSec, under.ReqPerSec, under.Errors, open, a.reopened.Load(), ratio)
			time.Sleep(time.Second) // let the target close what the attack left
		}
	}
	reportSpread(b, "sluice_ratio", ratios["sluice"])
	reportSpread(b, "nginx_ratio", ratios["nginx"])
	b.ReportMetric(median(before["sluice"]), "sluice_req/s_before")
	b.ReportMetric(median(before["nginx"]), "nginx_req/s_before")
	b.ReportMetric(0, "ns/op")
}

// handshakeLoad runs sluice-bench's handshake mode against url.
func handshakeLoad(b *testing.B, url string, clients int, d time.Duration) *loadgen.Result {
	b.Helper()
	return loadgenRun(b, "-mode", "handshake", "-url", url, "-k", "-c", fmt.Sprint(clients), "-d", d.String())
}

// flood holds silent and partial-handshake connections open, reopening
// each one the target closes, until stop.
type flood struct {
	open, reopened atomic.Int64
	done           chan struct{}
	wg             sync.WaitGroup
	mu             sync.Mutex
	conns          map[net.Conn]bool
}

func startFlood(addr string, silent, partial int, hello []byte) *flood {
	f := &flood{done: make(chan struct{}), conns: map[net.Conn]bool{}}
	for i := 0; i < silent+partial; i++ {
		var first []byte
		if i >= silent {
			first = hello
		}
		f.wg.Add(1)
		go f.hold(addr, first)
	}
	return f
}

// hold keeps one attack connection open: dial, send first (if any), wait
// for the target to close it, again.
func (f *flood) hold(addr string, first []byte) {
	defer f.wg.Done()
	for n := 0; ; n++ {
		select {
		case <-f.done:
			return
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !f.track(c) {
			c.Close()
			return
		}
		if n > 0 {
			f.reopened.Add(1)
		}
		if len(first) > 0 {
			c.Write(first)
		}
		f.open.Add(1)
		io.Copy(io.Discard, c) // until the target closes or resets it, or stop
		f.open.Add(-1)
		f.untrack(c)
		c.Close()
	}
}

func (f *flood) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.done:
		return false
	default:
	}
	f.conns[c] = true
	return true
}

func (f *flood) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

func (f *flood) waitOpen(n int, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if f.open.Load() >= int64(n) {
			return true
		}
	}
	return false
}

func (f *flood) stop() {
	f.mu.Lock()
	close(f.done)
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// clientHelloBytes is a real ClientHello record from crypto/tls.
func clientHelloBytes(tb testing.TB) []byte {
	tb.Helper()
	a, c := net.Pipe()
	defer a.Close()
	defer c.Close()
	go tls.Client(a, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true}).Handshake()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(c, hdr); err != nil {
		tb.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(c, body); err != nil {
		tb.Fatal(err)
	}
	return append(hdr, body...)
}
