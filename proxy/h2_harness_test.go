package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/net/http2"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/tlsio"
)

// HTTP/2 test harness: sluice with a TLS listener (ALPN h2 and http/1.1)
// and a cleartext one (HTTP/1.1 and h2c with prior knowledge), x/net's
// HTTP/2 client on the other side.

type h2Env struct {
	*hpEnv
	tlsAddr string // TLS listener
}

// h2Start runs the proxy with both listeners.
func h2Start(t testing.TB, cfg HTTPConfig, upstreams ...string) *h2Env {
	t.Helper()
	return h2StartEngine(t, cfg, engine.Config{}, upstreams...)
}

func h2StartEngine(t testing.TB, cfg HTTPConfig, ecfg engine.Config, upstreams ...string) *h2Env {
	t.Helper()
	if len(cfg.Routes) == 0 {
		cfg.Routes = []Route{{PathPrefix: "/", Upstreams: upstreams}}
	}
	env := &hpEnv{set: metrics.NewSet(), log: &hpLog{}}
	if cfg.AccessLog == nil {
		cfg.AccessLog = slog.New(env.log)
	}
	if cfg.Logger == nil {
		cfg.Logger = hpLogger()
	}
	h, err := NewHTTP(cfg, NewMetrics(env.set))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := tlsio.SelfSigned(time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	store, err := tlsio.NewCertStore(kp)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tlsio.NewServer(tlsio.ServerConfig{Certs: store, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if ecfg.Loops == 0 {
		ecfg.Loops = 2
	}
	ecfg.Listeners = []engine.Listener{
		{Name: "http", Addr: "127.0.0.1:0", Accept: h.Accept},
		{Name: "tls", Addr: "127.0.0.1:0", Accept: h.Accept, TLS: srv},
	}
	if ecfg.Logger == nil {
		ecfg.Logger = hpLogger()
	}
	ecfg.Metrics = env.set
	e, err := engine.New(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(e); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	env.addr, env.e, env.h = e.Addr("http"), e, h
	return &h2Env{hpEnv: env, tlsAddr: e.Addr("tls")}
}

// h2cClient speaks HTTP/2 with prior knowledge over cleartext.
func h2cClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
		},
	}
}

// h2TLSClient speaks HTTP/2 over TLS (ALPN h2).
func h2TLSClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http2.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}},
		},
	}
}

func (env *h2Env) h2cURL(path string) string { return "http://" + env.addr + path }
func (env *h2Env) tlsURL(path string) string { return "https://" + env.tlsAddr + path }

// h2cBackend is an h2c (prior knowledge) upstream: x/net's http2.Server
// on every accepted connection. conns counts them.
type h2cBackend struct {
	addr  string
	conns atomic.Int64
	srv   *http2.Server
}

func h2cServe(t testing.TB, h http.Handler) *h2cBackend {
	t.Helper()
	return h2cServeWith(t, &http2.Server{}, h)
}

func h2cServeWith(t testing.TB, srv *http2.Server, h http.Handler) *h2cBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &h2cBackend{addr: ln.Addr().String(), srv: srv}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.ServeConn(c, &http2.ServeConnOpts{Handler: h})
				c.Close()
			}()
		}
	}()
	return b
}

func (b *h2cBackend) url() string { return "h2c://" + b.addr }
