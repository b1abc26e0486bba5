package main

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sys/unix"

	"github.com/sluice-proxy/sluice/engine"
)

// Restarts (SIGUSR2) and systemd socket activation.
//
// The successor is a child: the listening sockets pass as inherited fds
// from 3 (named, in order, by SLUICE_LISTEN_FDS="main,main,plain,admin"),
// and a pipe at SLUICE_READY_FD is where it writes "ready" once it
// serves. Inheritance at exec hands the sockets over atomically with no
// protocol to get wrong; fd passing over a Unix socket (SCM_RIGHTS) is only
// needed by a process that is not our child, which sluice never starts.
// systemd uses the same fds-from-3 convention (LISTEN_FDS, LISTEN_PID);
// those are matched to -listen / -listen-plain by address.

const (
	envListenFDs = "SLUICE_LISTEN_FDS"
	envReadyFD   = "SLUICE_READY_FD"
	// restartWait bounds how long the old process waits for the new one to
	// serve before it kills it and keeps serving.
	restartWait = 30 * time.Second
	firstFD     = 3
)

// inherited is the sockets handed to this process, by listener name
// ("main", "plain", "admin").
type inherited map[string][]int

// takeInherited reads (and clears) the environment of a restart or of
// systemd socket activation. An fd that matches no listener is an error.
func takeInherited(cfg *config) (inherited, error) {
	defer func() {
		for _, k := range []string{envListenFDs, "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} {
			os.Unsetenv(k)
		}
	}()
	out := inherited{}
	if names := os.Getenv(envListenFDs); names != "" {
		for i, n := range strings.Split(names, ",") {
			out[n] = append(out[n], firstFD+i)
		}
		return out, nil
	}
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("LISTEN_FDS=%q: not a count of sockets", os.Getenv("LISTEN_FDS"))
	}
	for fd := firstFD; fd < firstFD+n; fd++ {
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return nil, fmt.Errorf("LISTEN_FDS: fd %d: %v", fd, err)
		}
		name := ""
		for _, c := range []struct{ name, flag string }{{"main", cfg.listen}, {"plain", cfg.listenPlain}} {
			if c.flag != "" && flagNames(c.flag, sa) {
				name = c.name
				break
			}
		}
		if name == "" {
			return nil, fmt.Errorf("LISTEN_FDS: fd %d (%s) matches neither -listen %q nor -listen-plain %q", fd, sockString(sa), cfg.listen, cfg.listenPlain)
		}
		unix.CloseOnExec(fd)
		out[name] = append(out[name], fd)
	}
	return out, nil
}

// closeUnused closes inherited sockets no listener takes (a restart into a
// configuration without -listen-plain, say): held open and never
// accepted, they would leave their clients waiting.
func (inh inherited) closeUnused(admin bool, log *slog.Logger) {
	for name, fds := range inh {
		if name == "admin" && admin {
			continue
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		delete(inh, name)
		log.Warn("inherited sockets closed: no such listener now", "listener", name, "sockets", len(fds))
	}
}

// flagNames reports whether a listen flag (host:port) names socket address
// sa: the same port, and the same IP unless the flag's host is empty.
func flagNames(flag string, sa unix.Sockaddr) bool {
	host, port, err := net.SplitHostPort(flag)
	if err != nil {
		return false
	}
	var ip net.IP
	var p int
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		ip, p = net.IP(a.Addr[:]), a.Port
	case *unix.SockaddrInet6:
		ip, p = net.IP(a.Addr[:]), a.Port
	default:
		return false
	}
	if strconv.Itoa(p) != port {
		return false
	}
	if host == "" {
		return true
	}
	want := net.ParseIP(host)
	return want != nil && want.Equal(ip)
}

func sockString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *unix.SockaddrInet6:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *unix.SockaddrUnix:
		return a.Name
	}
	return "?"
}

// adminListener turns an inherited admin socket into a listener.
func adminListener(fd int) (net.Listener, error) {
	f := os.NewFile(uintptr(fd), "admin")
	defer f.Close()
	return net.FileListener(f)
}

// signalReady tells a restarting predecessor that this process serves.
func signalReady(log *slog.Logger) {
	s := os.Getenv(envReadyFD)
	if s == "" {
		return
	}
	os.Unsetenv(envReadyFD)
	fd, err := strconv.Atoi(s)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	if _, err := f.WriteString("ready\n"); err != nil {
		log.Warn("restart: cannot tell the old process we serve", "err", err)
	}
	f.Close()
}

