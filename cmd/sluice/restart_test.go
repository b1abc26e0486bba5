package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// family is a sluice process and the processes it restarted into, all
// writing to one stderr pipe read here (so the old process's Wait does not
// wait for the new one's output).
type family struct {
	cmd    *exec.Cmd
	done   chan struct{} // the first process exited
	err    error
	log    testutil.Buffer
	addr   string
	admin  string
	lineCh chan struct{}
}

func startFamily(t *testing.T, extra []*os.File, env []string, bin string, args ...string) *family {
	t.Helper()
	f := &family{done: make(chan struct{}), lineCh: make(chan struct{}, 1)}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	f.cmd = exec.Command(bin, args...)
	f.cmd.Stderr = w
	f.cmd.ExtraFiles = extra
	f.cmd.Env = append(os.Environ(), env...)
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			f.log.WriteString(sc.Text() + "\n")
			select {
			case f.lineCh <- struct{}{}:
			default:
			}
		}
		r.Close()
	}()
	go func() { f.err = f.cmd.Wait(); close(f.done) }()
	t.Cleanup(func() {
		f.cmd.Process.Kill()
		<-f.done
	})
	return f
}

// waitLine waits for the n-th (from 1) log line matching re and returns
// its submatches.
func (f *family) waitLine(t *testing.T, re string, n int, d time.Duration) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(d)
	for {
		if m := rx.FindAllStringSubmatch(f.log.String(), -1); len(m) >= n {
			return m[n-1]
		}
		select {
		case <-f.lineCh:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no line %d matching %q within %v:\n%s", n, re, d, f.log.String())
		}
	}
}

// subreaper makes this test process the parent of the sluice a restart
// leaves orphaned, so the test can stop and reap it.
func subreaper(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
}

// stopPid ends a process this test reaps as subreaper (SIGTERM, then
// SIGKILL after d) and returns its exit status.
func stopPid(t *testing.T, pid int, d time.Duration) unix.WaitStatus {
	t.Helper()
	unix.Kill(pid, syscall.SIGTERM)
	ch := make(chan unix.WaitStatus, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if err != unix.EINTR {
				break
			}
		}
		ch <- ws
	}()
	select {
	case ws := <-ch:
		return ws
	case <-time.After(d):
		unix.Kill(pid, syscall.SIGKILL)
		t.Errorf("pid %d still running %v after SIGTERM", pid, d)
		return <-ch
	}
}

// load runs HTTP/1.1 (a new connection per request, and keep-alive) and
// HTTP/2 clients over TLS against addr until stop, checking every body
// byte for byte, and counts what they saw.
type load struct {
	ok, failed [3]atomic.Int64 // h1 new conn, h1 keep-alive, h2
	errs       testutil.Buffer
	wg         sync.WaitGroup
}

var loadKinds = [3]string{"h1-new-conn", "h1-keep-alive", "h2"}

func (ld *load) run(addr string, stop <-chan struct{}) {
	for k := 0; k < 3; k++ {
		for g := 0; g < 2; g++ {
			ld.wg.Add(1)
			go func(k, g int) {
				defer ld.wg.Done()
				rng := rand.New(rand.NewSource(int64(k*10 + g)))
				newClient := func() *http.Client {
					tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}},
						DisableKeepAlives: k == 0}
					if k == 2 {
						tr.TLSClientConfig.NextProtos = []string{"h2"}
						tr.ForceAttemptHTTP2 = true
					}
					return &http.Client{Transport: tr, Timeout: 20 * time.Second}
				}
				c := newClient()
				for i := 0; ; i++ {
					select {
					case <-stop:
						c.CloseIdleConnections()
						return
					default:
					}
					if k == 2 && i%20 == 19 { // new HTTP/2 connections too
						c.CloseIdleConnections()
						c = newClient()
					}
					n := 1 + rng.Intn(256<<10)
					if err := fetch(c, "https://"+addr+"/bytes?n="+strconv.Itoa(n), n, k == 2); err != nil {
						ld.failed[k].Add(1)
						ld.errs.WriteString(fmt.Sprintf("%s: %v\n", loadKinds[k], err))
						continue
					}
					ld.ok[k].Add(1)
				}
			}(k, g)
		}
	}
}

func fetch(c *http.Client, url string, n int, h2 bool) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("body after %d bytes: %v", len(b), err)
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if h2 != (resp.ProtoMajor == 2) {
		return fmt.Errorf("protocol %s", resp.Proto)
	}
	if len(b) != n || !bytes.Equal(b, patternBytes(n)) {
		return fmt.Errorf("body of %d bytes differs from the %d sent", len(b), n)
	}
	return nil
}

func (ld *load) counts() (ok, failed [3]int64) {
	for k := range ok {
		ok[k], failed[k] = ld.ok[k].Load(), ld.failed[k].Load()
	}
	return
}

