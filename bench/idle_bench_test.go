package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/tlsio"
)

// The client side of the idle-connection benchmark runs in a child process
// (this test binary re-executed), so the server process holds only its own
// 10,000 sockets under the machine's 20,000-fd limit.
func TestMain(m *testing.M) {
	if spec := os.Getenv("SLUICE_BENCH_IDLE_CLIENT"); spec != "" {
		os.Exit(idleClient(spec))
	}
	if os.Getenv("SLUICE_BENCH_SLOW_SERVER") != "" {
		os.Exit(slowServer())
	}
	os.Exit(m.Run())
}

// idleClient opens n connections to addr ("addr,n"), prints "ready", and
// holds them until stdin closes.
func idleClient(spec string) int {
	f := strings.Split(spec, ",")
	addr := f[0]
	n, _ := strconv.Atoi(f[1])
	useTLS := len(f) > 2 && f[2] == "tls"
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		var c net.Conn
		var err error
		if useTLS {
			var tc *tls.Conn
			tc, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
				&tls.Config{InsecureSkipVerify: true, ClientSessionCache: nil})
			if err == nil {
				// A round trip, so the server has finished its side too.
				tc.Write([]byte{1})
				_, err = tc.Read(make([]byte, 1))
			}
			c = tc
		} else {
			c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		}
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return 0
}

type holdOpen struct {
	engine.BaseHandler
}

func (holdOpen) OnOpen(c *engine.Conn) { c.Advance(diag.DataTransfer) }

func rss() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func heapInuse() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// holdClients starts the child holding n connections to addr and returns a
// function that releases them.
func holdClients(b *testing.B, addr string, n int, count func() int, extra ...string) func() {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SLUICE_BENCH_IDLE_CLIENT="+strings.Join(append([]string{addr, strconv.Itoa(n)}, extra...), ","))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		b.Fatalf("client: %q", line)
	}
	deadline := time.Now().Add(60 * time.Second)
	for count() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := count(); got < n {
		b.Fatalf("server sees %d of %d connections", got, n)
	}
	return func() { stdin.Close(); cmd.Wait() }
}

// BenchmarkIdleConnMemory holds 10,000 idle connections on sluice's engine
// and on a goroutine-per-connection Go server (each blocked in Read with a
// 4 KiB buffer, the net/http-like baseline), and reports heap+stack and RSS
// per connection for both, and the ratio.
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 10000
	for i := 0; i < b.N; i++ {
		// sluice
		base, baseRSS := heapInuse(), rss()
		e, err := engine.New(engine.Config{
			Loops:     2,
			Listeners: []engine.Listener{{Name: "idle", Addr: "127.0.0.1:0", Accept: func(*engine.Conn) engine.Handler { return holdOpen{} }}},
			Logger:    slog.New(slog.DiscardHandler),
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Start(); err != nil {
			b.Fatal(err)
		}
		release := holdClients(b, e.Addr("idle"), n, func() int { return int(e.Live()) })
		sHeap, sRSS := heapInuse()-base, rss()-baseRSS
		release()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		e.Stop(ctx)
		cancel()

		// baseline
		base, baseRSS = heapInuse(), rss()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		var live atomicInt
		goServe(ln, &live, false)
		release = holdClients(b, ln.Addr().String(), n, live.get)
		gHeap, gRSS := heapInuse()-base, rss()-baseRSS
		release()
		ln.Close()

		b.ReportMetric(float64(sHeap)/n, "sluice-heap-B/conn")
		b.ReportMetric(float64(sRSS)/n, "sluice-rss-B/conn")
		b.ReportMetric(float64(gHeap)/n, "goroutine-heap-B/conn")
		b.ReportMetric(float64(gRSS)/n, "goroutine-rss-B/conn")
		b.ReportMetric(float64(sHeap)/float64(gHeap), "ratio-heap-sluice/goroutine")
	}
}

// BenchmarkIdleTLSConnMemory holds 10,000 idle TLS 1.3 connections
// (handshake done, one round trip) on sluice and on crypto/tls with a
// goroutine per connection, and reports heap+stack per connection and the
// ratio.
func BenchmarkIdleTLSConnMemory(b *testing.B) {
	const n = 10000
	tb := newTLSBench(b)
	for i := 0; i < b.N; i++ {
		held := func(srv *tlsio.Server) int64 {
			base := heapInuse()
			e, err := engine.New(engine.Config{
				Loops: 2,
				Listeners: []engine.Listener{{Name: "idle", Addr: "127.0.0.1:0", TLS: srv,
					Accept: func(*engine.Conn) engine.Handler { return tlsHello{} }}},
				Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				b.Fatal(err)
			}
			if err := e.Start(); err != nil {
				b.Fatal(err)
			}
			release := holdClients(b, e.Addr("idle"), n, func() int { return int(e.Live()) }, "tls")
			h := heapInuse() - base
			release()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			e.Stop(ctx)
			cancel()
			return h
		}
		sHeap, nHeap := held(tb.srv), held(tb.nat)

		base := heapInuse()
		ln, err := tls.Listen("tcp", "127.0.0.1:0", tb.std)
		if err != nil {
			b.Fatal(err)
		}
		var live atomicInt
		goServe(ln, &live, true)
		release := holdClients(b, ln.Addr().String(), n, live.get, "tls")
		gHeap := heapInuse() - base
		release()
		ln.Close()
		b.ReportMetric(float64(sHeap)/n, "sluice-heap-B/conn")
		b.ReportMetric(float64(nHeap)/n, "native-heap-B/conn")
		b.ReportMetric(float64(gHeap)/n, "gotls-heap-B/conn")
		b.ReportMetric(float64(sHeap)/float64(gHeap), "ratio-heap-sluice/gotls")
		b.ReportMetric(float64(nHeap)/float64(gHeap), "ratio-heap-native/gotls")
	}
}
