// Package shutdown is the process drain on SIGTERM/SIGINT, as a state
// machine (phase.go): Serving → NotReady (readiness off, still accepting
// and serving for the lame-duck delay) → StopAccepting → Draining (every
// connection asked to finish; each then runs the engine's graceful close:
// flush, close_notify, shutdown(SHUT_WR), linger, close) → Forcing (the
// deadline or a second signal: the rest are aborted) → Done. Each phase
// has a timestamp, a log line, the sluice_drain_phase gauge and a
// duration. The per-connection close sequence itself lives in package
// engine, which owns the sockets.
//
// Threading: Coordinator.Run runs on the caller's goroutine and reaches
// the connections only through a Drainer, whose methods (the engine's) post
// to the loops. Phase, Status and the metric callbacks may be read from
// any goroutine (a mutex guards the phase and its timestamps).
//
// After a restart (RunHandoff) the lame-duck delay is skipped: the
// successor already serves the same sockets.
//
// Limits: one drain per process (Run runs once); ForceClose is given 5 s,
// after which the caller stops the engine regardless.
package shutdown
