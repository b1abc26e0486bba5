// Package diag is the diagnostics vocabulary of sluice: the names of a
// connection's lifecycle states and outcomes, the trace that records one
// connection's life, the ring of recent traces, the JSON snapshot types of
// /debug/connections and /debug/shutdowns.
//
// # What lives here and what does not
//
// diag holds names and records; engine holds the behaviour. The state
// machine's transitions, the deadlines and the close sequence stay in
// engine, which owns the sockets and the clock: a transition is engine
// code that stamps a diag.Trace. Putting the vocabulary here lets the
// readers of those records (shutdown's tests, proxy, the admin server,
// cmd) name states and outcomes without reaching into engine, and keeps
// one list of each. diag imports no sluice package: engine → diag.
//
// # Threading model
//
// The types are plain values. A Trace and a Ring belong to the event loop
// that records them (no locks); snapshots are copies made on the loops and
// handed to other goroutines.
//
// # Limits
//
// A Ring keeps a fixed number of traces (engine keeps 64 per loop); older
// ones are overwritten.
package diag
