package bench

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clkTck is sysconf(_SC_CLK_TCK): 100 on every Linux architecture Go
// supports (the kernel's USER_HZ).
const clkTck = 100

// ProcSample is one reading of a process tree from /proc.
type ProcSample struct {
	CPU   time.Duration // utime+stime, summed over the tree
	RSS   int64         // VmRSS bytes, summed over the tree
	Procs int           // processes read
}

// ErrNoProcess is returned when the target's /proc entry is gone, or it
// is a zombie: it has exited.
var ErrNoProcess = errors.New("process has exited")

// ReadProc reads pid and its descendants (nginx's workers, HAProxy's
// master-worker). A zombie counts as exited.
func ReadProc(pid int) (ProcSample, error) {
	var s ProcSample
	seen := map[int]bool{}
	var walk func(p int, top bool) error
	walk = func(p int, top bool) error {
		if seen[p] || len(seen) > 1024 {
			return nil
		}
		seen[p] = true
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			if top {
				return ErrNoProcess
			}
			return nil
		}
		state, cpu, err := parseStat(b)
		if err != nil {
			return err
		}
		if state == 'Z' || state == 'X' {
			if top {
				return ErrNoProcess
			}
			return nil
		}
		s.CPU += cpu
		s.Procs++
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p)); err == nil {
			s.RSS += parseVmRSS(st)
		}
		for _, c := range children(p) {
			if err := walk(c, false); err != nil {
				return err
			}
		}
		return nil
	}
	return s, walk(pid, true)
}

// parseStat returns the state and utime+stime from /proc/PID/stat. The
// command name is in parentheses and may hold spaces or parentheses, so
// fields are counted after the last ')'.
func parseStat(b []byte) (state byte, cpu time.Duration, err error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 || len(f[0]) != 1 {
		return 0, 0, errors.New("/proc stat: too few fields")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, errors.New("/proc stat: bad utime or stime")
	}
	return f[0][0], time.Duration(ut+st) * time.Second / clkTck, nil
}

// parseVmRSS returns VmRSS in bytes from /proc/PID/status (0 if absent,
// as for kernel threads).
func parseVmRSS(b []byte) int64 {
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				if len(f) >= 2 && f[1] != "kB" {
					return 0
				}
				return kb << 10
			}
		}
	}
	return 0
}

// children lists the child processes of every thread of pid.
func children(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// alive says whether pid still runs (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	state, _, err := parseStat(b)
	return err == nil && state != 'Z' && state != 'X'
}

// openFileLimit reads the soft "Max open files" of pid (0 if unknown).
func openFileLimit(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
	}
	return 0
}

// signal sends sig to pid.
func sendSignal(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }
