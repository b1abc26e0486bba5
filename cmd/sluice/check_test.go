package main

import (
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// -check builds the configuration with start-up's own constructor
// (build): whatever start-up refuses, -check refuses with the same lines
// and exit status 2. Through the real binary, for settings of every kind.
func TestCheckRefusesWhatStartRefuses(t *testing.T) {
	dir := t.TempDir()
	certA, keyA, _ := writeCert(t, dir, "a", "a.example")
	_, keyB, _ := writeCert(t, dir, "b", "b.example")
	notPEM := filepath.Join(dir, "x.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600)
	missingCA := writeFile(t, "[[routes]]\nupstreams = [\"https://127.0.0.1:1\"]\n[[upstreams]]\nurl = \"https://127.0.0.1:1\"\nca = \"/nonexistent/ca.pem\"\n")
	plainUp := writeFile(t, "[[routes]]\nupstreams = [\"http://127.0.0.1:1\"]\n[[upstreams]]\nurl = \"http://127.0.0.1:1\"\n")
	listen := freePort(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"health path with a space", []string{"-health-path", "/a b"}, `-health-path "/a b"`},
		{"health path with a control", []string{"-health-path", "/a\tb"}, `-health-path "/a\tb"`},
		{"two listeners on one address", []string{"-listen-plain", listen}, "same address"},
		{"listen-plain in tcp mode", []string{"-mode", "tcp", "-upstream", "tcp://127.0.0.1:1", "-listen-plain", "127.0.0.1:0"}, "-listen-plain: only in -mode http"},
		{"cert and key of different pairs", []string{"-cert", certA, "-key", keyB}, "-key"},
		{"cert not PEM", []string{"-cert", notPEM, "-key", keyA}, "-cert"},
		{"tcp-mode cert not PEM", []string{"-mode", "tcp", "-upstream", "tcp://127.0.0.1:1", "-cert", notPEM, "-key", keyA}, "-cert"},
		{"upstream client cert without key", []string{"-upstream", "https://127.0.0.1:1", "-upstream-client-cert", certA}, "give both or neither"},
		{"upstream CA not PEM", []string{"-upstream", "https://127.0.0.1:1", "-upstream-ca", notPEM}, "-upstream-ca"},
		{"[[upstreams]] CA missing", []string{"-config", missingCA}, `ca "/nonexistent/ca.pem"`},
		{"[[upstreams]] for a cleartext upstream", []string{"-config", plainUp}, "TLS settings are for https:// and h2://"},
		{"route with a path", []string{"-route", "/api=http://127.0.0.1:1/base"}, "-route"},
		{"route with a bad scheme", []string{"-route", "/=ftp://127.0.0.1:1"}, "-route"},
	} {
		start := append([]string{"-listen", listen, "-admin", ""}, tc.args...)
		code, _, startErr := runBin(t, start...)
		checkCode, checkOut, checkErr := runBin(t, append([]string{"-check"}, start...)...)
		if code != 2 || checkCode != 2 {
			t.Errorf("%s: start-up exit %d, -check exit %d (%q), want 2 and 2\nstart-up: %s\n-check: %s", tc.name, code, checkCode, checkOut, startErr, checkErr)
			continue
		}
		if startErr != checkErr {
			t.Errorf("%s: start-up and -check say different things:\nstart-up: %q\n-check:   %q", tc.name, startErr, checkErr)
		}
		if !strings.Contains(checkErr, tc.want) || !strings.HasPrefix(checkErr, "sluice: ") {
			t.Errorf("%s: %q does not say %q", tc.name, checkErr, tc.want)
		}
	}
}

// -check lists every problem, one line each naming its flag, not only the
// first (the flags' own parse included); start-up says the same.
func TestCheckListsEveryProblem(t *testing.T) {
	args := []string{"-listen", freePort(t), "-admin", "", "-idle-timeout", "5", "-loops", "0", "-max-conns", "0", "-balance", "random",
		"-health-path", "healthz", "-drain-timeout", "soon", "-access-log", "bogus", "-lock-loops=maybe"}
	wants := []string{"-idle-timeout", "-loops", "-max-conns", "-balance", "-health-path", "-drain-timeout", "-access-log", "-lock-loops"}
	code, _, stderr := runBin(t, append([]string{"-check"}, args...)...)
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(lines) != len(wants) {
		t.Errorf("%d lines, want %d (one per problem):\n%s", len(lines), len(wants), stderr)
	}
	for _, w := range wants {
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, "sluice: "+w+" ") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d lines start with %q, want 1:\n%s", n, w, stderr)
		}
	}
	code, _, startErr := runBin(t, args...)
	if code != 2 || startErr != stderr {
		t.Errorf("start-up: exit %d, %q; want 2 and what -check said", code, startErr)
	}
	// A file's own problems and the checks of its values together: a
	// bad key keeps the flag's default, which is not reported again.
	f := writeFile(t, "loops = \"many\"\nidle-timeout = 5\nbalance = \"random\"\nmax-conns = 0\n")
	code, _, stderr = runBin(t, "-check", "-config", f)
	lines = strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if code != 2 || len(lines) != 4 {
		t.Fatalf("exit %d, %d lines, want 2 and 4 (one per problem):\n%s", code, len(lines), stderr)
	}
	for i, w := range []string{`idle-timeout = 5: a duration needs a unit`, `loops = "many": want a whole number`, `-max-conns 0`, `-balance "random"`} {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d %q does not say %q", i, lines[i], w)
		}
	}
}

