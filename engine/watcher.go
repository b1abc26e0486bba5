package engine

import (
	"context"
	"os"
	"sync"
	"syscall"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// watcher is the one goroutine each loop has besides gnet's own. gnet calls
// nothing when a socket becomes writable and has no per-loop timers, so the
// watcher waits in its own epoll instance on:
//
//   - a timerfd armed (by the loop, with one syscall) at the loop's earliest deadline;
//   - the sockets whose output is blocked, registered EPOLLOUT|EPOLLONESHOT;
//   - an eventfd used only to stop it.
//
// It never touches connection state: it collects what fired and posts one
// task to the loop (gnet's Execute), which does the work. At most one task is
// outstanding, so a slow loop cannot be flooded.
type watcher struct {
	epfd, tfd, efd int
	// epf wraps epfd for the Go runtime's netpoller: the watcher parks in
	// it instead of blocking in epoll_wait, so it never holds a P while
	// idle (a goroutine blocked in a raw syscall keeps its P until sysmon
	// takes it back, starving TLS handshake goroutines on a busy machine).
	epf *os.File
	rc  syscall.RawConn

	mu     sync.Mutex
	ready  []uint64 // tokens (conn ids) whose socket became writable
	spare  []uint64
	tick   bool
	posted bool

	done chan struct{}
}

// Reserved epoll tokens; connection ids start above them.
const (
	tokTimer uint64 = 1
	tokStop  uint64 = 2
	firstID  uint64 = 16
)

func newWatcher() (*watcher, error) {
	w := &watcher{epfd: -1, tfd: -1, efd: -1, done: make(chan struct{})}
	var err error
	if w.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if w.tfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC); err != nil {
		w.close()
		return nil, os.NewSyscallError("timerfd_create", err)
	}
	if w.efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		w.close()
		return nil, os.NewSyscallError("eventfd", err)
	}
	if err = w.ctl(unix.EPOLL_CTL_ADD, w.tfd, unix.EPOLLIN, tokTimer); err != nil {
		w.close()
		return nil, err
	}
	if err = w.ctl(unix.EPOLL_CTL_ADD, w.efd, unix.EPOLLIN, tokStop); err != nil {
		w.close()
		return nil, err
	}
	// An epoll fd is pollable: readable while it has ready events.
	if err = unix.SetNonblock(w.epfd, true); err != nil {
		w.close()
		return nil, os.NewSyscallError("fcntl", err)
	}
	w.epf = os.NewFile(uintptr(w.epfd), "sluice-watcher-epoll")
	if w.rc, err = w.epf.SyscallConn(); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *watcher) ctl(op, fd int, events uint32, tok uint64) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(uint32(tok)), Pad: int32(uint32(tok >> 32))}
	return os.NewSyscallError("epoll_ctl", unix.EpollCtl(w.epfd, op, fd, &ev))
}

// watchWritable asks for one notification when fd can take more bytes.
// registered says whether fd is already in the set (disarmed by ONESHOT).
func (w *watcher) watchWritable(fd int, tok uint64, registered bool) error {
	op := unix.EPOLL_CTL_ADD
	if registered {
		op = unix.EPOLL_CTL_MOD
	}
	return w.ctl(op, fd, unix.EPOLLOUT|unix.EPOLLONESHOT, tok)
}

func (w *watcher) forget(fd int) {
	_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// arm sets the timerfd to fire at the absolute engine-clock time when.
func (w *watcher) arm(when int64) {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(when)}
	if when <= 0 {
		spec.Value = unix.Timespec{Nsec: 1}
	}
	_ = unix.TimerfdSettime(w.tfd, unix.TFD_TIMER_ABSTIME, &spec, nil)
}

func (w *watcher) run(el gnet.EventLoop, task gnet.Runnable) {
	defer close(w.done)
	events := make([]unix.EpollEvent, 256)
	var buf [8]byte
	for {
		var n int
		var werr error
		err := w.rc.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), events, 0)
			if werr == unix.EINTR {
				return false
			}
			return n != 0 || werr != nil // n == 0: park in the netpoller
		})
		if err != nil || werr != nil {
			return
		}
		stop := false
		w.mu.Lock()
		for i := range events[:n] {
			tok := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			switch tok {
			case tokTimer:
				_, _ = unix.Read(w.tfd, buf[:])
				w.tick = true
			case tokStop:
				stop = true
			default:
				w.ready = append(w.ready, tok)
			}
		}
		post := !w.posted && (w.tick || len(w.ready) > 0)
		if post {
			w.posted = true
		}
		w.mu.Unlock()
		if stop {
			return
		}
		if post {
			if err := el.Execute(context.Background(), task); err != nil {
				return // the gnet engine is shutting down
			}
		}
	}
}

// take hands the collected events to the loop and lets the next batch post.
func (w *watcher) take() (ready []uint64, tick bool) {
	w.mu.Lock()
	ready, w.ready = w.ready, w.spare[:0]
	w.spare = nil
	tick, w.tick = w.tick, false
	w.posted = false
	w.mu.Unlock()
	return ready, tick
}

func (w *watcher) giveBack(ready []uint64) {
	w.mu.Lock()
	if w.spare == nil {
		w.spare = ready[:0]
	}
	w.mu.Unlock()
}

func (w *watcher) stop() {
	var one = [8]byte{1}
	_, _ = unix.Write(w.efd, one[:])
}

func (w *watcher) close() {
	if w.epf != nil {
		_ = w.epf.Close() // closes epfd
		w.epfd = -1
	}
	for _, fd := range []int{w.epfd, w.tfd, w.efd} {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
	}
}
