package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/tlsio"
)

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
