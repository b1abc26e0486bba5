package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/tlsio"
)

// build is the one constructor from a checked config to what runs: the
// certificate store, the TLS server, the proxy and the engine. Start-up
// and -check both call it, so whatever start-up would refuse, -check
// refuses with the same lines. It opens no socket, creates no file,
// starts no goroutine and logs nothing; every problem is one error.
func build(cfg *config, env buildEnv) (*built, error) {
	if env.set == nil {
		env.set = metrics.NewSet()
	}
	if env.log == nil {
		env.log = slog.New(slog.DiscardHandler)
	}
	b := &built{}
	var errs []error
	// TLS: always in http mode, in tcp mode when -cert is given.
	if cfg.mode == "http" || len(cfg.certs) > 0 {
		var err error
		if b.store, b.pairs, b.selfSigned, err = certStore(cfg); err != nil {
			errs = append(errs, err)
		} else if b.tls, err = tlsio.NewServer(tlsServerConfig(cfg, b.store, env.set)); err != nil {
			errs = append(errs, fmt.Errorf("tls: %v", err))
		}
	}
	b.routes = cfg.routes
	upstream := env.demo
	if len(cfg.upstreams) > 0 {
		upstream, _ = upstreamAddr(cfg.upstreams[0])
	} else if len(cfg.routes) == 0 {
		b.demoRoutes = []proxy.Route{{PathPrefix: "/", Upstreams: []string{env.demo}}}
		b.routes = b.demoRoutes
	}
	pm := proxy.NewMetrics(env.set)
	var listeners []engine.Listener
	switch cfg.mode {
	case "tcp":
		tcp := proxy.NewTCP(proxy.TCPConfig{
			Upstream: upstream, DialTimeout: cfg.dialTimeout, IdleTimeout: cfg.idleTimeout, ProxyProtocol: cfg.upProxyV, Logger: env.log,
		}, pm)
		listeners = append(listeners, engine.Listener{Name: "main", Addr: cfg.listen, Accept: tcp.Accept, TLS: b.tls, ProxyProtocol: cfg.proxyProtocol})
	case "http":
		hc := httpConfig(cfg, b.routes, env)
		h, err := proxy.NewHTTP(hc, pm)
		if err != nil {
			errs = append(errs, errors.New(strings.TrimPrefix(err.Error(), "http proxy: ")))
			break
		}
		b.http = h
		listeners = append(listeners, engine.Listener{Name: "main", Addr: cfg.listen, Accept: h.Accept, TLS: b.tls, ProxyProtocol: cfg.proxyProtocol})
		if cfg.listenPlain != "" {
			listeners = append(listeners, engine.Listener{Name: "plain", Addr: cfg.listenPlain, Accept: h.Accept,
				ProxyProtocol: cfg.proxyProtocol, ClientFirst: true})
		}
	}
	if len(errs) > 0 {
		b.close()
		return nil, errors.Join(errs...)
	}
	for i := range listeners {
		listeners[i].Inherited = env.inherited[listeners[i].Name]
	}
	eng, err := engine.New(engine.Config{
		Loops:            cfg.loops,
		LockThreads:      cfg.lockLoops,
		Listeners:        listeners,
		WriteTimeout:     cfg.writeTimeout,
		LingerTimeout:    cfg.lingerTimeout,
		HandshakeTimeout: cfg.handshakeTimeout,
		FirstByteTimeout: cfg.firstByteTimeout,
		MaxHandshakes:    cfg.maxHS,
		MaxConns:         cfg.maxConns,
		Logger:           env.log,
		Metrics:          env.set,
	})
	if err != nil {
		b.close()
		return nil, err
	}
	b.engine = eng
	return b, nil
}

// buildEnv is what build takes from the running process; -check gives
// none of it.
type buildEnv struct {
	set       *metrics.Set
	log       *slog.Logger
	access    *accessLog // nil: off
	demo      string     // the demo upstream's host:port, used when nothing is configured
	inherited inherited  // listening sockets handed over, by listener name
}

// built is what build made, nothing started yet.
type built struct {
	store      *tlsio.CertStore // nil without TLS
	pairs      []*tlsio.KeyPair // in store
	selfSigned bool             // pairs is one fresh self-signed certificate
	tls        *tlsio.Server
	http       *proxy.HTTP   // http mode
	routes     []proxy.Route // what http serves
	demoRoutes []proxy.Route // the demo upstream's route, when nothing is configured
	engine     *engine.Engine
}

// close undoes build (for -check and failures before the engine starts).
func (b *built) close() {
	if b.http != nil {
		b.http.Close()
	}
}

