// Package shutdown is the process drain on SIGTERM/SIGINT: readiness off,
// stop accepting, ask every connection to finish (each then runs the
// engine's graceful close: flush, close_notify, shutdown(SHUT_WR), linger,
// close), wait for none to be left, and abort what remains at the drain
// deadline or on a second signal. The per-connection close sequence itself
// lives in package engine, which owns the sockets.
//
// Threading: Drain runs on the caller's goroutine and reaches the loops
// only through engine methods that post to them.
package shutdown
