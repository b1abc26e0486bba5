package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// nginxProc is an nginx started by the benchmark from a generated config,
// in the foreground (daemon off), in its own process group.
type nginxProc struct {
	cmd *exec.Cmd
	dir string
}

// startNginx writes conf (the body of the config after the fixed part) to
// a temp dir and runs nginx on it until the benchmark ends.
func startNginx(tb testing.TB, name string, workers int, httpBlock string, waitAddr string) *nginxProc {
	tb.Helper()
	bin := testutil.NeedTool(tb, "nginx")
	dir := tb.TempDir()
	for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes %d;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path %s/client_body;
  proxy_temp_path %s/proxy;
  fastcgi_temp_path %s/fastcgi;
  uwsgi_temp_path %s/uwsgi;
  scgi_temp_path %s/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  tcp_nodelay on;
%s
}
`, workers, dir, dir, dir, dir, dir, dir, dir, httpBlock)
	path := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &nginxProc{cmd: cmd, dir: dir}
	tb.Cleanup(p.stop)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", waitAddr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			tb.Fatalf("nginx %s did not start: %v\n%s\n%s", name, err, stderr.String(), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// stop ends the nginx this benchmark started: its process group, by id.
func (p *nginxProc) stop() {
	if p.cmd.Process == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
}

// workerPIDs lists the nginx worker processes (children of the master).
func (p *nginxProc) workerPIDs() []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.cmd.Process.Pid, p.cmd.Process.Pid))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

// cpuTime is utime+stime of a process, from /proc/PID/stat.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // sysconf(_SC_CLK_TCK) on Linux
	return time.Duration(ut+st) * time.Second / clkTck
}

// loadResult is one load run against one target.
type loadResult struct {
	rps    float64
	errors int64
}

// runLoad drives url with conns keep-alive connections for d.
func runLoad(tb testing.TB, url string, conns int, d time.Duration) loadResult {
	tb.Helper()
	if os.Getenv("SLUICE_BENCH_LOADGEN") != "go" {
		if wrk, err := exec.LookPath("wrk"); err == nil {
			return runWrk(tb, wrk, url, conns, d)
		}
	}
	return runGoLoad(tb, url, conns, d)
}

var (
	wrkRPS    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkErrs   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func runWrk(tb testing.TB, wrk, url string, conns int, d time.Duration) loadResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	secs := max(1, int(d.Round(time.Second)/time.Second))
	out, err := exec.CommandContext(ctx, wrk, "-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", secs), url).CombinedOutput()
	if err != nil {
		tb.Fatalf("wrk: %v\n%s", err, out)
	}
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		tb.Fatalf("wrk output without Requests/sec:\n%s", out)
	}
	var r loadResult
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := wrkNon2xx.FindSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		r.errors += n
	}
	if m := wrkErrs.FindSubmatch(out); m != nil {
		for _, g := range m[1:] {
			n, _ := strconv.ParseInt(string(g), 10, 64)
			r.errors += n
		}
	}
	return r
}

// runGoLoad is the fallback load generator: conns goroutines, each with
// one keep-alive connection (TCP_NODELAY, Go's default), one request
// written at a time, the response read whole.
func runGoLoad(tb testing.TB, url string, conns int, d time.Duration) loadResult {
	tb.Helper()
	useTLS := strings.HasPrefix(url, "https://")
	hostport := strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
	path := "/"
	if i := strings.IndexByte(hostport, '/'); i >= 0 {
		hostport, path = hostport[:i], hostport[i:]
	}
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + hostport + "\r\n\r\n")
	var done, failed atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c net.Conn
			var err error
			if useTLS {
				c, err = tls.Dial("tcp", hostport, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
			} else {
				c, err = net.Dial("tcp", hostport)
			}
			if err != nil {
				failed.Add(1)
				return
			}
			defer c.Close()
			br := bufio.NewReaderSize(c, 16<<10)
			for time.Now().Before(stop) {
				if _, err := c.Write(req); err != nil {
					failed.Add(1)
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					failed.Add(1)
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					return
				}
				done.Add(1)
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	return loadResult{rps: float64(done.Load()) / time.Since(start).Seconds(), errors: failed.Load()}
}

// check fetches url once and compares the body length.
func check(url string, size int) error {
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer cl.CloseIdleConnections()
	resp, err := cl.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || len(b) != size {
		return errors.New(fmt.Sprintf("status %d, %d bytes, want 200 and %d", resp.StatusCode, len(b), size))
	}
	return nil
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// reportSpread reports the median of xs as name, and its range as
// name_min and name_max.
func reportSpread(b *testing.B, name string, xs []float64) {
	sort.Float64s(xs)
	b.ReportMetric(median(xs), name)
	b.ReportMetric(xs[0], name+"_min")
	b.ReportMetric(xs[len(xs)-1], name+"_max")
}
