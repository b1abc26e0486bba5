package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/engine"
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
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	set := metrics.NewSet()
	// TLS: always in http mode, in tcp mode when -cert is given.
	var tlsSrv *tlsio.Server
	var store *tlsio.CertStore
	if cfg.mode == "http" || len(cfg.certs) > 0 {
		store, err = certStore(cfg, log)
		if err != nil {
			fmt.Fprintf(stderr, "sluice: %v\n", err)
			return 2
		}
		tlsSrv, err = tlsio.NewServer(tlsio.ServerConfig{Certs: store, CountError: engine.TLSErrorCounter(set)})
		if err != nil {
			fmt.Fprintf(stderr, "sluice: tls: %v\n", err)
			return 2
		}
	}
	var upstream string
	if len(cfg.upstreams) == 0 {
		demo, err := proxy.StartDemo()
		if err != nil {
			fmt.Fprintf(stderr, "sluice: demo upstream: %v\n", err)
			return 1
		}
		defer demo.Close()
		upstream = demo.Addr()
		log.Info("no -upstream given: started the built-in demo upstream", "addr", upstream)
	} else {
		upstream, _ = upstreamAddr(cfg.upstreams[0])
	}

	pm := proxy.NewMetrics(set)
	tcp := proxy.NewTCP(proxy.TCPConfig{
		Upstream: upstream, DialTimeout: cfg.dialTimeout, IdleTimeout: cfg.idleTimeout, Logger: log,
	}, pm)
	eng, err := engine.New(engine.Config{
		Loops:            cfg.loops,
		Listeners:        []engine.Listener{{Name: "main", Addr: cfg.listen, Accept: tcp.Accept, TLS: tlsSrv}},
		WriteTimeout:     cfg.writeTimeout,
		LingerTimeout:    cfg.lingerTimeout,
		HandshakeTimeout: cfg.handshakeTimeout,
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
	stopEngine := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := eng.Stop(ctx); err != nil {
			log.Error("engine stop", "err", err)
		}
	}

	var admin *proxy.Admin
	if cfg.admin != "" {
		admin, err = proxy.NewAdmin(cfg.admin, eng, log, set)
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
		admin.SetReady(true)
	}

	addr := eng.Addr("main")
	log.Info("sluice serving", "mode", cfg.mode, "listen", addr, "tls", tlsSrv != nil, "upstream", upstream, "admin", cfg.admin, "loops", cfg.loops)
	if len(cfg.upstreams) == 0 {
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

	var sig os.Signal
	for sig == nil {
		select {
		case sig = <-sigs:
		case <-hup:
			if store != nil {
				reloadCerts(cfg, store, log)
			} else {
				log.Info("SIGHUP: no TLS listener, nothing to reload")
			}
		}
	}
	log.Info("signal received: draining", "signal", sig.String())
	res := shutdown.Drain(shutdown.Config{
		Engine:  eng,
		Timeout: cfg.drainTimeout,
		Logger:  log,
		Metrics: set,
		SetReady: func(ok bool) {
			if admin != nil {
				admin.SetReady(ok)
			}
		},
	}, sigs)
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
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "json" {
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
