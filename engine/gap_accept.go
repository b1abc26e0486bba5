package engine

import "golang.org/x/sys/unix"

// gnet gap: no way to stop accepting without stopping the engine, which
// closes every connection at once and drops their output.
//
// The engine runs gnet with SO_REUSEPORT, so every loop owns one listening
// socket per address. To stop accepting, each loop removes its listening fds
// from its own epoll set, then shuts them down for reading: Linux then resets
// connections still in the accept queue and refuses new ones, so clients
// fail over at once instead of waiting on a backlog nobody reads. gnet closes
// the fds itself when the engine stops.
//
// After HandOff a successor process accepts on the very same sockets (they
// are shared, not copies), and shutdown(SHUT_RD) would break them for it:
// the loop then only stops polling them.

func (l *Loop) stopAccepting() {
	for _, fd := range l.lnFDs {
		_ = l.poller.Delete(fd)
		if !l.e.handoff.Load() {
			_ = unix.Shutdown(fd, unix.SHUT_RD)
		}
	}
}
