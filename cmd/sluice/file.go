package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/proxy/header"
)

// The configuration file (-config sluice.toml) holds the same settings as
// the flags: each flag is a top-level key of the same name, whoever
// defined it (the keys come from the flag set, not from a list here), and
// a flag given on the command line wins over the file. A repeatable flag
// (-route, -upstream, -cert, -key) takes an array. Routes are also
// first-class tables:
//
//	admin = "127.0.0.1:9090"
//	idle-timeout = "75s"
//	cert = ["/etc/sluice/site.pem"]
//	key = ["/etc/sluice/site.key"]
//
//	[[routes]]
//	name = "api"                # metrics label; default host/prefix
//	host = "example.com"        # default: any host
//	prefix = "/api/"            # default "/"
//	upstreams = ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]
//	host-header = "api.example"  # Host sent upstream; default the client's
//	upstream-timeout = "5m"      # default: the upstream-timeout key/flag
//	retries = 0                  # default: the retries key/flag
//	weights = [3, 1]             # per upstream, 1..100 (round_robin, p2c)
//
//	[[upstreams]]               # TLS of one https:// or h2:// upstream
//	url = "https://10.0.0.5:8443"
//	ca = "/etc/sluice/api-ca.pem"  # also server-name, insecure-skip-verify,
//	                               # client-cert, client-key
//
// Command-line -route flags replace the file's routes (both kinds).
// SIGHUP reads the file again and applies its routes and upstreams (and
// the certificate files); other settings need a restart.

// routeKeys are the keys of a [[routes]] table.
var routeKeys = map[string]bool{"name": true, "host": true, "prefix": true, "upstreams": true, "host-header": true,
	"upstream-timeout": true, "retries": true, "weights": true}

// fileProblem is one thing wrong in the file, as one line.
type fileProblem struct{ msg string }

func (p fileProblem) Error() string { return p.msg }

// applyFile sets the flags not given on the command line (given) from the
// file at path, and returns its routes. Every problem is one error.
func applyFile(fs *flag.FlagSet, path string, given map[string]bool) ([]proxy.Route, []fileUpstream, []error) {
	var raw map[string]any
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, nil, []error{fmt.Errorf("%s: line %d: %s", path, pe.Position.Line, pe.Message)}
		}
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return nil, nil, []error{fmt.Errorf("-config %q: %v", path, errors.Unwrap(err))}
		}
		return nil, nil, []error{fmt.Errorf("%s: %v", path, err)}
	}
	var errs []error
	var ups []fileUpstream
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(path+": "+format, a...)) }
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var routes []proxy.Route
	for _, k := range keys {
		v := raw[k]
		if k == "routes" {
			rs, rerrs := fileRoutes(path, v)
			routes = rs
			errs = append(errs, rerrs...)
			continue
		}
		if k == "upstreams" {
			us, uerrs := fileUpstreams(path, v)
			ups = us
			errs = append(errs, uerrs...)
			continue
		}
		f := fs.Lookup(k)
		if f == nil || k == "config" || k == "check" || k == "version" {
			bad("unknown key %q (keys are the flag names without the dash, and [[routes]])", k)
			continue
		}
		if given[k] {
			continue // the command line wins
		}
		vals, err := keyValues(f, v)
		if err != nil {
			bad("%s: %v", k, err)
			continue
		}
		if _, isList := f.Value.(listFlag); isList {
			// The file's list replaces the default, like repeated flags.
			if l := f.Value.(listFlag); l.v != nil {
				*l.v = nil
			}
		}
		was := f.Value.String()
		for _, s := range vals {
			if err := f.Value.Set(s); err != nil {
				bad("%s = %s: %s", k, tomlQuote(v, s), valueReason(f, s, err))
				_ = f.Value.Set(was) // a bad value zeroes the flag package's values
				break
			}
		}
	}
	return routes, ups, errs
}

