package bench

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/proxy"

	"github.com/sluice-proxy/sluice/internal/testutil"

	"github.com/sluice-proxy/sluice/internal/testutil/enginetest"
)

// sourceServer writes size bytes to every connection, then closes it.
func sourceServer(tb testing.TB, size int) string {
	block := make([]byte, 256<<10)
	return testutil.Serve(tb, func(c net.Conn) {
		for left := size; left > 0; left -= len(block) {
			if _, err := c.Write(block[:min(left, len(block))]); err != nil {
				return
			}
		}
	})
}

// startSluiceTCP runs sluice's tcp relay in-process in front of upstream.
func startSluiceTCP(tb testing.TB, upstream string, loops int) string {
	set := metrics.NewSet()
	tcp := proxy.NewTCP(proxy.TCPConfig{Upstream: upstream}, proxy.NewMetrics(set))
	return startBenchEngine(tb, loops, set, engine.Listener{Accept: tcp.Accept})
}

// startBenchEngine runs an engine with one listener on 127.0.0.1 until the
// benchmark ends and returns the listener's address.
func startBenchEngine(tb testing.TB, loops int, set *metrics.Set, ln engine.Listener) string {
	ln.Name, ln.Addr = "bench", "127.0.0.1:0"
	e := enginetest.Start(tb, engine.Config{
		Loops:       loops,
		LockThreads: true, // as the sluice binary runs
		Listeners:   []engine.Listener{ln},
		Logger:      slog.New(slog.DiscardHandler),
		Metrics:     set,
	})
	return e.Addr("bench")
}

// startGoProxy is the baseline: a goroutine-per-direction io.Copy relay.
func startGoProxy(tb testing.TB, upstream string) string {
	return testutil.Serve(tb, func(c net.Conn) {
		u, err := net.Dial("tcp", upstream)
		if err != nil {
			return
		}
		done := make(chan struct{})
		go func() {
			io.Copy(u, c)
			u.(*net.TCPConn).CloseWrite()
			close(done)
		}()
		io.Copy(c, u)
		c.(*net.TCPConn).CloseWrite()
		<-done
		u.Close()
	})
}

func download(tb testing.TB, addr string, size int, buf []byte) time.Duration {
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
	if err != nil || int(n) != size {
		tb.Fatalf("downloaded %d of %d: %v", n, size, err)
	}
	return time.Since(start)
}

// BenchmarkTCPPassthrough downloads through sluice's tcp mode and through a
// goroutine io.Copy relay, alternating in one run, and reports both
// throughputs and their ratio (sluice/baseline).
func BenchmarkTCPPassthrough(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("size=%dKiB", size>>10), func(b *testing.B) {
			src := sourceServer(b, size)
			sl := startSluiceTCP(b, src, 1)
			gp := startGoProxy(b, src)
			buf := make([]byte, 256<<10)
			download(b, sl, size, buf) // warm up both
			download(b, gp, size, buf)
			var tS, tG time.Duration
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%2 == 0 {
					tS += download(b, sl, size, buf)
					tG += download(b, gp, size, buf)
				} else {
					tG += download(b, gp, size, buf)
					tS += download(b, sl, size, buf)
				}
			}
			mb := float64(size) * float64(b.N) / (1 << 20)
			b.ReportMetric(mb/tS.Seconds(), "sluice-MiB/s")
			b.ReportMetric(mb/tG.Seconds(), "goproxy-MiB/s")
			b.ReportMetric(tG.Seconds()/tS.Seconds(), "ratio-sluice/goproxy")
		})
	}
}
