package bench

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/tlsio"
)

type tlsBench struct {
	srv  *tlsio.Server // crypto/tls engine
	nat  *tlsio.Server // native engine
	std  *tls.Config
	pool *x509.CertPool
}

func newTLSBench(tb testing.TB) *tlsBench {
	kp, err := tlsio.SelfSigned(time.Now(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	store, _ := tlsio.NewCertStore(kp)
	srv, err := tlsio.NewServer(tlsio.ServerConfig{Certs: store, SessionTicketsDisabled: true, Engine: tlsio.EngineStdlib})
	if err != nil {
		tb.Fatal(err)
	}
	nat, err := tlsio.NewServer(tlsio.ServerConfig{Certs: store, SessionTicketsDisabled: true, Engine: tlsio.EngineNative})
	if err != nil {
		tb.Fatal(err)
	}
	keyPEM, _ := kp.KeyPEM()
	cert, err := tls.X509KeyPair(kp.CertPEM(), keyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(kp.Leaf())
	return &tlsBench{srv: srv, nat: nat, pool: pool, std: &tls.Config{Certificates: []tls.Certificate{cert}, SessionTicketsDisabled: true}}
}

// tlsHello answers one byte per byte received, after the handshake.
type tlsHello struct{ engine.BaseHandler }

func (tlsHello) OnOpen(c *engine.Conn) { c.Advance(diag.DataTransfer) }
func (tlsHello) OnData(c *engine.Conn, b []byte) int {
	c.Write(b)
	return len(b)
}

func (tb *tlsBench) sluice(b testing.TB, loops int) string {
	return tb.sluiceWith(b, loops, tb.srv)
}

func (tb *tlsBench) sluiceWith(b testing.TB, loops int, srv *tlsio.Server) string {
	return startBenchEngine(b, loops, metrics.NewSet(), engine.Listener{TLS: srv,
		Accept: func(*engine.Conn) engine.Handler { return tlsHello{} }})
}

// goTLS is the baseline: crypto/tls with a goroutine per connection.
func (tb *tlsBench) goTLS(b testing.TB) string {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tb.std)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	goServe(ln, nil, true)
	return ln.Addr().String()
}

// handshakes runs n full handshakes (no resumption) with conc clients and
// a one-byte round trip each, returning the elapsed time.
func (tb *tlsBench) handshakes(b testing.TB, addr string, n, conc int, v uint16) time.Duration {
	cfg := &tls.Config{RootCAs: tb.pool, ServerName: "localhost", MinVersion: v, MaxVersion: v, SessionTicketsDisabled: true}
	var wg sync.WaitGroup
	jobs := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	start := time.Now()
	errs := make(chan error, conc)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one := []byte{1}
			for range jobs {
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
				if err != nil {
					errs <- err
					return
				}
				if c.ConnectionState().DidResume {
					errs <- errSessionResumed
				}
				c.Write(one)
				if _, err := c.Read(one); err != nil {
					errs <- err
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return time.Since(start)
}

var errSessionResumed = &net.AddrError{Err: "session resumed: the benchmark needs full handshakes"}

// BenchmarkTLSHandshakes measures full handshakes per second over loopback
// sockets against sluice's engine (tlsio) and against crypto/tls with a
// goroutine per connection, alternating in one run, and reports the ratio.
// The client shares the two cores with the server, so figures are relative.
// Each server runs as it would be deployed: sluice with its loops locked to
// threads and GOMAXPROCS raised by one per loop (engine.SetProcs, as the
// binary does), crypto/tls with the default GOMAXPROCS; the process
// switches between the two settings before each timed batch.
func BenchmarkTLSHandshakes(b *testing.B) {
	base := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(base)
	for _, v := range []struct {
		name string
		ver  uint16
	}{{"tls13", tls.VersionTLS13}, {"tls12", tls.VersionTLS12}} {
		b.Run(v.name, func(b *testing.B) {
			tb := newTLSBench(b)
			// sluice on each engine (the native one falls back to
			// crypto/tls for TLS 1.2, so tls12 measures the replay too).
			sl, sn, gs := tb.sluice(b, 2), tb.sluiceWith(b, 2, tb.nat), tb.goTLS(b)
			const per, conc = 400, 32
			tb.handshakes(b, sl, 20, 4, v.ver)
			tb.handshakes(b, sn, 20, 4, v.ver)
			tb.handshakes(b, gs, 20, 4, v.ver)
			var tS, tN, tG time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				engine.SetProcs(2)
				tS += tb.handshakes(b, sl, per, conc, v.ver)
				tN += tb.handshakes(b, sn, per, conc, v.ver)
				runtime.GOMAXPROCS(base)
				tG += tb.handshakes(b, gs, per, conc, v.ver)
			}
			total := float64(per * b.N)
			b.ReportMetric(total/tS.Seconds(), "sluice-hs/s")
			b.ReportMetric(total/tN.Seconds(), "native-hs/s")
			b.ReportMetric(total/tG.Seconds(), "gotls-hs/s")
			b.ReportMetric(tG.Seconds()/tS.Seconds(), "ratio-sluice/gotls")
			b.ReportMetric(tG.Seconds()/tN.Seconds(), "ratio-native/gotls")
			b.ReportMetric(tS.Seconds()/tN.Seconds(), "ratio-native/stdlib")
		})
	}
}