// SIGUSR2 under HTTP/1.1 and HTTP/2 load over TLS: the new process takes
// the listening sockets, the old one drains and exits 0, and no
// connection is refused and no response fails or is cut short (every body
// checked byte for byte), before, during and after the handoff.
func TestRestartUnderLoad(t *testing.T) {
	subreaper(t)
	up := httpBackend(t)
	addr, admin := testutil.FreePort(t), testutil.FreePort(t)
	f := startFamily(t, nil, nil, binPath, "-listen", addr, "-admin", admin, "-loops", "2", "-upstream", "http://"+up, "-drain-timeout", "10s")
	oldPid := f.waitLine(t, `sluice serving" pid=(\d+)`, 1, 15*time.Second)[1]
	if oldPid != strconv.Itoa(f.cmd.Process.Pid) {
		t.Fatalf("serving pid %s, started %d", oldPid, f.cmd.Process.Pid)
	}

	ld := &load{}
	stop := make(chan struct{})
	ld.run(addr, stop)
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
		}
		ld.wg.Wait()
	}()
	time.Sleep(time.Second)
	before, _ := ld.counts()
	f.cmd.Process.Signal(syscall.SIGUSR2)
	newPid, _ := strconv.Atoi(f.waitLine(t, `sluice serving" pid=(\d+)`, 2, 30*time.Second)[1])
	if newPid == f.cmd.Process.Pid || newPid == 0 {
		t.Fatalf("new process pid %d", newPid)
	}
	defer func() {
		if ws := stopPid(t, newPid, 15*time.Second); !ws.Exited() || ws.ExitStatus() != 0 {
			t.Errorf("new process: %v", ws)
		}
	}()
	f.waitLine(t, `restart: the new process serves`, 1, 30*time.Second)
	select {
	case <-f.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("old process still running 20s after the restart:\n%s", f.log.String())
	}
	if f.err != nil {
		t.Fatalf("old process: %v\n%s", f.err, f.log.String())
	}
	atExit, _ := ld.counts()
	time.Sleep(time.Second)
	close(stop)
	stopped = true
	ld.wg.Wait()
	ok, failed := ld.counts()
	t.Logf("requests ok before SIGUSR2 %v, by the old process's exit %v, in all %v; failed %v", before, atExit, ok, failed)
	if failed != [3]int64{} {
		t.Errorf("failed requests %v:\n%s", failed, ld.errs.String())
	}
	for k := range ok {
		if before[k] == 0 || ok[k] <= atExit[k] {
			t.Errorf("%s: no requests before the restart or after the old process left (%d, %d, %d)", loadKinds[k], before[k], atExit[k], ok[k])
		}
	}
	log := f.log.String()
	for _, s := range []string{"restart: starting the new process", "listener: inherited sockets", "phase=Done", "forced=false"} {
		if !strings.Contains(log, s) {
			t.Errorf("no %q in the log:\n%s", s, log)
		}
	}
	// The admin socket went over too.
	if code := httpStatus("http://" + admin + "/readyz"); code != 200 {
		t.Errorf("/readyz of the new process: %d", code)
	}
}

// A new process that cannot start (here: the key file is gone) leaves the
// old one serving, says why, and counts it.
func TestRestartFailureKeepsServing(t *testing.T) {
	subreaper(t)
	dir := t.TempDir()
	certs := testutil.WriteCerts(t, dir)
	up := httpBackend(t)
	addr, admin := testutil.FreePort(t), testutil.FreePort(t)
	f := startFamily(t, nil, nil, binPath, "-listen", addr, "-admin", admin, "-loops", "2", "-upstream", "http://"+up,
		"-cert", certs.Cert, "-key", certs.Key)
	f.waitLine(t, `sluice serving" pid=`, 1, 15*time.Second)
	if err := os.Remove(certs.Key); err != nil {
		t.Fatal(err)
	}
	f.cmd.Process.Signal(syscall.SIGUSR2)
	m := f.waitLine(t, `restart failed: still serving.*exited before serving: (exit status \d+)`, 1, 30*time.Second)
	if m[1] != "exit status 2" {
		t.Errorf("new process: %s", m[1])
	}
	c := insecureClient()
	for i := 0; i < 20; i++ {
		c.Transport.(*http.Transport).DisableKeepAlives = true
		if err := fetch(c, "https://"+addr+"/bytes?n=100000", 100000, false); err != nil {
			t.Fatalf("after the failed restart: %v\n%s", err, f.log.String())
		}
	}
	p := &proc{admin: admin}
	if v := adminMetric(t, p, `sluice_restarts_total{result="failed"}`); v != "1" {
		t.Errorf(`sluice_restarts_total{result="failed"} %q`, v)
	}
	if v := adminMetric(t, p, `sluice_restarts_total{result="ok"}`); v != "0" {
		t.Errorf(`sluice_restarts_total{result="ok"} %q`, v)
	}
	f.cmd.Process.Signal(syscall.SIGTERM)
	<-f.done
	if f.err != nil {
		t.Fatalf("exit: %v\n%s", f.err, f.log.String())
	}
}