// certStore builds the listener's certificates: the files given, or a
// fresh self-signed one for localhost.
func certStore(cfg *config) (*tlsio.CertStore, []*tlsio.KeyPair, bool, error) {
	pairs, err := loadPairs(cfg.certs, cfg.keys)
	if err != nil {
		return nil, nil, false, err
	}
	self := len(pairs) == 0
	if self {
		kp, err := tlsio.SelfSigned(time.Now(), rand.Reader)
		if err != nil {
			return nil, nil, false, fmt.Errorf("self-signed certificate: %v", err)
		}
		pairs = append(pairs, kp)
	}
	store, err := tlsio.NewCertStore(pairs...)
	if err != nil {
		return nil, nil, false, err
	}
	return store, pairs, self, nil
}

// tlsServerConfig is the client-facing TLS: http mode speaks HTTP/2 to
// clients that ask for it by ALPN; tcp mode relays bytes and offers only
// HTTP/1.x. A client offering only http/1.0 (curl --http1.0) is served as
// HTTP/1.x: crypto/tls refuses a handshake with no protocol in common.
func tlsServerConfig(cfg *config, store *tlsio.CertStore, set *metrics.Set) tlsio.ServerConfig {
	protos := []string{"http/1.1", "http/1.0"}
	if cfg.mode == "http" {
		protos = []string{"h2", "http/1.1", "http/1.0"}
	}
	return tlsio.ServerConfig{Certs: store, NextProtos: protos, CountError: engine.TLSErrorCounter(set),
		Engine: cfg.tlsEngine, KeyUpdateAfter: cfg.tlsKeyUpdate}
}

// httpConfig maps the flags onto proxy.HTTPConfig. A flag's 0 ("off") is
// proxy's negative: 0 there means the default.
func httpConfig(cfg *config, routes []proxy.Route, env buildEnv) proxy.HTTPConfig {
	hc := proxy.HTTPConfig{
		Routes:                routes,
		DialTimeout:           cfg.dialTimeout,
		ResponseHeaderTimeout: cfg.upTimeout,
		ReadTimeout:           cfg.upTimeout,
		HeaderTimeout:         cfg.headerTimeout,
		IdleTimeout:           cfg.idleTimeout,
		UpstreamIdleTimeout:   cfg.poolIdle,
		MaxHeadBytes:          cfg.maxHead,
		MaxFields:             cfg.maxFields,
		MaxRequestLine:        cfg.maxLine,
		PoolSize:              cfg.poolSize,
		UpstreamMaxConns:      cfg.upMaxConns,
		UpstreamQueue:         offIfZero(cfg.upQueue),
		UpstreamQueueTimeout:  cfg.upQueueWait,
		Balance:               cfg.balance,
		MaxFails:              offIfZero(cfg.maxFails),
		HealthPath:            cfg.healthPath,
		Retries:               offIfZero(cfg.retries),
		WriteTimeout:          cfg.writeTimeout,
		H2: h2.Config{
			MaxConcurrentStreams: uint32(cfg.h2MaxStreams),
			MaxHeaderListSize:    uint32(cfg.h2MaxHeaderList),
			InitialStreamWindow:  uint32(cfg.h2StreamWindow),
			ConnWindow:           uint32(cfg.h2ConnWindow),
		},
		H2MaxBuffered: cfg.h2MaxBuffered,
		StallTimeout:  cfg.h2StallTimeout,

		ClientMaxUpstreams:       cfg.clientMaxUps,
		ClientMaxUpstreamStreams: cfg.clientMaxStreams,
		ClientUpstreamWait:       cfg.clientUpWait,
		BodyTimeout:              offIfZero(cfg.bodyTimeout),
		BodyGrace:                cfg.bodyGrace,
		BodyMinRate:              offIfZero(cfg.bodyMinRate),
		NoH2WebSocket:            !cfg.h2WebSocket,
		TrustedProxies:           cfg.trusted,
		UpstreamTLS: proxy.UpstreamTLS{
			RootCAs:            cfg.upCAs,
			InsecureSkipVerify: cfg.upInsecure,
			ServerName:         cfg.upServerName,
			ClientCert:         cfg.upCert,
		},
		UpstreamTLSFor: cfg.upTLSFor,
		Logger:         env.log,
	}
	if env.access != nil {
		hc.AccessLogWriter, hc.AccessLogJSON = env.access.lw, env.access.json
	}
	return hc
}

// offIfZero maps a flag's 0 ("off") to proxy's negative ("disabled"; 0
// there means the default).
func offIfZero[T time.Duration | int](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