// -check creates no file: a new access log's path is checked (its
// directory must exist and be writable) but not opened.
func TestCheckCreatesNoFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	code, stdout, stderr := runBin(t, "-check", "-access-log", path)
	if code != 0 || !strings.Contains(stdout, "configuration OK") {
		t.Fatalf("exit %d, %q %q", code, stdout, stderr)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("-check created %s (stat: %v)", path, err)
	}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "no-dir", "access.log"), "no such file or directory"},
		{dir, "is a directory"},
		{filepath.Join(notADir(t, dir), "access.log"), "not a directory"},
	} {
		code, _, stderr := runBin(t, "-check", "-access-log", tc.path)
		if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "-access-log") || !strings.Contains(stderr, tc.want) {
			t.Errorf("-access-log %s: exit %d, %q; want 2 and one line saying %q", tc.path, code, stderr, tc.want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("-check left files in %s: %v", dir, entries)
	}
}

func notADir(t *testing.T, dir string) string {
	f := filepath.Join(dir, "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// A SIGHUP does not apply a changed [[upstreams]] TLS table (an upstream
// keeps the TLS client its pools and health checks share): the log names
// each such setting as needing a restart, and requests go on with the
// settings that run.
func TestSIGHUPUpstreamTLSChangeNeedsRestart(t *testing.T) {
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "tls backend")
	}))
	be.Config.ErrorLog = log.New(io.Discard, "", 0)
	be.StartTLS()
	defer be.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: be.Certificate().Raw}), 0o600)
	other, _, _ := writeCert(t, dir, "other", "other.example")
	up := "https://" + be.Listener.Addr().String()
	conf := filepath.Join(dir, "sluice.toml")
	write := func(ca, name string) {
		body := fmt.Sprintf("[[routes]]\nupstreams = [%q]\n[[upstreams]]\nurl = %q\nca = %q\n", up, up, ca)
		if name != "" {
			body += fmt.Sprintf("server-name = %q\n", name)
		}
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(ca, "")
	p := startSluice(t, "-config", conf)
	get := func() (int, string) {
		t.Helper()
		resp, err := insecureClient().Get("https://" + p.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 200 || body != "tls backend" {
		t.Fatalf("before the reload: %d %q", code, body)
	}
	write(other, "other.example")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, "SIGHUP: configuration reloaded")
	var warn string
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(l, "SIGHUP:") && strings.Contains(l, "needs a restart") {
			warn = l
		}
	}
	for _, w := range []string{"upstreams[" + up + "].ca", "upstreams[" + up + "].server-name"} {
		if !strings.Contains(warn, w) {
			t.Errorf("the reload's warning %q does not name %s\n%s", warn, w, p.stderr)
		}
	}
	// Not applied: the new CA would refuse the backend's certificate.
	if code, body := get(); code != 200 || body != "tls backend" {
		t.Errorf("after the reload: %d %q, want the running settings kept", code, body)
	}
}
