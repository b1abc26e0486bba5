package interop

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

var (
	sluiceBin  string
	clientBin  string
	serverBin  string
	noPeers    string // why the hyper peers are absent (cargo missing)
	peerBuildT time.Duration
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-interop")
	if err != nil {
		panic(err)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if sluiceBin, err = testutil.BuildSluice(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := buildPeers(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// findCargo looks on PATH, then in ~/.cargo/bin (rustup's place, which a
// non-login shell may not have on PATH).
func findCargo() string {
	if p, err := exec.LookPath("cargo"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cargo", "bin", "cargo")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// buildPeers builds the hyper client and server once; cargo's own cache
// (hyper/target) makes later runs a no-op check. cargo being absent is
// the one reason to skip; a failed build is a failure.
func buildPeers() error {
	cargo := findCargo()
	if cargo == "" {
		noPeers = "cargo not found on PATH or in ~/.cargo/bin: the hyper/rustls peers cannot be built (run interop/setup.sh, as CI does)"
		return nil
	}
	start := time.Now()
	cmd := exec.Command(cargo, "build", "--release", "--quiet")
	cmd.Dir = "hyper"
	// cargo's rustc sits beside it.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(cargo)+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the hyper peers (cargo build in interop/hyper; interop/setup.sh installs the Debian crates): %v\n%s", err, out)
	}
	peerBuildT = time.Since(start)
	abs, _ := filepath.Abs(filepath.Join("hyper", "target", "release"))
	clientBin, serverBin = filepath.Join(abs, "client"), filepath.Join(abs, "server")
	return nil
}

func needPeers(t *testing.T) {
	t.Helper()
	consultOnce.Do(func() {
		// go test caches this package's result by the files its tests
		// opened: sluice's sources and the crate's, both built at run time.
		consultErr = testutil.ConsultModule()
		if consultErr == nil {
			consultErr = testutil.ConsultTree("hyper", ".rs", ".toml")
		}
	})
	if consultErr != nil {
		t.Fatal(consultErr)
	}
	if noPeers != "" {
		t.Skip(noPeers)
	}
}

var (
	consultOnce sync.Once
	consultErr  error
)

// ---- the hyper server ----

type hyperServer struct {
	*testutil.Proc
	addr string
	tls  bool
}

// connEnd is one line the server (or client) prints when a connection
// ends: how its reads ended and the first I/O error, named.
type connEnd struct {
	Event        string `json:"event"`
	ID           int    `json:"id"`
	TLS          bool   `json:"tls"`
	ALPN         string `json:"alpn"`
	BytesRead    int64  `json:"bytes_read"`
	BytesWritten int64  `json:"bytes_written"`
	EOF          string `json:"eof"`
	Closer       string `json:"closer"`
	Error        string `json:"error"`
}

// startServer runs the hyper server: proto h1, h2c or tls (ALPN h2 and
// http/1.1).
func startServer(t *testing.T, proto string, c testutil.Certs) *hyperServer {
	t.Helper()
	args := []string{"--proto", proto}
	if proto == "tls" {
		args = append(args, "--cert", c.Cert, "--key", c.Key)
	}
	p := testutil.Start(t, "hyper server ("+proto+")", serverBin, args...)
	l := p.WaitLine(t, "LISTEN ", 10*time.Second)
	return &hyperServer{Proc: p, addr: strings.TrimPrefix(l, "LISTEN "), tls: proto == "tls"}
}

// ends parses the conn_end lines printed so far.
func (s *hyperServer) ends(t *testing.T) []connEnd {
	t.Helper()
	var out []connEnd
	for _, l := range s.Stdout() {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var e connEnd
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("server line %q: %v", l, err)
		}
		if e.Event == "conn_end" {
			out = append(out, e)
		} else if e.Event != "" {
			t.Errorf("hyper server reported %s", l)
		}
	}
	return out
}

// stop shuts the server down gracefully and returns how each of its
// connections ended.
func (s *hyperServer) stop(t *testing.T) []connEnd {
	t.Helper()
	s.Signal(t, syscall.SIGTERM)
	if code := s.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("hyper server exit %d:\n%s", code, s.Output())
	}
	return s.ends(t)
}

// checkUpstreamEnds asserts that every connection sluice made to the
// server ended cleanly from the server's view: close_notify over TLS (FIN
// in plaintext), no reset, no error.
func checkUpstreamEnds(t *testing.T, ends []connEnd, tlsOn bool) {
	t.Helper()
	if len(ends) == 0 {
		t.Fatal("the hyper server saw no connection from sluice")
	}
	want := "fin"
	if tlsOn {
		want = "close_notify"
	}
	bad := 0
	for _, e := range ends {
		if e.Error != "" || e.EOF != want {
			bad++
			if bad <= 5 {
				t.Errorf("upstream connection %d (%s, %d bytes read, closed first by %q): eof %q, error %q; want eof %q and no error", e.ID, e.ALPN, e.BytesRead, e.Closer, e.EOF, e.Error, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d upstream connections did not end cleanly", bad, len(ends))
	}
}

// ---- the hyper client ----

type clientSummary struct {
	Requests    int   `json:"requests"`
	OK          int   `json:"ok"`
	Errors      int   `json:"errors"`
	Conns       int   `json:"conns"`
	ConnEnds    int   `json:"conn_ends"`
	CloseNotify int   `json:"close_notify"`
	Fin         int   `json:"fin"`
	BytesUp     int64 `json:"bytes_up"`
	BytesDown   int64 `json:"bytes_down"`
	Ms          int64 `json:"ms"`
}

// clientArgs names sluice's TLS port (proto h1 or h2, ALPN) or its
// plaintext port (h2c: prior knowledge).
func clientArgs(s *sluiceProc, proto string, c testutil.Certs) []string {
	if proto == "h2c" {
		return []string{"--addr", s.plain, "--proto", "h2c"}
	}
	return []string{"--addr", s.Addr, "--proto", proto, "--tls", "--sni", "localhost", "--ca", c.CA}
}

func startClient(t *testing.T, args ...string) *testutil.Proc {
	t.Helper()
	return testutil.Start(t, "hyper client", clientBin, args...)
}

// finishClient waits for the client and returns its summary and exit code.
func finishClient(t *testing.T, p *testutil.Proc, d time.Duration) (clientSummary, int) {
	t.Helper()
	code := p.Wait(t, d)
	var s clientSummary
	lines := p.Stdout()
	if len(lines) == 0 || json.Unmarshal([]byte(lines[len(lines)-1]), &s) != nil {
		t.Fatalf("hyper client (exit %d) printed no summary:\n%s", code, p.Output())
	}
	return s, code
}

// runClient runs the client to its end and fails the test on any error
// it reports.
func runClient(t *testing.T, d time.Duration, args ...string) clientSummary {
	t.Helper()
	p := startClient(t, args...)
	s, code := finishClient(t, p, d)
	if code != 0 || s.Errors != 0 || s.OK != s.Requests {
		t.Fatalf("hyper client: exit %d, %d of %d ok, %d errors:\n%s", code, s.OK, s.Requests, s.Errors, tail(p.Output(), 40))
	}
	return s
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = append([]string{fmt.Sprintf("... (%d lines before)", len(l)-n)}, l[len(l)-n:]...)
	}
	return strings.Join(l, "\n")
}

// ---- sluice ----

type sluiceProc struct {
	*testutil.Sluice
	plain string
}

// startSluice runs the binary with its TLS port, a plaintext port
// (HTTP/1.1 and h2c), our certificate, the CA for TLS upstreams, and
// extra flags.
func startSluice(t *testing.T, c testutil.Certs, upstream string, extra ...string) *sluiceProc {
	t.Helper()
	plain := testutil.FreePort(t)
	args := append([]string{"-listen-plain", plain, "-loops", "2", "-cert", c.Cert, "-key", c.Key,
		"-upstream-ca", c.CA, "-upstream", upstream}, extra...)
	s := &sluiceProc{Sluice: testutil.StartSluice(t, sluiceBin, args...), plain: plain}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sluice's log, access lines left out:\n%s", tail(s.notes(), 60))
		}
	})
	return s
}

// notes is sluice's log without the access log's lines.
func (s *sluiceProc) notes() string {
	var keep []string
	for _, l := range strings.Split(s.Output(), "\n") {
		if !strings.Contains(l, "msg=request ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// drain sends SIGTERM and waits for a clean exit.
func (s *sluiceProc) drain(t *testing.T, d time.Duration) {
	t.Helper()
	s.Signal(t, syscall.SIGTERM)
	if code := s.Wait(t, d); code != 0 {
		t.Fatalf("sluice exit %d after SIGTERM:\n%s", code, tail(s.Output(), 40))
	}
}

// upstreamURL is sluice's -upstream for a server kind: http (h1), h2c,
// h2 (TLS, ALPN h2) or https (TLS, HTTP/1.1).
func upstreamURL(kind, addr string) string {
	return map[string]string{"http": "http://", "h2c": "h2c://", "h2": "h2://", "https": "https://"}[kind] + addr
}

// serverProto is the hyper server mode that serves an upstream kind.
func serverProto(kind string) string {
	return map[string]string{"http": "h1", "h2c": "h2c", "h2": "tls", "https": "tls"}[kind]
}
