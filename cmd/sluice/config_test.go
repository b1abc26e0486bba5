package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "sluice.toml")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// tomlValue writes a flag's default the way a config file would.
func tomlValue(f *flag.Flag) string {
	if _, ok := f.Value.(listFlag); ok {
		return "[]"
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return fmt.Sprintf("%q", f.Value.String())
	}
	switch v := g.Get().(type) {
	case bool:
		return fmt.Sprint(v)
	case int, int64, uint, uint64, float64:
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%q", f.Value.String())
}

// Every flag, whoever defined it, is a key of the config file: each one
// alone and all of them together, at their defaults, are accepted.
func TestConfigFileEveryFlagIsAKey(t *testing.T) {
	fs, _ := newFlagSet(&config{})
	var all strings.Builder
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		switch f.Name {
		case "config", "check", "version":
			return
		}
		line := f.Name + " = " + tomlValue(f) + "\n"
		all.WriteString(line)
		n++
		if _, err := parseFlags([]string{"-config", writeFile(t, line)}, io.Discard); err != nil {
			t.Errorf("key %s: %v", strings.TrimSpace(line), err)
		}
	})
	if n < 40 {
		t.Fatalf("only %d flags", n)
	}
	if _, err := parseFlags([]string{"-config", writeFile(t, all.String())}, io.Discard); err != nil {
		t.Errorf("every key at once: %v", err)
	}
}