type restartMetrics struct{ ok, failed *metrics.Counter }

func newRestartMetrics(set *metrics.Set) restartMetrics {
	return restartMetrics{
		ok:     set.NewCounter(`sluice_restarts_total{result="ok"}`),
		failed: set.NewCounter(`sluice_restarts_total{result="failed"}`),
	}
}

// errRestartCancelled: a SIGTERM/SIGINT came while the new process was
// starting. It was sent SIGTERM (it drains what it may have accepted) and
// this process drains at once instead of waiting for it.
type errRestartCancelled struct{ sig os.Signal }

func (e errRestartCancelled) Error() string {
	return "cancelled by " + e.sig.String() + ": the new process was told to stop"
}

// startSuccessor starts a new sluice with the same arguments and
// environment, handing it every listening socket, and returns once it
// serves. On an error the new process is gone (or, cancelled by a signal
// on stop, stopping) and this one is unchanged.
func startSuccessor(args []string, eng *engine.Engine, admin net.Listener, log *slog.Logger, stop <-chan os.Signal) (int, error) {
	fds, err := eng.ListenerFDs()
	if err != nil {
		return 0, fmt.Errorf("listening sockets: %w", err)
	}
	defer func() {
		for _, l := range fds {
			unix.Close(l.FD)
		}
	}()
	if admin != nil {
		tl, ok := admin.(*net.TCPListener)
		if !ok {
			return 0, errors.New("admin listener is not TCP")
		}
		rc, err := tl.SyscallConn()
		if err != nil {
			return 0, err
		}
		var d int
		var derr error
		if err := rc.Control(func(fd uintptr) { d, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || derr != nil {
			return 0, fmt.Errorf("admin socket: %v", errors.Join(err, derr))
		}
		fds = append(fds, engine.ListenerFD{Name: "admin", FD: d})
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	// Raw fds, not *os.File: File.Fd would put the shared sockets in
	// blocking mode, under gnet's accept loop.
	files := []uintptr{0, 1, 2}
	names := make([]string, len(fds))
	for i, l := range fds {
		files = append(files, uintptr(l.FD))
		names[i] = l.Name
	}
	rc, err := w.SyscallConn()
	if err != nil {
		w.Close()
		return 0, err
	}
	_ = rc.Control(func(fd uintptr) { files = append(files, fd) })
	env := []string{envListenFDs + "=" + strings.Join(names, ","), envReadyFD + "=" + strconv.Itoa(len(files)-1)}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case envListenFDs, envReadyFD, "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES":
			continue
		}
		env = append(env, kv)
	}
	log.Info("restart: starting the new process", "exe", exe, "sockets", len(fds))
	pid, err := syscall.ForkExec(exe, append([]string{os.Args[0]}, args...), &syscall.ProcAttr{Env: env, Files: files})
	w.Close()
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", exe, err)
	}
	proc, _ := os.FindProcess(pid)
	exited := make(chan string, 1)
	go func() {
		st, err := proc.Wait()
		if err != nil {
			exited <- err.Error()
			return
		}
		exited <- st.String()
	}()
	line := make(chan error, 1)
	go func() {
		s, err := bufio.NewReader(r).ReadString('\n')
		if err == nil && s != "ready\n" {
			err = fmt.Errorf("said %q", s)
		}
		line <- err
	}()
	timer := time.NewTimer(restartWait)
	defer timer.Stop()
	select {
	case err := <-line:
		if err == nil {
			return pid, nil
		}
		// EOF: it exited (or closed the pipe) without serving.
		select {
		case st := <-exited:
			return pid, fmt.Errorf("new process %d exited before serving: %s", pid, st)
		case <-time.After(5 * time.Second):
			_ = proc.Kill()
			return pid, fmt.Errorf("new process %d closed its readiness pipe without serving (%v): killed", pid, err)
		}
	case st := <-exited:
		return pid, fmt.Errorf("new process %d exited before serving: %s", pid, st)
	case sig := <-stop:
		_ = proc.Signal(syscall.SIGTERM)
		return pid, errRestartCancelled{sig}
	case <-timer.C:
		_ = proc.Kill()
		<-exited
		return pid, fmt.Errorf("new process %d not serving after %s: killed", pid, restartWait)
	}
}
