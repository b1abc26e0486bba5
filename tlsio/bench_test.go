package tlsio

import (
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ---- drivers shared by the benchmarks ----

// benchWake is one wake channel for benchmarks that drive one handshake at
// a time; spurious wake-ups are harmless.
type benchLoop struct{ wake chan struct{} }

func newBenchLoop() *benchLoop { return &benchLoop{wake: make(chan struct{}, 1)} }

func (l *benchLoop) wakeFn() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// establish completes a handshake between a crypto/tls client (on its own
// goroutine) and a tlsio Conn driven by the calling goroutine, which plays
// the event loop.
func (l *benchLoop) establish(tb testing.TB, srv *Server, cfg *tls.Config) (Conn, *tls.Conn, *clientConn) {
	c := srv.NewConn(l.wakeFn)
	cc := newClientConn(nil)
	cli := tls.Client(cc, cfg)
	cdone := make(chan error, 1)
	go func() { cdone <- cli.Handshake() }()
	now := time.Now()
	clientDone := false
	for !clientDone || !c.Events().Has(HandshakeDone) {
		select {
		case b := <-cc.toServer:
			c.Feed(now, b)
		case <-l.wake:
		case err := <-cdone:
			if err != nil {
				tb.Fatalf("client handshake: %v", err)
			}
			clientDone = true
		}
		if w := c.HandshakeWork(); w != nil {
			go w()
		}
		if out := c.AppendOutput(nil); len(out) > 0 {
			cc.deliver(out)
		}
		if c.Events().Has(Fatal) {
			tb.Fatalf("server: %v", c.Err())
		}
	}
	return c, cli, cc
}

// stdPair completes a crypto/tls handshake over net.Pipe, both sides.
func stdPair(tb testing.TB, scfg, ccfg *tls.Config) (srv, cli *tls.Conn, sp, cp net.Conn) {
	sp, cp = net.Pipe()
	srv, cli = tls.Server(sp, scfg), tls.Client(cp, ccfg)
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		tb.Fatal(err)
	}
	if err := <-errc; err != nil {
		tb.Fatal(err)
	}
	return srv, cli, sp, cp
}

func benchClientConfig(version uint16) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // the same client work on both sides of each comparison
		MinVersion:         version,
		MaxVersion:         version,
		NextProtos:         []string{"h2", "http/1.1"},
		ServerName:         "localhost",
	}
}

func stdServerConfig(tb testing.TB) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{localPair(tb).cert},
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

var benchSizes = []struct {
	name string
	n    int
}{{"1KiB", 1 << 10}, {"16KiB", 16 << 10}, {"1MiB", 1 << 20}}

// ---- handshakes ----