// systemd socket activation: LISTEN_FDS/LISTEN_PID hand sluice a socket
// it matches to -listen by address. The socket outlives the process (here
// the test holds it, as systemd does): a connection made while no sluice
// runs waits in the queue and the next sluice serves it.
func TestListenFDsSocketActivation(t *testing.T) {
	up := httpBackend(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	addr := ln.Addr().String()
	// LISTEN_PID must be the pid of sluice itself: sh execs it in place.
	start := func(listen string) *family {
		return startFamily(t, []*os.File{lf}, []string{"LISTEN_FDS=1"}, "/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`,
			binPath, "-listen", listen, "-admin", "", "-loops", "2", "-upstream", "http://"+up)
	}
	f := start(addr)
	f.waitLine(t, `sluice serving" pid=`, 1, 15*time.Second)
	if !strings.Contains(f.log.String(), `msg="listener: inherited sockets" listener=main sockets=1`) {
		t.Errorf("no inherited socket logged:\n%s", f.log.String())
	}
	c := insecureClient()
	c.Transport.(*http.Transport).DisableKeepAlives = true
	if err := fetch(c, "https://"+addr+"/bytes?n=50000", 50000, false); err != nil {
		t.Fatalf("%v\n%s", err, f.log.String())
	}
	f.cmd.Process.Signal(syscall.SIGTERM)
	<-f.done
	if f.err != nil {
		t.Fatalf("exit: %v\n%s", f.err, f.log.String())
	}
	// No sluice now; the request waits in the socket's queue.
	res := make(chan error, 1)
	go func() { res <- fetch(c, "https://"+addr+"/bytes?n=50000", 50000, false) }()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-res:
		t.Fatalf("answered with no sluice running: %v", err)
	default:
	}
	g := start(addr)
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("queued request: %v\n%s", err, g.log.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("queued request not served by the next sluice:\n%s", g.log.String())
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	<-g.done

	// A socket that matches no listener: one line naming it, exit 2.
	h := start("127.0.0.1:1")
	<-h.done
	var ee *exec.ExitError
	if !errors.As(h.err, &ee) || ee.ExitCode() != 2 || !strings.Contains(h.log.String(), "LISTEN_FDS: fd 3 ("+addr+") matches neither -listen") {
		t.Errorf("mismatched socket: %v\n%s", h.err, h.log.String())
	}
}

// A SIGTERM while a SIGUSR2 restart waits for its new process cancels the
// restart at once: the new process (here a stand-in that never says
// ready) is sent SIGTERM and this one drains and exits, instead of
// waiting up to 30 s for a successor that may never serve.
func TestSIGTERMCancelsAPendingRestart(t *testing.T) {
	subreaper(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "sluice")
	data, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	up := httpBackend(t)
	addr := testutil.FreePort(t)
	f := startFamily(t, nil, nil, bin, "-listen", addr, "-admin", "", "-loops", "1", "-upstream", "http://"+up)
	f.waitLine(t, `sluice serving" pid=`, 1, 15*time.Second)
	// The restart re-executes os.Executable, i.e. this path: a process
	// that starts and never serves.
	stub := filepath.Join(dir, "stub")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(stub, bin); err != nil {
		t.Fatal(err)
	}
	f.cmd.Process.Signal(syscall.SIGUSR2)
	f.waitLine(t, `restart: starting the new process`, 1, 10*time.Second)
	time.Sleep(100 * time.Millisecond) // the stand-in is running
	sent := time.Now()
	f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit %v after SIGTERM (the restart wait is 30 s):\n%s", time.Since(sent), f.log.String())
	}
	if f.err != nil {
		t.Fatalf("exit: %v\n%s", f.err, f.log.String())
	}
	m := f.waitLine(t, `restart cancelled: draining" pid=(\d+) signal=terminated`, 1, time.Second)
	f.waitLine(t, `sluice stopped`, 1, time.Second)
	pid, _ := strconv.Atoi(m[1])
	// The stand-in got SIGTERM: it is gone (reaped by its parent, or by
	// this test as subreaper once the parent exited).
	gone := false
	for end := time.Now().Add(5 * time.Second); !gone && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		var ws unix.WaitStatus
		if p, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); p == pid || err == unix.ECHILD {
			gone = unix.Kill(pid, 0) == unix.ESRCH
		}
	}
	if !gone {
		stopPid(t, pid, time.Second)
		t.Fatalf("the new process %d was not stopped", pid)
	}
}
