package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/shutdown"
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
	env := buildEnv{set: set, log: log, access: access, inherited: inh}
	if len(cfg.upstreams) == 0 && len(cfg.routes) == 0 {
		demo, err := startDemo()
		if err != nil {
			fmt.Fprintf(stderr, "sluice: demo upstream: %v\n", err)
			return 1
		}
		defer demo.Close()
		env.demo = demo.Addr()
	}
	b, err := build(cfg, env)
	if err != nil {
		printErr(stderr, err)
		return 2
	}
	if b.http != nil {
		defer b.http.Close()
	}
	httpProxy, store, eng := b.http, b.store, b.engine
	reload.demo = b.demoRoutes
	logCerts(log, b)
	if b.demoRoutes != nil {
		log.Info("no -upstream given: started the built-in demo upstream", "addr", env.demo)
	}
	if cfg.upInsecure && cfg.mode == "http" {
		log.Warn("https upstream certificates are not verified (-upstream-insecure-skip-verify)")
	}
	for _, ln := range eng.Config().Listeners {
		if n := len(ln.Inherited); n > 0 {
			log.Info("listener: inherited sockets", "listener", ln.Name, "sockets", n)
		}
		delete(inh, ln.Name)
	}
	inh.closeUnused(cfg.admin != "", log)
	engine.SetProcs(cfg.loops)
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

	var admin *diag.Admin
	drain := shutdown.New(shutdown.Config{
		Drainer: eng,
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
			admin = diag.NewAdminOn(ln, eng, log, set)
		}
	} else if cfg.admin != "" {
		admin, err = diag.NewAdmin(cfg.admin, eng, log, set)
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
	log.Info("sluice serving", "pid", os.Getpid(), "mode", cfg.mode, "listen", addr, "tls", b.tls != nil, "listen_plain", eng.Addr("plain"),
		"routes", len(b.routes), "admin", cfg.admin, "loops", cfg.loops, "lock_loops", cfg.lockLoops, "gomaxprocs", runtime.GOMAXPROCS(0))
	if env.demo != "" {
		scheme, insecure := "http", ""
		if b.tls != nil {
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

func portOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i+1:]
		}
	}
	return addr
}