// cpuTime is the process's user+system CPU time: client and server both,
// so only differences between variants are the server's. It is what a
// loaded machine distorts least.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHandshake: full handshakes (no resumption), both sides in this
// process: a crypto/tls client against tlsio, and against crypto/tls over
// net.Pipe. ECDSA P-256 certificate, Go's default groups (X25519MLKEM768
// for TLS 1.3).
func BenchmarkHandshake(b *testing.B) {
	for _, v := range versions {
		for _, eng := range benchEngines {
			b.Run(v.name+"/"+benchName(eng), func(b *testing.B) {
				srv := newTestServer(b, ServerConfig{Engine: eng})
				cfg := benchClientConfig(v.v)
				l := newBenchLoop()
				b.ReportAllocs()
				start, cpu0 := time.Now(), cpuTime()
				for b.Loop() {
					c, _, cc := l.establish(b, srv, cfg)
					c.Close()
					cc.Close()
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/handshake")
			})
		}
		b.Run(v.name+"/stdlib", func(b *testing.B) {
			scfg := stdServerConfig(b)
			cfg := benchClientConfig(v.v)
			b.ReportAllocs()
			start, cpu0 := time.Now(), cpuTime()
			for b.Loop() {
				_, _, sp, cp := stdPair(b, scfg, cfg)
				sp.Close()
				cp.Close()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/handshake")
		})
	}
}

// ---- record throughput ----

// benchEngines are the tlsio engines each benchmark runs, beside the
// crypto/tls baseline: "tlsio" is the crypto/tls-backed Conn, "native"
// sluice's own TLS 1.3.
var benchEngines = []string{EngineStdlib, EngineNative}

func benchName(engine string) string {
	if engine == EngineNative {
		return "native"
	}
	return "tlsio"
}

// benchConn is an established tlsio Conn driven directly by the benchmark.
func benchConn(b *testing.B, engine string) (Conn, *tls.Conn, *clientConn) {
	srv := newTestServer(b, ServerConfig{Engine: engine})
	return newBenchLoop().establish(b, srv, benchClientConfig(tls.VersionTLS13))
}

// BenchmarkSeal encrypts payloads of each size with TLS 1.3 (AES-128-GCM on
// this machine; see the cipher in the report). tlsio seals into a reused
// buffer; the baseline is tls.Conn.Write over net.Pipe with a goroutine
// discarding the other end.
func BenchmarkSeal(b *testing.B) {
	for _, sz := range benchSizes {
		payload := make([]byte, sz.n)
		for _, eng := range benchEngines {
			b.Run(sz.name+"/"+benchName(eng), func(b *testing.B) {
				c, _, _ := benchConn(b, eng)
				var dst []byte
				var err error
				for range 200 { // past crypto/tls's small first records
					dst, _ = c.Seal(dst[:0], payload[:min(len(payload), 1024)])
				}
				b.SetBytes(int64(sz.n))
				b.ReportAllocs()
				for b.Loop() {
					if dst, err = c.Seal(dst[:0], payload); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(sz.name+"/stdlib", func(b *testing.B) {
			srv, _, _, cp := stdPair(b, stdServerConfig(b), benchClientConfig(tls.VersionTLS13))
			go io.Copy(io.Discard, cp)
			defer cp.Close()
			for range 200 {
				srv.Write(payload[:min(len(payload), 1024)])
			}
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := srv.Write(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// captureConn forwards to a net.Conn until capture is set; then writes
// append to it.
type captureConn struct {
	net.Conn
	capture *[]byte
}

func (c *captureConn) Write(p []byte) (int, error) {
	if c.capture != nil {
		*c.capture = append(*c.capture, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// sealedBatch is ciphertext a crypto/tls client sealed ahead of time, in
// one reused arena so that generating it makes no garbage: payload i is
// arena[ends[i-1]:ends[i]].
type sealedBatch struct {
	arena []byte
	ends  []int
}

// fill has cli seal count payloads; cli's transport appends to b.arena.
func (s *sealedBatch) fill(cli *tls.Conn, payload []byte, count int) {
	s.arena, s.ends = s.arena[:0], s.ends[:0]
	for range count {
		if _, err := cli.Write(payload); err != nil {
			panic(err)
		}
		s.ends = append(s.ends, len(s.arena))
	}
}

func (s *sealedBatch) each(f func(ct []byte)) {
	start := 0
	for _, end := range s.ends {
		f(s.arena[start:end])
		start = end
	}
}

// batchCount keeps a batch of pre-sealed ciphertext to about 4 MiB.
func batchCount(size int) int { return max(1, min(1024, (4<<20)/size)) }

// BenchmarkOpen decrypts payloads of each size (TLS 1.3). The ciphertext is
// sealed beforehand by a crypto/tls client, in batches outside the timer,
// and fed in slices of at most 64 KiB as a socket read would deliver it.
// tlsio: Feed plus ReadPlaintext into a reused buffer. Baseline:
// tls.Conn.Read over net.Pipe, a goroutine writing the ciphertext into the
// pipe.
func BenchmarkOpen(b *testing.B) {
	const readChunk = 64 << 10
	for _, sz := range benchSizes {
		payload := make([]byte, sz.n)
		for _, eng := range benchEngines {
			b.Run(sz.name+"/"+benchName(eng), func(b *testing.B) {
				c, cli, cc := benchConn(b, eng)
				var batch sealedBatch
				cc.wmu.Lock()
				cc.capture = &batch.arena
				cc.wmu.Unlock()
				pt := make([]byte, 0, 2*readChunk)
				now := time.Now()
				open := func(ct []byte) {
					for len(ct) > 0 {
						n := min(len(ct), readChunk)
						if err := c.Feed(now, ct[:n]); err != nil {
							b.Fatal(err)
						}
						ct = ct[n:]
						pt, _ = c.ReadPlaintext(pt[:0])
					}
				}
				batch.fill(cli, payload, 10)
				batch.each(open)
				b.SetBytes(int64(sz.n))
				b.ReportAllocs()
				b.ResetTimer()
				for done := 0; done < b.N; {
					b.StopTimer()
					batch.fill(cli, payload, min(batchCount(sz.n), b.N-done))
					b.StartTimer()
					batch.each(open)
					done += len(batch.ends)
				}
			})
		}
		b.Run(sz.name+"/stdlib", func(b *testing.B) {
			sp, cp := net.Pipe()
			capc := &captureConn{Conn: cp}
			srv := tls.Server(sp, stdServerConfig(b))
			cli := tls.Client(capc, benchClientConfig(tls.VersionTLS13))
			errc := make(chan error, 1)
			go func() { errc <- srv.Handshake() }()
			if err := cli.Handshake(); err != nil {
				b.Fatal(err)
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			// The server sends session tickets; let the client consume them.
			go func() { srv.Write([]byte{0}) }()
			cli.Read(make([]byte, 1))
			var batch sealedBatch
			capc.capture = &batch.arena
			buf := make([]byte, sz.n)
			feed := func() chan struct{} {
				done := make(chan struct{})
				go func() {
					defer close(done)
					for ct := batch.arena; len(ct) > 0; {
						n := min(len(ct), readChunk)
						cp.Write(ct[:n])
						ct = ct[n:]
					}
				}()
				return done
			}
			read := func() {
				for range batch.ends {
					if _, err := io.ReadFull(srv, buf); err != nil {
						b.Fatal(err)
					}
				}
			}
			batch.fill(cli, payload, 10)
			fed := feed()
			read()
			<-fed
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				b.StopTimer()
				batch.fill(cli, payload, min(batchCount(sz.n), b.N-done))
				b.StartTimer()
				fed := feed()
				read()
				<-fed
				done += len(batch.ends)
			}
			sp.Close()
			cp.Close()
		})
	}
}

// ---- memory per idle connection ----

const idleConns = 10000

// heapNow returns live heap and stack bytes after two GCs (the second
// empties sync.Pools).
func heapNow() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse
}

// exchange is one small request and response on a fresh connection, so
// that the idle connection has been used once.
const (
	idleRequest  = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
	idleResponse = "HTTP/1.1 204 No Content\r\n\r\n"
)

// BenchmarkIdleConnHeap holds 10,000 established, idle server connections
// (TLS 1.3, each after one small request and response) and reports the
// memory each costs. tlsio: heap only, no goroutine. Baseline: crypto/tls
// over net.Pipe with one goroutine per connection blocked in Read, which is
// how a goroutine-per-connection server idles (with a 64-byte read buffer;
// net/http would add a 4 KiB bufio.Reader); its heap includes both net.Pipe
// ends, whose cost alone is reported as pipe-B/conn. Client-side state is
// dropped before measuring in both cases. Run with -benchtime=1x.
func BenchmarkIdleConnHeap(b *testing.B) {
	for _, eng := range benchEngines {
		b.Run(benchName(eng), func(b *testing.B) {
			srv := newTestServer(b, ServerConfig{Engine: eng})
			cfg := benchClientConfig(tls.VersionTLS13)
			for b.Loop() {
				l := newBenchLoop()
				conns := make([]Conn, 0, idleConns)
				heap0, stack0 := heapNow()
				now := time.Now()
				for range idleConns {
					c, cli, cc := l.establish(b, srv, cfg)
					cli.Write([]byte(idleRequest))
					var ct []byte
					for len(cc.toServer) > 0 {
						ct = append(ct, <-cc.toServer...)
					}
					c.Feed(now, ct)
					if pt, _ := c.ReadPlaintext(nil); string(pt) != idleRequest {
						b.Fatalf("request %q", pt)
					}
					if _, err := c.Seal(nil, []byte(idleResponse)); err != nil {
						b.Fatal(err)
					}
					cc.Close()
					conns = append(conns, c)
				}
				heap1, stack1 := heapNow()
				b.ReportMetric(float64(int64(heap1)-int64(heap0))/idleConns, "heap-B/conn")
				b.ReportMetric(float64(int64(stack1)-int64(stack0))/idleConns, "stack-B/conn")
				b.ReportMetric(0, "goroutines/conn")
				runtime.KeepAlive(conns)
				for _, c := range conns {
					c.Close()
				}
			}
		})
	}
	b.Run("stdlib", func(b *testing.B) {
		scfg := stdServerConfig(b)
		cfg := benchClientConfig(tls.VersionTLS13)
		for b.Loop() {
			// The cost of bare net.Pipe pairs, to tell it apart.
			heapP0, _ := heapNow()
			pipes := make([]net.Conn, 0, 2*idleConns)
			for range idleConns {
				a, c := net.Pipe()
				pipes = append(pipes, a, c)
			}
			heapP1, _ := heapNow()
			for _, p := range pipes {
				p.Close()
			}
			pipes = nil

			var wg sync.WaitGroup
			servers := make([]*tls.Conn, 0, idleConns)
			clientEnds := make([]net.Conn, 0, idleConns)
			heap0, stack0 := heapNow()
			g0 := runtime.NumGoroutine()
			for range idleConns {
				srv, cli, _, cp := stdPair(b, scfg, cfg)
				got := make(chan string, 1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 64) // just enough for the request: measure crypto/tls, not a bufio.Reader
					n, _ := srv.Read(buf)
					got <- string(buf[:n])
					srv.Write([]byte(idleResponse))
					srv.Read(buf) // idle here until closed
				}()
				cli.Write([]byte(idleRequest))
				if r := <-got; r != idleRequest {
					b.Fatalf("request %q", r)
				}
				io.ReadFull(cli, make([]byte, len(idleResponse)))
				servers = append(servers, srv)
				clientEnds = append(clientEnds, cp) // the raw end stays open; the client tls.Conn is dropped
			}
			heap1, stack1 := heapNow()
			g1 := runtime.NumGoroutine()
			b.ReportMetric(float64(int64(heap1)-int64(heap0))/idleConns, "heap-B/conn")
			b.ReportMetric(float64(int64(stack1)-int64(stack0))/idleConns, "stack-B/conn")
			b.ReportMetric(float64(g1-g0)/idleConns, "goroutines/conn")
			b.ReportMetric(float64(int64(heapP1)-int64(heapP0))/idleConns, "pipe-B/conn")
			runtime.KeepAlive(servers)
			for _, c := range clientEnds {
				c.Close()
			}
			wg.Wait()
		}
	})
}
