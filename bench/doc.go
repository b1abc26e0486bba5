// Package bench is sluice's load generator, the logic behind
// cmd/sluice-bench, and the home of its comparison benchmarks.
//
// What it owns: HTTP/1.1 (sluice's own httpcodec/h1) and HTTP/2 (the
// client role of httpcodec/h2) clients over TLS or cleartext; the modes
// rate (closed loop, or an open loop whose latency counts queueing), hold,
// handshake, drain and slowread; the accounting — HDR-histogram latency,
// errors by kind, lost/truncated/unprocessed responses, the target's CPU
// and RSS from /proc — and the table and JSON reports.
//
// Threading: one goroutine per HTTP/1.1 connection; per HTTP/2 connection
// a reader goroutine that feeds the codec and the worker that opens
// streams, both under the connection's mutex. Workers keep their own
// tallies, merged once at the end; live atomic counters feed the progress
// line, so one Run at a time per process.
//
// Limits: one process holds at most RLIMIT_NOFILE's hard limit of
// connections (raised to it; a clear error names it when -c needs more)
// and at most 254 loopback source addresses' worth of ephemeral ports.
// CPU figures from /proc have the kernel's 10 ms tick resolution.
//
// The comparison benchmarks (test files) run sluice and a baseline side
// by side in one run and report the ratio (see shared/BENCHMARKING.md):
//
//	go test -run '^$' -bench . -benchtime 5x ./bench/
package bench
