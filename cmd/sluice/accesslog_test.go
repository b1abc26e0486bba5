package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// -access-log PATH: its own stream, buffered yet complete at exit (SIGTERM a moment after the last request,
// well inside the one-second flush), and reopened on SIGHUP after a
// rotation. The main log (stderr) holds no request line.
func TestAccessLogToFile(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer be.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	p := startSluice(t, "-upstream", be.URL, "-access-log", path)
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(n int, tag string) {
		for i := 0; i < n; i++ {
			resp, err := cl.Get("https://" + p.addr + "/" + tag)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	get(5, "before")
	// Rotate: rename, SIGHUP, and the next lines go to a new file at path.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.stderr.String(), "access log reopened") {
		if time.Now().After(deadline) {
			t.Fatalf("no reopen logged\n%s", p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	get(7, "after")
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code, _ := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr)
	}
	count := func(file, tag string) int {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "msg=request") && strings.Contains(l, "path=/"+tag) && strings.Contains(l, "status=200") {
				n++
			}
		}
		return n
	}
	if n, m := count(path+".1", "before"), count(path+".1", "after"); n != 5 || m != 0 {
		t.Errorf("rotated file: %d lines before the SIGHUP (want 5), %d after (want 0)", n, m)
	}
	if n, m := count(path, "after"), count(path, "before"); n != 7 || m != 0 {
		t.Errorf("new file: %d lines after the SIGHUP (want 7), %d before (want 0)", n, m)
	}
	if strings.Contains(p.stderr.String(), "msg=request") {
		t.Errorf("request lines in the main log:\n%s", p.stderr)
	}
}

// -access-log takes stderr, stdout, off, a path with a /, and still true
// and false; anything else is one line naming the flag and exit status 2.
func TestAccessLogFlagValues(t *testing.T) {
	for _, c := range []struct {
		val  string
		want string
	}{
		{"bogus", "must be stderr, stdout, off or a file path"},
		{"ture", "must be stderr, stdout, off or a file path"},
		{"/nonexistent-dir/access.log", "no such file or directory"},
	} {
		code, _, stderr := runBin(t, "-access-log="+c.val, "-listen", testutil.FreePort(t), "-admin", "")
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 2 || len(lines) != 1 || !strings.Contains(stderr, "-access-log") || !strings.Contains(stderr, c.want) {
			t.Errorf("-access-log=%s: exit %d, stderr %q; want 2 and one line naming the flag and %q", c.val, code, stderr, c.want)
		}
	}
	// Its own level: -log-level warn silences the main log's info lines,
	// not the request lines.
	c, err := parseFlags([]string{"-access-log=stdout", "-log-level=warn"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	al, err := openAccessLog(c, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !al.log.Enabled(context.Background(), slog.LevelInfo) {
		t.Error("-log-level warn turned the access log off")
	}
	al.close()
	for _, v := range []string{"true", "false", "off", "stdout", "stderr"} {
		c, err := parseFlags([]string{"-access-log=" + v}, io.Discard)
		if err != nil {
			t.Errorf("-access-log=%s: %v", v, err)
			continue
		}
		want := map[string]string{"true": "stderr", "false": "off"}[v]
		if want == "" {
			want = v
		}
		if c.accessLog != want {
			t.Errorf("-access-log=%s: %q, want %q", v, c.accessLog, want)
		}
	}
}

// stderrHas waits up to 5 s for s in the process's stderr: the access log
// is buffered and flushed every second.
func (p *proc) stderrHas(s string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.stderr.String(), s) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// The in-use cap's flags reach the proxy, and bad values are one line.
func TestUpstreamMaxConnsFlags(t *testing.T) {
	for _, c := range [][]string{
		{"-upstream-max-conns", "-1"}, {"-upstream-queue", "-5"}, {"-upstream-queue-timeout", "0s"},
	} {
		code, _, stderr := runBin(t, append(c, "-listen", testutil.FreePort(t), "-admin", "")...)
		if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, c[0]) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line naming the flag", c, code, stderr)
		}
	}
	// An HTTP/2 upstream needs a connection per loop.
	if _, err := parseFlags([]string{"-loops", "2", "-upstream-max-conns", "1", "-upstream", "h2c://127.0.0.1:1"}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "-upstream-max-conns") || !strings.Contains(err.Error(), "-loops") {
		t.Errorf("h2c upstream, cap 1 under 2 loops: %v", err)
	}
	if _, err := parseFlags([]string{"-loops", "2", "-upstream-max-conns", "1", "-upstream", "http://127.0.0.1:1"}, io.Discard); err != nil {
		t.Errorf("HTTP/1.1 upstream, cap 1 under 2 loops: %v", err)
	}
	c, err := parseFlags([]string{"-upstream-max-conns", "8", "-upstream-queue", "16", "-upstream-queue-timeout", "2s"}, io.Discard)
	if err != nil || c.upMaxConns != 8 || c.upQueue != 16 || c.upQueueWait != 2*time.Second {
		t.Errorf("parsed %+v, %v", c, err)
	}
}
