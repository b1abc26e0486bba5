// Package diag is the diagnostics vocabulary of sluice: the names of a
// connection's lifecycle states and outcomes, the trace that records one
// connection's life, the ring of recent traces, the JSON snapshot types of
// /debug/connections and /debug/shutdowns, and the metric families named
// by that vocabulary (metrics.go: connections by state, closes by outcome,
// time in each state, lifetimes, close sequences, aborts) with the shared
// histogram buckets; the engine's own mechanisms (admission, TLS, dials)
// keep their families in engine. It also holds what shows them: the admin
// server (admin.go: /metrics, /healthz, /readyz, /debug/connections,
// /debug/shutdowns, pprof), the HELP text of every metric family
// (metrichelp.go, one table so each family is described once), and the
// buffered writer of the access log stream (logwriter.go).
//
// # What lives here and what does not
//
// diag holds names and records; engine holds the behaviour. The state
// machine's transitions, the deadlines and the close sequence stay in
// engine, which owns the sockets and the clock: a transition is engine
// code that stamps a diag.Trace. Putting the vocabulary here lets the
// readers of those records (shutdown's tests, proxy, the admin server,
// cmd) name states and outcomes without reaching into engine, and keeps
// one list of each. diag imports no sluice package: engine → diag. The
// admin server reads connections through Source (engine.Engine implements
// it) and the drain's status through a function; cmd wires them.
//
// # Threading model
//
// The types are plain values. A Trace and a Ring belong to the event loop
// that records them (no locks); snapshots are copies made on the loops and
// handed to other goroutines. The admin server runs on net/http's
// goroutines (it is off the data path) and reaches the loops only through
// Source, whose methods post a task to each loop. ConnMetrics' methods
// are atomic updates, called on the loops. A LogWriter is shared by every
// loop that logs: lines are appended under a short lock, and one flush at a
// time writes a full buffer under a lock of its own, from the caller that
// filled it or the interval goroutine.
//
// # Limits
//
// A Ring keeps a fixed number of traces (engine keeps 64 per loop); older
// ones are overwritten. An admin request waits at most 2 s for the loops;
// a loop that does not answer is left out and the response says so in
// X-Sluice-Partial. A LogWriter holds two buffers of its size; a line
// longer than that is written alone, and a stuck stream stalls the loops
// that log only once both buffers are full.
package diag
