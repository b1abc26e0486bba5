package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/tlsio"
)

// buildInfo is what the binary knows of its build (debug.ReadBuildInfo):
// the module version ("(devel)" for a build from a checkout), the VCS
// revision and time, and whether the tree had uncommitted changes.
type buildInfo struct {
	version, revision, time string
	modified                bool
}

func readBuildInfo() buildInfo {
	b := buildInfo{version: "(unknown)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.version = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.revision = s.Value
		case "vcs.time":
			b.time = s.Value
		case "vcs.modified":
			b.modified = s.Value == "true"
		}
	}
	return b
}

// versionLine is what -version prints.
func versionLine() string {
	b := readBuildInfo()
	var sb strings.Builder
	fmt.Fprintf(&sb, "sluice %s", b.version)
	if b.revision != "" {
		fmt.Fprintf(&sb, " revision %s", b.revision)
		if b.modified {
			sb.WriteString(" (modified)")
		}
		if b.time != "" {
			fmt.Fprintf(&sb, " committed %s", b.time)
		}
	} else {
		sb.WriteString(" revision unknown (built without VCS information)")
	}
	fmt.Fprintf(&sb, " %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return sb.String()
}

// registerBuildInfo adds sluice_build_info{version,revision,modified,goversion} 1.
func registerBuildInfo(set *metrics.Set) {
	b := readBuildInfo()
	set.NewGauge(fmt.Sprintf(`sluice_build_info{version=%q,revision=%q,modified="%t",goversion=%q}`,
		b.version, b.revision, b.modified, runtime.Version()), func() float64 { return 1 })
}

// printErr writes err as lines, each "sluice: ...": a configuration file
// can have several problems, one line each.
func printErr(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "sluice: %s\n", line)
	}
}

// check is -check: the flags and the file were parsed and validated;
// here everything start-up builds is built the same way (build), short
// of sockets, files and goroutines. 0 when good, else 2 and one line per
// problem.
func check(cfg *config, stdout, stderr io.Writer) int {
	// No demo upstream is started: its route gets a stand-in address.
	b, err := build(cfg, buildEnv{demo: "127.0.0.1:1"})
	if err != nil {
		printErr(stderr, err)
		return 2
	}
	b.close()
	what := fmt.Sprintf("%d routes", len(cfg.routes))
	if cfg.mode == "tcp" {
		what = "tcp mode"
	} else if len(cfg.routes) == 0 {
		what = "no routes: the demo upstream"
	}
	src := "flags"
	if cfg.configFile != "" {
		src = cfg.configFile
	}
	fmt.Fprintf(stdout, "sluice: configuration OK (%s, %s)\n", src, what)
	return 0
}

// reloadable are the flags (and file keys) a SIGHUP applies; a change to
// any other is logged as needing a restart.
var reloadable = []string{"route", "upstream", "cert", "key"}

// reloader applies SIGHUP: it parses the flags and the -config file again
// and, if all is well, swaps the routes and upstreams (requests in flight
// finish on the old ones) and the certificates. Anything wrong keeps the
// whole old configuration and logs why.
type reloader struct {
	args      []string
	cfg       *config // what runs now
	http      *proxy.HTTP
	store     *tlsio.CertStore
	demo      []proxy.Route // the demo upstream's route, when no route is configured
	log       *slog.Logger
	ok, error *metrics.Counter
}

func newReloader(args []string, cfg *config, set *metrics.Set, log *slog.Logger) *reloader {
	return &reloader{args: args, cfg: cfg, log: log,
		ok:    set.NewCounter(`sluice_config_reloads_total{result="ok"}`),
		error: set.NewCounter(`sluice_config_reloads_total{result="error"}`)}
}

func (r *reloader) reload() {
	if err := r.apply(); err != nil {
		r.error.Inc()
		r.log.Error("SIGHUP: reload failed, keeping the current configuration", "err", strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	r.ok.Inc()
}

func (r *reloader) apply() error {
	nc, err := parseFlags(r.args, io.Discard)
	if err != nil {
		return err
	}
	var restart []string
	for k, v := range nc.values {
		live := slices.Contains(reloadable, k) && !(k == "upstream" && nc.mode == "tcp")
		if r.cfg.values[k] != v && !live {
			restart = append(restart, k)
		}
	}
	restart = append(restart, upstreamTLSChanges(r.cfg, nc)...)
	slices.Sort(restart)
	var pairs []*tlsio.KeyPair
	if r.store != nil && len(nc.certs) > 0 {
		if pairs, err = loadPairs(nc.certs, nc.keys); err != nil {
			return err
		}
	}
	routes := nc.routes
	if r.http != nil {
		if len(routes) == 0 {
			routes = r.demo
		}
		if err := r.http.SetRoutes(routes); err != nil {
			return errors.New(strings.TrimPrefix(err.Error(), "http proxy: "))
		}
	}
	if len(pairs) > 0 {
		if err := r.store.Replace(pairs...); err != nil {
			return fmt.Errorf("certificates (routes already reloaded): %v", err)
		}
		for _, kp := range pairs {
			r.log.Info("SIGHUP: certificate reloaded", "names", kp.Names(), "sha256", tlsio.FormatFingerprint(kp.Fingerprint()))
		}
	}
	if len(restart) > 0 {
		r.log.Warn("SIGHUP: these settings changed and are not applied: each needs a restart", "keys", strings.Join(restart, ","))
	}
	r.log.Info("SIGHUP: configuration reloaded", "config", nc.configFile, "routes", len(routes), "certificates", len(pairs))
	return nil
}

// upstreamTLSChanges names the upstream TLS settings that differ between
// what runs and a reload, file contents included (a CA file rewritten in
// place). A reload does not apply them: an upstream keeps the TLS client
// it was built with, shared by its pools and health checks on every loop,
// and an upstream a reload adds is built from the settings start-up had.
// Swapping them under in-flight requests is a restart's job.
func upstreamTLSChanges(old, nc *config) []string {
	var out []string
	if old.upCAFile == nc.upCAFile && !old.upCAs.Equal(nc.upCAs) {
		out = append(out, "upstream-ca")
	}
	if old.upCertFile == nc.upCertFile && old.upKeyFile == nc.upKeyFile && !samePair(old.upCert, nc.upCert) {
		out = append(out, "upstream-client-cert")
	}
	keys := map[string]bool{}
	for k := range old.upTLSFor {
		keys[k] = true
	}
	for k := range nc.upTLSFor {
		keys[k] = true
	}
	for k := range keys {
		o, inOld := old.upTLSFor[k]
		n, inNew := nc.upTLSFor[k]
		name := "upstreams[" + k + "]"
		switch {
		case !inOld:
			out = append(out, name+" (added)")
			continue
		case !inNew:
			out = append(out, name+" (removed)")
			continue
		}
		if !o.RootCAs.Equal(n.RootCAs) {
			out = append(out, name+".ca")
		}
		if o.ServerName != n.ServerName {
			out = append(out, name+".server-name")
		}
		if o.InsecureSkipVerify != n.InsecureSkipVerify {
			out = append(out, name+".insecure-skip-verify")
		}
		if !samePair(o.ClientCert, n.ClientCert) {
			out = append(out, name+".client-cert")
		}
	}
	return out
}

func samePair(a, b *tlsio.KeyPair) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Fingerprint() == b.Fingerprint()
}
