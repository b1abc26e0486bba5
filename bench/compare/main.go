package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"embed"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/bench"
)

//go:embed configs/*
var configs embed.FS

// settings are the run's knobs (flags).
type settings struct {
	quick      bool
	rounds     int
	out        string
	targets    []string
	scenarios  []string
	install    bool
	tuned      string
	holdConns  int
	drainConns int
	h2Requests int
	h1Seconds  int
	hsSeconds  int
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	var s settings
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `compare: sluice side by side with nginx, HAProxy, h2o and Go's httputil.ReverseProxy.

Usage: go run ./bench/compare [-quick] [flags]

Every target runs one worker/thread/loop in front of the same nginx backend
(two kinds: "return 200" of 1 KiB and a 1 KiB static file) with the same
certificate. Rounds alternate target by target; each figure is the median
of the rounds with their min–max, and each ratio is sluice (defaults) ÷ the
target, per round. Writes report.md and PNG charts to -out.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.BoolVar(&s.quick, "quick", false, "a smoke run of about a minute: 1 round, short loads, 500 idle and 300 draining connections")
	fs.IntVar(&s.rounds, "rounds", 0, "rounds (default 5; -quick 1)")
	fs.StringVar(&s.out, "out", "bench/compare/results", "directory for report.md and the charts")
	tg := fs.String("targets", "sluice,sluice-tuned,haproxy,nginx,h2o,goproxy", "targets, comma-separated")
	sc := fs.String("scenarios", "h2,h1,hold,handshake,drain", "scenarios, comma-separated")
	fs.BoolVar(&s.install, "install", true, "apt-get install the peers that are missing (nginx haproxy h2o nghttp2-client wrk)")
	fs.StringVar(&s.tuned, "tuned", "", "sluice-tuned's extra flags (default: the access log off and -log-level warn)")
	fs.IntVar(&s.holdConns, "hold", 0, "idle TLS connections held (default 19000; -quick 1000)")
	fs.IntVar(&s.drainConns, "drain", 0, "busy connections during the drain (default 10000; -quick 500)")
	fs.IntVar(&s.h2Requests, "h2-requests", 0, "h2load -n (default 20000; -quick 5000)")
	fs.IntVar(&s.h1Seconds, "h1-seconds", 0, "wrk -d (default 5; -quick 2)")
	fs.IntVar(&s.hsSeconds, "handshake-seconds", 0, "handshake run length (default 3; -quick 1)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	def := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if s.quick {
				*v = quick
			}
		}
	}
	def(&s.rounds, 5, 1)
	def(&s.holdConns, 19000, 500)
	def(&s.drainConns, 10000, 300)
	def(&s.h2Requests, 20000, 3000)
	def(&s.h1Seconds, 5, 1)
	def(&s.hsSeconds, 3, 1)
	s.targets = strings.Split(*tg, ",")
	s.scenarios = strings.Split(*sc, ",")
	for _, t := range s.targets {
		if _, ok := targetKinds[t]; !ok {
			fmt.Fprintf(stderr, "compare: -targets: unknown target %q\n", t)
			return 2
		}
	}
	if len(s.targets) == 0 || s.targets[0] != "sluice" {
		fmt.Fprintln(stderr, "compare: -targets: must start with sluice (the ratios are to it)")
		return 2
	}
	for _, x := range s.scenarios {
		if !strings.Contains(",h2,h1,hold,handshake,drain,", ","+x+",") {
			fmt.Fprintf(stderr, "compare: -scenarios: unknown scenario %q\n", x)
			return 2
		}
	}
	h, err := newHarness(&s, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "compare: %v\n", err)
		return 1
	}
	defer h.cleanup()
	if err := h.runAll(); err != nil {
		fmt.Fprintf(stderr, "compare: %v\n", err)
		return 1
	}
	if err := h.report(stdout); err != nil {
		fmt.Fprintf(stderr, "compare: %v\n", err)
		return 1
	}
	return 0
}

// ---- the harness ----

type harness struct {
	s       *settings
	log     io.Writer
	dir     string
	cert    string
	key     string
	both    string
	sluice  string
	goproxy string
	bins    map[string]string
	backend map[string]string // kind -> host:port
	bproc   *proc
	tuned   string
	res     map[string]map[string][]sample // scenario -> target -> rounds
	notes   []string
	started time.Time
}

// sample is one measurement of one target in one round.
type sample struct {
	rps, cpuPerReq  float64 // req/s; µs of target CPU per request (or per handshake)
	rssPerConn      float64
	held            int
	lost            int64
	lastToExitMS    float64
	errors          int64
	exited, skipped bool
	note            string
}

var targetKinds = map[string]bool{"sluice": true, "sluice-tuned": true, "haproxy": true, "nginx": true, "h2o": true, "goproxy": true}

func newHarness(s *settings, log io.Writer) (*harness, error) {
	h := &harness{s: s, log: log, bins: map[string]string{}, backend: map[string]string{},
		res: map[string]map[string][]sample{}, started: time.Now()}
	// Targets and the load share this process's fd limit: raise it.
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
	if need := max(s.holdConns, s.drainConns) + 200; uint64(need) > lim.Max {
		return nil, fmt.Errorf("-hold/-drain need about %d file descriptors per process; RLIMIT_NOFILE's hard limit is %d (raise it: ulimit -Hn)", need, lim.Max)
	}
	if err := h.findPeers(); err != nil {
		return nil, err
	}
	var err error
	if h.dir, err = os.MkdirTemp("", "sluice-compare"); err != nil {
		return nil, err
	}
	// nginx's workers run as nobody: they must read the static file.
	os.Chmod(h.dir, 0o755)
	os.MkdirAll(filepath.Join(h.dir, "tmp"), 0o755)
	os.MkdirAll(filepath.Join(h.dir, "www"), 0o755)
	if err := h.writeCert(); err != nil {
		return nil, err
	}
	h.sluice = filepath.Join(h.dir, "sluice")
	h.goproxy = filepath.Join(h.dir, "goproxy")
	for bin, pkg := range map[string]string{h.sluice: "./cmd/sluice", h.goproxy: "./bench/goproxy"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s (run from the repository root): %v\n%s", pkg, err, out)
		}
	}
	// The tuned variant: logging off the hot path (the pool defaults are
	// already the fast configuration).
	h.tuned = s.tuned
	if h.tuned == "" {
		h.tuned = "-access-log=off -log-level warn"
	}
	if err := h.startBackend(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *harness) cleanup() {
	if h.bproc != nil {
		h.bproc.stop()
	}
	os.RemoveAll(h.dir)
}

func (h *harness) logf(f string, a ...any) {
	fmt.Fprintf(h.log, "[%6.1fs] %s\n", time.Since(h.started).Seconds(), fmt.Sprintf(f, a...))
}

// findPeers locates the Debian binaries, installing the missing ones.
func (h *harness) findPeers() error {
	want := map[string]string{"nginx": "nginx", "haproxy": "haproxy", "h2o": "h2o", "h2load": "nghttp2-client", "wrk": "wrk"}
	var missing []string
	look := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, d := range []string{"/usr/sbin/", "/usr/bin/"} {
			if _, err := os.Stat(d + name); err == nil {
				return d + name
			}
		}
		return ""
	}
	for name, pkg := range want {
		if p := look(name); p != "" {
			h.bins[name] = p
		} else {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 && h.s.install {
		sort.Strings(missing)
		h.logf("installing %s", strings.Join(missing, " "))
		inst := func() error {
			cmd := exec.Command("apt-get", append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, lastLine(out))
			}
			return nil
		}
		if err := inst(); err != nil {
			exec.Command("apt-get", "update", "-qq").Run()
			if err := inst(); err != nil {
				return fmt.Errorf("apt-get install %s: %v", strings.Join(missing, " "), err)
			}
		}
		for name := range want {
			if p := look(name); p != "" {
				h.bins[name] = p
			}
		}
	}
	if h.bins["nginx"] == "" {
		return errors.New("nginx is needed for the backend (Debian: apt-get install nginx)")
	}
	return nil
}

func lastLine(b []byte) string {
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	return l[len(l)-1]
}

// writeCert makes the one self-signed ECDSA P-256 certificate every
// target serves (localhost, 127.0.0.1).
func (h *harness) writeCert() error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		return err
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
	h.cert, h.key, h.both = filepath.Join(h.dir, "cert.pem"), filepath.Join(h.dir, "key.pem"), filepath.Join(h.dir, "both.pem")
	os.WriteFile(h.cert, certPEM, 0o644)
	os.WriteFile(h.key, keyPEM, 0o600)
	return os.WriteFile(h.both, append(certPEM, keyPEM...), 0o600)
}

// render fills a committed config template.
func (h *harness) render(name string, data map[string]string) (string, error) {
	b, err := configs.ReadFile("configs/" + name)
	if err != nil {
		return "", err
	}
	t, err := template.New(name).Parse(string(b))
	if err != nil {
		return "", err
	}
	data["Dir"], data["Cert"], data["Key"], data["Both"] = h.dir, h.cert, h.key, h.both
	var out bytes.Buffer
	if err := t.Execute(&out, data); err != nil {
		return "", err
	}
	path := filepath.Join(h.dir, strconv.FormatInt(time.Now().UnixNano(), 36)+"-"+name)
	return path, os.WriteFile(path, out.Bytes(), 0o644)
}

func (h *harness) startBackend() error {
	ret, static := freeAddr(), freeAddr()
	os.WriteFile(filepath.Join(h.dir, "www", "1k.bin"), bytes.Repeat([]byte("x"), 1024), 0o644)
	cfg, err := h.render("backend-nginx.conf", map[string]string{"Return": ret, "Static": static, "Body": strings.Repeat("x", 1024)})
	if err != nil {
		return err
	}
	p, err := startProc(h.log, "backend", []string{ret, static}, h.bins["nginx"], "-p", h.dir, "-c", cfg)
	if err != nil {
		return err
	}
	h.bproc = p
	h.backend["return"], h.backend["static"] = ret, static
	return nil
}

// ---- target processes ----

type proc struct {
	name string
	cmd  *exec.Cmd
	addr string
	done chan struct{}
	out  *capped
}

func freeAddr() string {
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		a := ln.Addr().String()
		ln.Close()
		if _, dup := given[a]; !dup {
			given[a] = true
			return a
		}
	}
}

var given = map[string]bool{}

// capped keeps the last part of a process's output (a target's access
// log can be long). os/exec copies a child's output into it from its own
// goroutine while the harness reads it, hence the lock.
type capped struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf.Len() > 1<<20 {
		b := append([]byte(nil), c.buf.Bytes()[c.buf.Len()-(64<<10):]...)
		c.buf.Reset()
		c.buf.Write(b)
	}
	return c.buf.Write(p)
}

// Bytes is a copy of what is kept so far.
func (c *capped) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.buf.Bytes()...)
}

// startProc runs a target in its own process group and waits until every
// address in wait accepts connections.
func startProc(log io.Writer, name string, wait []string, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &capped{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), out: out}
	if len(wait) > 0 {
		p.addr = wait[0]
	}
	go func() { cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for _, a := range wait {
		for {
			c, err := net.DialTimeout("tcp", a, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-p.done:
				return nil, fmt.Errorf("%s exited at start: %s", name, lastLine(out.Bytes()))
			default:
			}
			if time.Now().After(deadline) {
				p.stop()
				return nil, fmt.Errorf("%s did not listen on %s: %s", name, a, lastLine(out.Bytes()))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return p, nil
}

// stop ends the process group this harness started, by its id.
func (p *proc) stop() {
	pgid := p.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// gracefulSignal is each target's drain signal.
var gracefulSignal = map[string]string{"sluice": "TERM", "sluice-tuned": "TERM", "nginx": "QUIT", "haproxy": "USR1", "h2o": "TERM", "goproxy": "TERM"}

// startTarget runs one target in front of the backend kind.
func (h *harness) startTarget(name, kind string) (*proc, error) {
	addr := freeAddr()
	host, port, _ := net.SplitHostPort(addr)
	up := h.backend[kind]
	data := map[string]string{"Listen": addr, "Host": host, "Port": port, "Backend": up}
	switch name {
	case "sluice", "sluice-tuned":
		// What a new user runs: one loop, the certificate, the upstream.
		args := []string{"-loops", "1", "-listen", addr, "-admin", "", "-cert", h.cert, "-key", h.key, "-upstream", "http://" + up}
		if name == "sluice-tuned" {
			args = append(args, strings.Fields(h.tuned)...)
		}
		return startProc(h.log, name, []string{addr}, h.sluice, args...)
	case "goproxy":
		return startProc(h.log, name, []string{addr}, h.goproxy, "-listen", addr, "-cert", h.cert, "-key", h.key, "-upstream", "http://"+up)
	case "nginx":
		if h.bins["nginx"] == "" {
			return nil, errMissing
		}
		cfg, err := h.render("nginx.conf", data)
		if err != nil {
			return nil, err
		}
		return startProc(h.log, name, []string{addr}, h.bins["nginx"], "-p", h.dir, "-c", cfg)
	case "haproxy":
		if h.bins["haproxy"] == "" {
			return nil, errMissing
		}
		cfg, err := h.render("haproxy.cfg", data)
		if err != nil {
			return nil, err
		}
		return startProc(h.log, name, []string{addr}, h.bins["haproxy"], "-db", "-f", cfg)
	case "h2o":
		if h.bins["h2o"] == "" {
			return nil, errMissing
		}
		cfg, err := h.render("h2o.conf", data)
		if err != nil {
			return nil, err
		}
		return startProc(h.log, name, []string{addr}, h.bins["h2o"], "-c", cfg)
	}
	return nil, fmt.Errorf("unknown target %q", name)
}

var errMissing = errors.New("not installed")

// ---- scenarios ----

type scenario struct {
	id, title, backend string
}

func (h *harness) scenarioList() []scenario {
	var out []scenario
	for _, s := range h.s.scenarios {
		switch s {
		case "h2", "h1":
			for _, b := range []string{"return", "static"} {
				out = append(out, scenario{id: s + "-" + b, backend: b, title: map[string]string{
					"h2": fmt.Sprintf("HTTP/2 over TLS, h2load -c50 -m10 -n%d", h.s.h2Requests),
					"h1": fmt.Sprintf("HTTP/1.1 over TLS, wrk -t1 -c50 -d%ds", h.s.h1Seconds)}[s] + ", backend " + backendName[b]})
			}
		case "hold":
			out = append(out, scenario{id: "hold", backend: "return", title: fmt.Sprintf("%d idle TLS 1.3 keep-alive connections held", h.s.holdConns)})
		case "handshake":
			out = append(out, scenario{id: "handshake", backend: "return", title: fmt.Sprintf("full TLS 1.3 handshakes + 1 request each (no resumption), 8 clients, %ds", h.s.hsSeconds)})
		case "drain":
			out = append(out, scenario{id: "drain", backend: "return", title: fmt.Sprintf("graceful stop of %d busy HTTP/2-over-TLS connections (2 streams each)", h.s.drainConns)})
		}
	}
	return out
}

var backendName = map[string]string{"return": "nginx return 200 (1 KiB)", "static": "nginx static file (1 KiB)"}

func (h *harness) runAll() error {
	scs := h.scenarioList()
	for r := 0; r < h.s.rounds; r++ {
		for _, sc := range scs {
			// Alternate: each round starts one target further on.
			order := append(append([]string(nil), h.s.targets[r%len(h.s.targets):]...), h.s.targets[:r%len(h.s.targets)]...)
			for _, t := range order {
				smp := h.measure(sc, t)
				if h.res[sc.id] == nil {
					h.res[sc.id] = map[string][]sample{}
				}
				h.res[sc.id][t] = append(h.res[sc.id][t], smp)
				h.logf("round %d %-14s %-13s %s", r+1, sc.id, t, smp.String(sc.id))
			}
		}
	}
	return nil
}

func (s sample) String(id string) string {
	if s.skipped {
		return "skipped: " + s.note
	}
	switch {
	case id == "hold":
		return fmt.Sprintf("%d held, %.0f B RSS per connection %s", s.held, s.rssPerConn, s.note)
	case id == "handshake":
		return fmt.Sprintf("%.0f handshakes/s, %.0f µs CPU each, errors %d", s.rps, s.cpuPerReq, s.errors)
	case id == "drain":
		return fmt.Sprintf("lost %d, exited %v, %.0f ms last response → exit %s", s.lost, s.exited, s.lastToExitMS, s.note)
	}
	return fmt.Sprintf("%.0f req/s, %.1f µs CPU/req, errors %d %s", s.rps, s.cpuPerReq, s.errors, s.note)
}

func (h *harness) measure(sc scenario, target string) sample {
	p, err := h.startTarget(target, sc.backend)
	if err != nil {
		return sample{skipped: true, note: err.Error()}
	}
	defer p.stop()
	pid := p.cmd.Process.Pid
	url := "https://" + p.addr + "/"
	// Warm up: a few requests through, so every target has its upstream
	// connections and code paths ready.
	if _, err := h.load(bench.Options{Mode: bench.ModeRate, Conns: 4, Requests: 200}, url, 0); err != nil {
		return sample{skipped: true, note: "warm-up: " + err.Error()}
	}
	switch {
	case strings.HasPrefix(sc.id, "h2-"):
		return h.h2load(url, pid)
	case strings.HasPrefix(sc.id, "h1-"):
		return h.wrk(url, pid)
	case sc.id == "hold":
		r, err := h.load(bench.Options{Mode: bench.ModeHold, Conns: h.s.holdConns, Duration: 2 * time.Second, TLSVer: 0x0304}, url, pid)
		if err != nil {
			return sample{skipped: true, note: err.Error()}
		}
		s := sample{held: r.Hold.StillOpen, rssPerConn: r.Hold.RSSPerConnBytes, errors: sumErrors(r)}
		if r.Hold.StillOpen < h.s.holdConns {
			s.note = fmt.Sprintf("(%d of %d held; errors %v)", r.Hold.StillOpen, h.s.holdConns, r.Errors)
		}
		return s
	case sc.id == "handshake":
		r, err := h.load(bench.Options{Mode: bench.ModeHandshake, Conns: 8, Duration: time.Duration(h.s.hsSeconds) * time.Second, TLSVer: 0x0304}, url, pid)
		if err != nil {
			return sample{skipped: true, note: err.Error()}
		}
		s := sample{rps: r.Handshake.PerSec, errors: sumErrors(r)}
		if r.Handshake.Full > 0 {
			s.cpuPerReq = r.Target.CPUSeconds * 1e6 / float64(r.Handshake.Full)
		}
		return s
	case sc.id == "drain":
		// Over HTTP/2: GOAWAY's last stream id tells a lost response from
		// an unprocessed one exactly (HTTP/1.1 cannot, see package bench).
		r, err := h.load(bench.Options{Mode: bench.ModeDrain, H2: true, Streams: 2, Conns: h.s.drainConns, Duration: drainDuration(h.s.drainConns),
			Signal: signalOf(gracefulSignal[target])}, url, pid)
		if err != nil {
			return sample{skipped: true, note: err.Error()}
		}
		d := r.Drain
		s := sample{lost: d.Losses(), exited: d.Exited, lastToExitMS: d.LastResponseToExitMS, errors: sumErrors(r)}
		if !d.Signalled {
			s.note = "(not signalled: " + d.SignalError + ")"
		} else if !d.Exited {
			s.note = "(did not exit)"
		}
		if d.Losses() > 0 {
			s.note += fmt.Sprintf(" (lost %d, truncated %d, timed out %d)", d.Lost, d.Truncated, d.TimedOut)
		}
		if d.Unprocessed > 0 {
			s.note += fmt.Sprintf(" (%d unprocessed, safe to retry)", d.Unprocessed)
		}
		return s
	}
	return sample{skipped: true, note: "unknown scenario"}
}

// drainDuration leaves time to open n TLS connections before the signal.
func drainDuration(n int) time.Duration { return 20*time.Second + time.Duration(n)*3*time.Millisecond }

func signalOf(s string) syscall.Signal {
	return map[string]syscall.Signal{"TERM": syscall.SIGTERM, "QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "INT": syscall.SIGINT}[s]
}

func sumErrors(r *bench.Result) int64 {
	var n int64
	for k, v := range r.Errors {
		if k != "unprocessed" {
			n += v
		}
	}
	for code, v := range r.Status {
		if code != "200" {
			n += v
		}
	}
	return n
}

// load runs the load tool in this process.
func (h *harness) load(o bench.Options, url string, pid int) (*bench.Result, error) {
	u, err := bench.ParseURL(url)
	if err != nil {
		return nil, err
	}
	o.URL, o.Insecure, o.Method, o.PID = u, true, "GET", pid
	if o.Streams == 0 {
		o.Streams = 1
	}
	if o.Duration == 0 {
		o.Duration = 30 * time.Second
	}
	o.Timeout, o.ReadRate = 10*time.Second, 1
	return bench.Run(context.Background(), &o, nil)
}

var (
	h2loadDone = regexp.MustCompile(`requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2loadRate = regexp.MustCompile(`finished in ([0-9.]+)(m?s), ([0-9.]+) req/s`)
	h2load2xx  = regexp.MustCompile(`status codes: (\d+) 2xx`)
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkTotal   = regexp.MustCompile(`(\d+) requests in`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkErrs    = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func atoi(b []byte) int64 { n, _ := strconv.ParseInt(string(b), 10, 64); return n }

// h2load runs the HTTP/2 load; bench's rate mode stands in when
// h2load is missing.
func (h *harness) h2load(url string, pid int) sample {
	before, _ := bench.ReadProc(pid)
	if h.bins["h2load"] == "" {
		r, err := h.load(bench.Options{Mode: bench.ModeRate, H2: true, Conns: 50, Streams: 10, Requests: int64(h.s.h2Requests)}, url, pid)
		if err != nil {
			return sample{skipped: true, note: err.Error()}
		}
		return sample{rps: r.ReqPerSec, cpuPerReq: r.Target.CPUPerRequestUS, errors: sumErrors(r), note: "(sluice-bench: h2load missing)"}
	}
	out, err := exec.Command(h.bins["h2load"], "-c50", "-m10", "-n"+strconv.Itoa(h.s.h2Requests), url).CombinedOutput()
	after, _ := bench.ReadProc(pid)
	m, mr := h2loadDone.FindSubmatch(out), h2loadRate.FindSubmatch(out)
	if err != nil || m == nil || mr == nil {
		return sample{skipped: true, note: fmt.Sprintf("h2load: %v %s", err, lastLine(out))}
	}
	s := sample{errors: atoi(m[4]) + atoi(m[5]) + atoi(m[6])}
	s.rps, _ = strconv.ParseFloat(string(mr[3]), 64)
	if ok := h2load2xx.FindSubmatch(out); ok != nil {
		s.errors += atoi(m[3]) - atoi(ok[1])
	}
	if n := atoi(m[2]); n > 0 {
		s.cpuPerReq = float64((after.CPU - before.CPU).Microseconds()) / float64(n)
	}
	return s
}

// wrk runs the HTTP/1.1 load (wrk sends no ALPN: HTTP/1.1).
func (h *harness) wrk(url string, pid int) sample {
	before, _ := bench.ReadProc(pid)
	if h.bins["wrk"] == "" {
		r, err := h.load(bench.Options{Mode: bench.ModeRate, Conns: 50, Duration: time.Duration(h.s.h1Seconds) * time.Second}, url, pid)
		if err != nil {
			return sample{skipped: true, note: err.Error()}
		}
		return sample{rps: r.ReqPerSec, cpuPerReq: r.Target.CPUPerRequestUS, errors: sumErrors(r), note: "(sluice-bench: wrk missing)"}
	}
	out, err := exec.Command(h.bins["wrk"], "-t1", "-c50", fmt.Sprintf("-d%ds", h.s.h1Seconds), url).CombinedOutput()
	after, _ := bench.ReadProc(pid)
	m, mt := wrkRPS.FindSubmatch(out), wrkTotal.FindSubmatch(out)
	if err != nil || m == nil || mt == nil {
		return sample{skipped: true, note: fmt.Sprintf("wrk: %v %s", err, lastLine(out))}
	}
	s := sample{}
	s.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	if e := wrkNon2xx.FindSubmatch(out); e != nil {
		s.errors += atoi(e[1])
	}
	if e := wrkErrs.FindSubmatch(out); e != nil {
		for _, g := range e[1:] {
			s.errors += atoi(g)
		}
	}
	if n := atoi(mt[1]); n > 0 {
		s.cpuPerReq = float64((after.CPU - before.CPU).Microseconds()) / float64(n)
	}
	return s
}

// ---- the machine ----

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	var u unix.Utsname
	unix.Uname(&u)
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s", runtime.NumCPU(), model, unix.ByteSliceToString(u.Release[:]), runtime.Version())
}
