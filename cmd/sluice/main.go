package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/httpcodec/h2"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/shutdown"
	"github.com/sluice-proxy/sluice/tlsio"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, nil))
}

// run is main without the process exit, for tests. ready, if not nil,
// receives the engine's listen address once sluice serves.
func run(args []string, stdout, stderr io.Writer, ready chan<- string) int {
	cfg, err := parseFlags(args, stdout)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		printErr(stderr, err)
		return 2
	}
	if cfg.version {
		fmt.Fprintln(stdout, versionLine())
		return 0
	}
	if cfg.check {
		return check(cfg, stdout, stderr)
	}
	log := newLogger(cfg, stderr)
	inh, err := takeInherited(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 2
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)

	access, err := openAccessLog(cfg, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: -access-log %q: %v\n", cfg.accessLog, err)
		return 2
	}
	defer func() {
		if err := access.close(); err != nil {
			fmt.Fprintf(stderr, "sluice: -access-log %q: %v\n", cfg.accessLog, err)
		}
	}()

	set := metrics.NewSet()
	registerBuildInfo(set)
	restarts := newRestartMetrics(set)
	reload := newReloader(args, cfg, set, log)
	// TLS: always in http mode, in tcp mode when -cert is given.
	var tlsSrv *tlsio.Server
	var store *tlsio.CertStore
	if cfg.mode == "http" || len(cfg.certs) > 0 {
		store, err = certStore(cfg, log)
		if err != nil {
			fmt.Fprintf(stderr, "sluice: %v\n", err)
			return 2
		}
		// http mode speaks HTTP/2 to clients that ask for it by ALPN;
		// tcp mode relays bytes and offers only HTTP/1.x, as before. A
		// client offering only http/1.0 (curl --http1.0) is served as
		// HTTP/1.x: crypto/tls refuses a handshake with no protocol in
		// common.
		protos := []string{"http/1.1", "http/1.0"}
		if cfg.mode == "http" {
			protos = []string{"h2", "http/1.1", "http/1.0"}
		}
		tlsSrv, err = tlsio.NewServer(tlsio.ServerConfig{Certs: store, NextProtos: protos,
			CountError: engine.TLSErrorCounter(set), Engine: cfg.tlsEngine, KeyUpdateAfter: cfg.tlsKeyUpdate})
		if err != nil {
			fmt.Fprintf(stderr, "sluice: tls: %v\n", err)
			return 2
		}
	}
	var upstream string
	if len(cfg.upstreams) == 0 && len(cfg.routes) == 0 {
		demo, err := startDemo()
		if err != nil {
			fmt.Fprintf(stderr, "sluice: demo upstream: %v\n", err)
			return 1
		}
		defer demo.Close()
		upstream = demo.Addr()
		cfg.routes = append(cfg.routes, proxy.Route{PathPrefix: "/", Upstreams: []string{upstream}})
		reload.demo = cfg.routes
		log.Info("no -upstream given: started the built-in demo upstream", "addr", upstream)
	} else if len(cfg.upstreams) > 0 {
		upstream, _ = upstreamAddr(cfg.upstreams[0])
	}

	pm := proxy.NewMetrics(set)
	var listeners []engine.Listener
	var httpProxy *proxy.HTTP
	switch cfg.mode {
	case "tcp":
		tcp := proxy.NewTCP(proxy.TCPConfig{
			Upstream: upstream, DialTimeout: cfg.dialTimeout, IdleTimeout: cfg.idleTimeout, ProxyProtocol: cfg.upProxyV, Logger: log,
		}, pm)
		listeners = append(listeners, engine.Listener{Name: "main", Addr: cfg.listen, Accept: tcp.Accept, TLS: tlsSrv, ProxyProtocol: cfg.proxyProtocol})
	case "http":
		hc := proxy.HTTPConfig{
			Routes:                cfg.routes,
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
			UpstreamQueue:         cfg.upQueue,
			UpstreamQueueTimeout:  cfg.upQueueWait,
			Balance:               cfg.balance,
			MaxFails:              cfg.maxFails,
			HealthPath:            cfg.healthPath,
			Retries:               cfg.retries,
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
			Logger:         log,
		}
		if cfg.upInsecure {
			log.Warn("https upstream certificates are not verified (-upstream-insecure-skip-verify)")
		}
		if cfg.maxFails == 0 {
			hc.MaxFails = -1
		}
		if cfg.retries == 0 {
			hc.Retries = -1
		}
		if cfg.upQueue == 0 {
			hc.UpstreamQueue = -1
		}
		if access != nil {
			hc.AccessLogWriter, hc.AccessLogJSON = access.lw, access.json
		}
		httpProxy, err = proxy.NewHTTP(hc, pm)
		if err != nil {
			fmt.Fprintf(stderr, "sluice: %v\n", err)
			return 2
		}
		defer httpProxy.Close()
		listeners = append(listeners, engine.Listener{Name: "main", Addr: cfg.listen, Accept: httpProxy.Accept, TLS: tlsSrv, ProxyProtocol: cfg.proxyProtocol})
		if cfg.listenPlain != "" {
			listeners = append(listeners, engine.Listener{Name: "plain", Addr: cfg.listenPlain, Accept: httpProxy.Accept,
				ProxyProtocol: cfg.proxyProtocol, ClientFirst: true})
		}
	}
	for i := range listeners {
		listeners[i].Inherited = inh[listeners[i].Name]
		if n := len(listeners[i].Inherited); n > 0 {
			log.Info("listener: inherited sockets", "listener", listeners[i].Name, "sockets", n)
		}
		delete(inh, listeners[i].Name)
	}
	inh.closeUnused(cfg.admin != "", log)
	engine.SetProcs(cfg.loops)
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
		Logger:           log,
		Metrics:          set,
	})
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 2
	}
	if err := eng.Start(); err != nil {
		fmt.Fprintf(stderr, "sluice: -listen %s: %v\n", cfg.listen, err)
		return 1
	}
	if httpProxy != nil {
		if err := httpProxy.Start(eng); err != nil {
			log.Error("active health checks", "err", err)
		}
	}
	stopEngine := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := eng.Stop(ctx); err != nil {
			log.Error("engine stop", "err", err)
		}
	}

	var admin *proxy.Admin
	drain := shutdown.New(shutdown.Config{
		Target:  eng,
		Delay:   cfg.drainDelay,
		Timeout: cfg.drainTimeout,
		Logger:  log,
		Metrics: set,
		SetReady: func(ok bool) {
			if admin != nil {
				admin.SetReady(ok)
			}
		},
	})
	if fds := inh["admin"]; len(fds) > 0 && cfg.admin != "" {
		var ln net.Listener
		if ln, err = adminListener(fds[0]); err == nil {
			admin = proxy.NewAdminOn(ln, eng, log, set)
		}
	} else if cfg.admin != "" {
		admin, err = proxy.NewAdmin(cfg.admin, eng, log, set)
	}
	if admin != nil || err != nil {
		if err != nil {
			stopEngine()
			fmt.Fprintf(stderr, "sluice: -admin %s: %v\n", cfg.admin, err)
			return 1
		}
		go func() {
			if err := admin.Serve(); err != nil {
				log.Error("admin server", "err", err)
			}
		}()
		admin.SetDrainStatus(func() any { return drain.Status() })
		admin.SetReady(true)
	}

	addr := eng.Addr("main")
	log.Info("sluice serving", "pid", os.Getpid(), "mode", cfg.mode, "listen", addr, "tls", tlsSrv != nil, "listen_plain", eng.Addr("plain"),
		"routes", len(cfg.routes), "admin", cfg.admin, "loops", cfg.loops, "lock_loops", cfg.lockLoops, "gomaxprocs", runtime.GOMAXPROCS(0))
	if len(cfg.upstreams) == 0 && upstream != "" {
		scheme, insecure := "http", ""
		if tlsSrv != nil {
			scheme, insecure = "https", "-k "
		}
		fmt.Fprintf(stderr, "\nsluice is forwarding %s to the demo upstream. Try:\n  curl %s%s://127.0.0.1:%s/\n", addr, insecure, scheme, portOf(addr))
		if cfg.admin != "" {
			fmt.Fprintf(stderr, "  curl http://%s/debug/connections\n  curl http://%s/metrics\n", admin.Addr(), admin.Addr())
		}
		fmt.Fprintf(stderr, "Stop with Ctrl-C (a graceful drain; twice to stop at once).\n\n")
	}
	if ready != nil {
		ready <- addr
	}
	signalReady(log)

	var sig os.Signal
	handedOff := false
	for sig == nil {
		select {
		case sig = <-sigs:
		case <-usr2:
			var adminLn net.Listener
			if admin != nil {
				adminLn = admin.Listener()
			}
			pid, err := startSuccessor(args, eng, adminLn, log, sigs)
			if c, ok := err.(errRestartCancelled); ok {
				restarts.failed.Inc()
				log.Warn("restart cancelled: draining", "pid", pid, "signal", c.sig.String())
				sig = c.sig
				continue
			}
			if err != nil {
				restarts.failed.Inc()
				log.Error("restart failed: still serving", "err", err)
				continue
			}
			restarts.ok.Inc()
			log.Info("restart: the new process serves: draining this one", "pid", pid)
			sig, handedOff = syscall.SIGUSR2, true
		case <-hup:
			if access != nil && access.file != nil {
				if err := access.reopen(); err != nil {
					log.Error("SIGHUP: access log not reopened, still writing to the old file", "path", cfg.accessLog, "err", err)
				} else {
					log.Info("SIGHUP: access log reopened", "path", cfg.accessLog)
				}
			}
			reload.http, reload.store = httpProxy, store
			reload.reload()
		}
	}
	var res shutdown.Result
	if handedOff {
		eng.HandOff()
		if admin != nil {
			// The successor serves the admin socket too.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			admin.Close(ctx)
			cancel()
		}
		res = drain.RunHandoff(sigs)
	} else {
		log.Info("signal received: draining", "signal", sig.String())
		res = drain.Run(sigs)
	}
	stopEngine()
	if admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		admin.Close(ctx)
		cancel()
	}
	log.Info("sluice stopped", "forced", res.Forced, "aborted", res.Left, "drain", res.Duration)
	return 0
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	return newLoggerAt(cfg, w, cfg.logLevel)
}

// newLoggerAt is a logger in -log-format at level (the access log has its
// own).
func newLoggerAt(cfg *config, w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if cfg.logFormat == "json" {
		opts.ReplaceAttr = jsonSeconds
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func portOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i+1:]
		}
	}
	return addr
}

// jsonSeconds writes every duration in a JSON log line as seconds (a
// float), the unit of the metrics and /debug/connections; slog's JSON
// handler would write bare nanoseconds.
func jsonSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.Float64(a.Key, a.Value.Duration().Seconds())
	}
	return a
}

// offIfZero maps a flag's 0 ("off") to proxy's negative ("disabled"; 0
// there means the default).
func offIfZero[T time.Duration | int](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
