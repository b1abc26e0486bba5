package bench

import (
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkTCPSlowReaderRSS streams 16 MiB from a fast upstream through
// sluice's tcp relay (and through the io.Copy baseline) to a client reading
// at 1 MiB/s, sampling this process's RSS, and reports the peak growth for
// each. (The test suite's variant, cmd/sluice TestTCPModeRSSBoundedWithSlowReader,
// sends 128 MiB to an 8 MiB/s reader against the real binary; at 1 MiB/s
// 128 MiB would take over two minutes per iteration.)
func BenchmarkTCPSlowReaderRSS(b *testing.B) {
	const total = 16 << 20
	const rate = 1 << 20
	src := sourceServer(b, total)
	targets := []struct {
		name string
		addr string
	}{{"sluice", startSluiceTCP(b, src, 2)}, {"goproxy", startGoProxy(b, src)}}
	for i := 0; i < b.N; i++ {
		for _, tg := range targets {
			base := rss()
			peak := base
			c, err := net.Dial("tcp", tg.addr)
			if err != nil {
				b.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(2 * total / rate * time.Second))
			buf := make([]byte, 32<<10)
			start := time.Now()
			got := 0
			lastSample := start
			for {
				n, err := c.Read(buf)
				got += n
				if time.Since(lastSample) > 50*time.Millisecond {
					lastSample = time.Now()
					if r := rss(); r > peak {
						peak = r
					}
				}
				if err != nil {
					if err != io.EOF {
						b.Fatal(err)
					}
					break
				}
				if ahead := time.Duration(float64(got)/rate*float64(time.Second)) - time.Since(start); ahead > 0 {
					time.Sleep(ahead)
				}
			}
			c.Close()
			if got != total {
				b.Fatalf("%s: got %d of %d", tg.name, got, total)
			}
			b.ReportMetric(float64(peak-base)/(1<<20), tg.name+"-rss-growth-MiB")
		}
	}
}