// Values from the file apply; flags given on the command line win.
func TestConfigFileValuesAndFlagsOverride(t *testing.T) {
	f := writeFile(t, `
idle-timeout = "75s"
loops = 3
access-log = false
log-level = "debug"
balance = "p2c"

[[routes]]
name = "api"
host = "example.com"
prefix = "/api/"
upstreams = ["http://10.0.0.1:8080", "https://10.0.0.2?sni=api.internal"]
host-header = "api.saas.example"
upstream-timeout = "5m"
retries = 0
weights = [3, 1]

[[routes]]
upstreams = ["10.0.0.3:80"]
`)
	c, err := parseFlags([]string{"-config", f}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.idleTimeout != 75*time.Second || c.loops != 3 || c.accessLog != "off" || c.balance != "p2c" || c.logLevel.String() != "DEBUG" {
		t.Errorf("file values not applied: idle %v loops %d access-log %v balance %s level %v", c.idleTimeout, c.loops, c.accessLog, c.balance, c.logLevel)
	}
	if len(c.routes) != 2 || c.routes[0].Name != "api" || c.routes[0].Host != "example.com" || c.routes[0].PathPrefix != "/api/" ||
		len(c.routes[0].Upstreams) != 2 || c.routes[0].HostHeader != "api.saas.example" ||
		c.routes[0].UpstreamTimeout != 5*time.Minute || c.routes[0].Retries != -1 || c.routes[1].Retries != 0 ||
		len(c.routes[0].Weights) != 2 || c.routes[0].Weights[0] != 3 || c.routes[1].Weights != nil || c.routes[0].Upstreams[1] != "https://10.0.0.2:443?sni=api.internal" || c.routes[1].PathPrefix != "/" {
		t.Errorf("routes %+v", c.routes)
	}
	c, err = parseFlags([]string{"-config", f, "-idle-timeout", "10s", "-route", "web:/=10.0.0.9:80"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.idleTimeout != 10*time.Second || c.loops != 3 {
		t.Errorf("command line did not win: idle %v loops %d", c.idleTimeout, c.loops)
	}
	if len(c.routes) != 1 || c.routes[0].Name != "web" {
		t.Errorf("-route did not replace the file's routes: %+v", c.routes)
	}
}

// sluice -check -config F through the real binary: 0 and one line for a
// good file; 2 and one line per problem, each naming its key, for a bad
// one; a TOML syntax error names its line.
func TestCheckThroughBinary(t *testing.T) {
	good := writeFile(t, "listen = \"127.0.0.1:8443\"\n[[routes]]\nname = \"api\"\nprefix = \"/api/\"\nupstreams = [\"http://10.0.0.1:8080\"]\n")
	code, stdout, stderr := runBin(t, "-check", "-config", good)
	if code != 0 || !strings.Contains(stdout, "configuration OK") || stderr != "" {
		t.Fatalf("good file: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	bad := writeFile(t, `
idle-timeout = 5
loops = "many"
no-such-key = 1
access-log = [true]

[[routes]]
name = "api"
upstreams = ["http://10.0.0.1:8080/base"]

[[routes]]
prefix = "/x"
upstreams = ["10.0.0.1:80"]
colour = "blue"

[[routes]]
prefix = "/y"
upstreams = ["10.0.0.1:80"]
host-header = "a b"
`)
	code, _, stderr = runBin(t, "-check", "-config", bad)
	if code != 2 {
		t.Fatalf("bad file: exit %d, want 2\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	for _, want := range []string{"idle-timeout = 5: a duration needs a unit", `loops = "many": want a whole number`,
		`unknown key "no-such-key"`, "access-log: takes one value", `routes[0] (api)`, `unknown key "colour"`, `routes[2]: host-header "a b"`} {
		found := 0
		for _, l := range lines {
			if strings.Contains(l, want) {
				found++
			}
		}
		if found != 1 {
			t.Errorf("want one line saying %q, got %d in\n%s", want, found, stderr)
		}
	}
	if len(lines) != 7 {
		t.Errorf("want 7 lines, one per problem, got %d:\n%s", len(lines), stderr)
	}
	syntax := writeFile(t, "listen = \":8443\"\nloops = = 2\n")
	code, _, stderr = runBin(t, "-check", "-config", syntax)
	if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "line 2") {
		t.Errorf("syntax error: exit %d, %q (want 2 and one line naming line 2)", code, stderr)
	}
	code, _, stderr = runBin(t, "-check", "-config", filepath.Join(t.TempDir(), "missing.toml"))
	if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "-config") {
		t.Errorf("missing file: exit %d, %q", code, stderr)
	}
	// The same checks run at start-up: a bad file never serves.
	code, _, stderr = runBin(t, "-config", bad)
	if code != 2 || len(strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")) != 7 {
		t.Errorf("start with a bad file: exit %d\n%s", code, stderr)
	}
}

// -version: one line with the module version, the VCS revision of the
// checkout the binary was built from, and the Go version.
func TestVersionThroughBinary(t *testing.T) {
	code, stdout, stderr := runBin(t, "-version")
	if code != 0 || stderr != "" || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	if !strings.HasPrefix(stdout, "sluice ") || !strings.Contains(stdout, " go1.") {
		t.Errorf("-version %q: want the module and Go versions", stdout)
	}
	// What the toolchain stamped into the binary (nothing under
	// -buildvcs=false, or from a git worktree): -version must say the same.
	meta, err := exec.Command("go", "version", "-m", binPath).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(meta), "vcs.revision=") {
		if !strings.Contains(stdout, "revision unknown") {
			t.Errorf("-version %q names a revision the binary does not have", stdout)
		}
		t.Logf("the binary carries no VCS information (-buildvcs=false or a worktree): revision not compared")
		return
	}
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("the binary has a revision but git rev-parse fails: %v", err)
	}
	if want := strings.TrimSpace(string(rev)); !strings.Contains(stdout, "revision "+want) {
		t.Errorf("-version %q does not name the checkout's revision %s", stdout, want)
	}
	dirty, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output()
	if (len(dirty) > 0) != strings.Contains(stdout, "(modified)") {
		t.Errorf("-version %q: modified flag wrong (git status: %q)", stdout, dirty)
	}
}

// SIGHUP with a rewritten -config file under load, through the real
// binary: 20 reloads switch the route between two upstreams, requests
// keep succeeding on their keep-alive connections, a broken file keeps
// the old routes and says why, and reloads are counted.
func TestSIGHUPReloadsRoutesUnderLoad(t *testing.T) {
	backend := func(name string) string {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })}
		ln := listenLoopback(t)
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	a, b := backend("A"), backend("B")
	plain := testutil.FreePort(t)
	conf := filepath.Join(t.TempDir(), "sluice.toml")
	write := func(up string) {
		body := fmt.Sprintf("listen-plain = %q\naccess-log = false\n[[routes]]\nname = \"web\"\nupstreams = [\"http://%s\"]\n", plain, up)
		if err := os.WriteFile(conf+".tmp", []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(conf+".tmp", conf); err != nil {
			t.Fatal(err)
		}
	}
	write(a)
	p := startSluice(t, "-config", conf)
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	t.Cleanup(tr.CloseIdleConnections)
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func() (string, error) {
		resp, err := cl.Get("http://" + plain + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return string(body), fmt.Errorf("status %d", resp.StatusCode)
		}
		return string(body), err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var done, failed atomic.Int64
	var first atomic.Value
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if body, err := get(); err != nil || (body != "A" && body != "B") {
					failed.Add(1)
					first.CompareAndSwap(nil, fmt.Sprintf("%q %v", body, err))
				}
				done.Add(1)
			}
		}()
	}
	want := "A"
	for i := range 20 {
		up := b
		want = "B"
		if i%2 == 1 {
			up, want = a, "A"
		}
		write(up)
		p.cmd.Process.Signal(syscall.SIGHUP)
		switched := false
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if body, err := get(); err == nil && body == want {
				switched = true
				break
			}
		}
		if !switched {
			t.Fatalf("reload %d: requests never reached %s\n%s", i, want, p.stderr)
		}
	}
	// A broken file: the old routes stay, the log says why.
	os.WriteFile(conf, []byte("[[routes]]\nupstreams = [\"ftp://x\"]\n"), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, "SIGHUP: reload failed, keeping the current configuration")
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if body, err := get(); err != nil || body != want {
		t.Errorf("after a failed reload: %q %v, want %q", body, err, want)
	}
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed across the reloads; first: %v", n, done.Load(), first.Load())
	}
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range []string{`sluice_config_reloads_total{result="ok"} 20`, `sluice_config_reloads_total{result="error"} 1`} {
		if !strings.Contains(string(m), w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
	// Keep-alive client connections live through every reload: sluice
	// closed none of them.
	closes := 0.0
	for _, line := range strings.Split(string(m), "\n") {
		if strings.HasPrefix(line, "sluice_connection_closes_total{") {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			closes += v
		}
	}
	if closes != 0 {
		t.Errorf("sluice closed %v client connections during the reloads", closes)
	}
	if strings.Contains(p.stderr.String(), "outcome=aborted") {
		t.Errorf("a connection was aborted during the reloads\n%s", p.stderr)
	}
	t.Logf("%d requests across 20 reloads", done.Load())
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// The Kubernetes ConfigMap's sluice.toml in deploy/ is a valid
// configuration (its certificate paths pointed at real files).
func TestDeployConfigMapIsValid(t *testing.T) {
	y, err := os.ReadFile("../../deploy/kubernetes/sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(y), "sluice.toml: |\n")
	if !ok {
		t.Fatal("no sluice.toml in the ConfigMap")
	}
	var toml strings.Builder
	for _, line := range strings.Split(rest, "\n") {
		if line != "" && !strings.HasPrefix(line, "    ") {
			break
		}
		toml.WriteString(strings.TrimPrefix(line, "    ") + "\n")
	}
	cert, key, _ := writeCert(t, t.TempDir(), "tls", "sluice.example")
	body := strings.NewReplacer("/etc/sluice/tls/tls.crt", cert, "/etc/sluice/tls/tls.key", key).Replace(toml.String())
	f := writeFile(t, body)
	c, err := parseFlags([]string{"-config", f}, io.Discard)
	if err != nil {
		t.Fatalf("deploy/kubernetes/sluice.yaml's sluice.toml: %v\n%s", err, body)
	}
	if len(c.routes) != 2 || !c.proxyProtocol || c.drainTimeout != 30*time.Second {
		t.Errorf("ConfigMap config: routes %v proxy-protocol %v drain-timeout %v", c.routes, c.proxyProtocol, c.drainTimeout)
	}
	if code := check(c, io.Discard, io.Discard); code != 0 {
		t.Errorf("-check of the ConfigMap config: exit %d", code)
	}
}

// [[upstreams]] tables give single https:// upstreams their own CA,
// name and client certificate over the global upstream-* keys; mistakes
// are one line each.
func TestConfigFilePerUpstreamTLS(t *testing.T) {
	dir := t.TempDir()
	ca, _, _ := writeCert(t, dir, "ca", "ca.internal")
	cc, ck, _ := writeCert(t, dir, "client", "client.internal")
	f := writeFile(t, fmt.Sprintf(`
upstream-server-name = "global.internal"
[[routes]]
upstreams = ["https://10.0.0.5:8443", "https://10.0.0.6"]

[[upstreams]]
url = "https://10.0.0.5:8443"
ca = %q
server-name = "api.internal"
client-cert = %q
client-key = %q
`, ca, cc, ck))
	c, err := parseFlags([]string{"-config", f}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	u, ok := c.upTLSFor["https://10.0.0.5:8443"]
	if !ok || u.RootCAs == nil || u.ServerName != "api.internal" || u.ClientCert == nil {
		t.Fatalf("per-upstream TLS %+v (ok %v)", u, ok)
	}
	if _, other := c.upTLSFor["https://10.0.0.6:443"]; other || len(c.upTLSFor) != 1 {
		t.Errorf("per-upstream TLS for upstreams without a table: %v", c.upTLSFor)
	}
	for body, want := range map[string]string{
		"[[upstreams]]\nurl = \"http://10.0.0.5\"\n":                             "TLS settings are for https:// and h2://",
		"[[upstreams]]\nurl = \"https://10.0.0.5\"\ncolour = \"x\"\n":            `unknown key "colour"`,
		"[[upstreams]]\nurl = \"https://10.0.0.5\"\nca = \"/nonexistent.pem\"\n": `ca "/nonexistent.pem"`,
		"[[upstreams]]\nurl = \"https://10.0.0.5\"\nclient-cert = \"x.pem\"\n":   "give both or neither",
	} {
		_, err := parseFlags([]string{"-config", writeFile(t, body)}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v, want one line saying %q", body, err, want)
		}
	}
}