// keyValues turns a TOML value into the strings the flag's Set takes.
func keyValues(f *flag.Flag, v any) ([]string, error) {
	_, isList := f.Value.(listFlag)
	one := func(v any) (string, error) {
		switch v := v.(type) {
		case string:
			return v, nil
		case bool:
			return strconv.FormatBool(v), nil
		case int64:
			return strconv.FormatInt(v, 10), nil
		case float64:
			return strconv.FormatFloat(v, 'g', -1, 64), nil
		}
		return "", fmt.Errorf("a %s is not a value this key takes", tomlType(v))
	}
	if arr, ok := v.([]any); ok {
		if !isList {
			return nil, errors.New("takes one value, not an array")
		}
		out := make([]string, 0, len(arr))
		for _, e := range arr {
			s, err := one(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := one(v)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

func tomlType(v any) string {
	switch v.(type) {
	case map[string]any:
		return "table"
	case []map[string]any:
		return "array of tables"
	case time.Time:
		return "date"
	}
	return fmt.Sprintf("%T", v)
}

func tomlQuote(v any, s string) string {
	if _, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return s
}

// fileRoutes reads the [[routes]] tables.
func fileRoutes(path string, v any) ([]proxy.Route, []error) {
	tables, ok := v.([]map[string]any)
	if !ok {
		return nil, []error{fmt.Errorf("%s: routes: want [[routes]] tables", path)}
	}
	var rs []proxy.Route
	var errs []error
	for i, t := range tables {
		where := fmt.Sprintf("%s: routes[%d]", path, i)
		if n, ok := t["name"].(string); ok {
			where += fmt.Sprintf(" (%s)", n)
		}
		bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(where+": "+format, a...)) }
		str := func(k string) string {
			if t[k] == nil {
				return ""
			}
			s, ok := t[k].(string)
			if !ok {
				bad("%s: want a string, not a %s", k, tomlType(t[k]))
			}
			return s
		}
		for k := range t {
			if !routeKeys[k] {
				bad("unknown key %q (name, host, prefix, upstreams, host-header, upstream-timeout, retries, weights)", k)
			}
		}
		name, host, prefix, hostHdr := str("name"), str("host"), str("prefix"), str("host-header")
		if prefix == "" {
			prefix = "/"
		}
		var ups []string
		switch u := t["upstreams"].(type) {
		case nil:
			bad("no upstreams")
		case []any:
			for _, e := range u {
				s, ok := e.(string)
				if !ok {
					bad("upstreams: want URL strings")
					continue
				}
				ups = append(ups, s)
			}
		default:
			bad("upstreams: want an array of URLs")
		}
		if len(ups) == 0 {
			continue
		}
		if name != "" && !proxy.ValidRouteName(name) {
			bad("name %q: letters, digits, '_', '-' and '.'", name)
			continue
		}
		spec := host + prefix + "=" + strings.Join(ups, ",")
		if !strings.HasPrefix(prefix, "/") {
			bad("prefix %q: must start with /", prefix)
			continue
		}
		r, err := proxy.ParseRoute(spec)
		if err != nil {
			bad("%v", err)
			continue
		}
		if hostHdr != "" && !header.ValidHost(hostHdr) {
			bad("host-header %q: a host name or IP, with an optional port", hostHdr)
			continue
		}
		r.Name, r.HostHeader = name, hostHdr
		if s := str("upstream-timeout"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				bad("upstream-timeout %q: a positive duration, e.g. 30s or 5m", s)
				continue
			}
			r.UpstreamTimeout = d
		}
		switch n := t["retries"].(type) {
		case nil:
		case int64:
			if n < 0 || n > 10 {
				bad("retries %d: 0..10", n)
				continue
			}
			r.Retries = int(n)
			if n == 0 {
				r.Retries = -1 // none, not the default
			}
		default:
			bad("retries: want a whole number, not a %s", tomlType(t["retries"]))
			continue
		}
		if ws, ok := t["weights"].([]any); ok || t["weights"] != nil {
			if !ok || len(ws) != len(r.Upstreams) {
				bad("weights: want one whole number per upstream (%d)", len(r.Upstreams))
				continue
			}
			for _, w := range ws {
				n, ok := w.(int64)
				if !ok || n < 1 || n > 100 {
					bad("weights: %v is not 1..100", w)
					r.Weights = nil
					break
				}
				r.Weights = append(r.Weights, int(n))
			}
			if r.Weights == nil {
				continue
			}
		}
		rs = append(rs, r)
	}
	return rs, errs
}

// fileUpstream is one [[upstreams]] table: TLS settings for one https://
// or h2:// upstream, over the global upstream-* keys.
type fileUpstream struct {
	where, url, key       string
	ca, serverName        string
	insecure              *bool
	clientCert, clientKey string
}

var upstreamKeys = map[string]bool{"url": true, "ca": true, "server-name": true, "insecure-skip-verify": true,
	"client-cert": true, "client-key": true}

func fileUpstreams(path string, v any) ([]fileUpstream, []error) {
	tables, ok := v.([]map[string]any)
	if !ok {
		return nil, []error{fmt.Errorf("%s: upstreams: want [[upstreams]] tables", path)}
	}
	var us []fileUpstream
	var errs []error
	for i, t := range tables {
		u := fileUpstream{where: fmt.Sprintf("%s: upstreams[%d]", path, i)}
		bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(u.where+": "+format, a...)) }
		str := func(k string) string {
			s, ok := t[k].(string)
			if t[k] != nil && !ok {
				bad("%s: want a string, not a %s", k, tomlType(t[k]))
			}
			return s
		}
		for k := range t {
			if !upstreamKeys[k] {
				bad("unknown key %q (url, ca, server-name, insecure-skip-verify, client-cert, client-key)", k)
			}
		}
		u.url, u.ca, u.serverName, u.clientCert, u.clientKey = str("url"), str("ca"), str("server-name"), str("client-cert"), str("client-key")
		if b, ok := t["insecure-skip-verify"].(bool); ok {
			u.insecure = &b
		} else if t["insecure-skip-verify"] != nil {
			bad("insecure-skip-verify: want true or false")
		}
		key, err := proxy.ParseUpstream(u.url)
		switch {
		case u.url == "":
			bad("no url")
			continue
		case err != nil:
			bad("%v", err)
			continue
		case !strings.HasPrefix(key, "https://") && !strings.HasPrefix(key, "h2://"):
			bad("url %q: TLS settings are for https:// and h2:// upstreams", u.url)
			continue
		}
		u.key = key
		us = append(us, u)
	}
	return us, errs
}

// buildUpstreamTLS turns the [[upstreams]] tables into per-upstream TLS
// settings: each starts from the global upstream-* ones. Every problem is
// one error.
func (c *config) buildUpstreamTLS() []error {
	var errs []error
	for _, u := range c.fileUps {
		bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(u.where+": "+format, a...)) }
		t := proxy.UpstreamTLS{RootCAs: c.upCAs, InsecureSkipVerify: c.upInsecure, ServerName: c.upServerName, ClientCert: c.upCert}
		ok := true
		if u.ca != "" {
			pool, err := readCAs(u.ca)
			if err != nil {
				bad("ca %q: %v", u.ca, err)
				ok = false
			}
			t.RootCAs = pool
		}
		if u.serverName != "" {
			if strings.ContainsAny(u.serverName, " /:") {
				bad("server-name %q: must be a host name or an IP address", u.serverName)
				ok = false
			}
			t.ServerName = u.serverName
		}
		if u.insecure != nil {
			t.InsecureSkipVerify = *u.insecure
		}
		if (u.clientCert == "") != (u.clientKey == "") {
			bad("client-cert and client-key: give both or neither")
			ok = false
		} else if u.clientCert != "" {
			pairs, err := loadPairs([]string{u.clientCert}, []string{u.clientKey})
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %v", u.where, err))
				ok = false
			} else {
				t.ClientCert = pairs[0]
			}
		}
		if _, dup := c.upTLSFor[u.key]; dup {
			bad("url %q is already in another [[upstreams]] table", u.url)
			continue
		}
		if !ok {
			continue
		}
		if c.upTLSFor == nil {
			c.upTLSFor = map[string]proxy.UpstreamTLS{}
		}
		c.upTLSFor[u.key] = t
	}
	return errs
}
