// Package engine runs sluice's connections on gnet event loops and is the
// only package that imports gnet.
//
// # What it owns
//
// Sockets, time and the end of every connection: accepting, reading with a
// pause for backpressure, an explicit output buffer per connection, write
// readiness, per-loop deadlines, upstream dialing onto a given loop, and the
// graceful close sequence (flush → TLS close_notify → shutdown(SHUT_WR) →
// linger → close) with a state, a timestamp, a log line and a metric for each
// step (the states', outcomes' and traces' names and records are package
// diag's; the transitions are here). Layers above (TLS, HTTP, the TCP
// relay) implement Handler. TLS is
// the engine's own on both sides: listeners with a tlsio.Server (tls.go)
// and Loop.DialTLS with a tlsio.Client (dial.go). A listener may require
// a PROXY protocol header before anything else (proxyproto.go waits for
// it; httpcodec/proxyproto parses it). Admission
// (admission.go) keeps clients that have proven nothing from holding
// capacity: a silent connection holds no handshake slot, has a first-byte
// deadline and is evicted first at MaxConns; at MaxHandshakes the
// handshake longest without progress gives up its slot (parked while its
// ClientHello is incomplete, else reset).
//
// # Threading model
//
// A connection belongs to one loop for its whole life. Every Conn method and
// every Handler callback runs on that loop, so connection state needs no
// locks; fields are commented with their owner. Other goroutines reach a loop
// only through Loop.Post (gnet's Execute). Two loop-level hooks serve the
// layers above: Loop.AfterBatch runs work once the loop's current batch of
// events is done (HTTP/2 output of many reads leaves in one write), and
// Loop.OnDrain runs once per loop when the process drain reaches it,
// before any connection's OnDrain (pools drained once per loop; Draining
// is the loop's one drain flag). Each loop has exactly one helper
// goroutine, its watcher (watcher.go), which blocks in epoll_wait on a
// timerfd (the loop's earliest deadline) and on sockets waiting to become
// writable, and posts what fired to the loop; it never touches connection
// state. An engine with a native-engine TLS listener also runs a sign pool (signpool.go):
// one worker per CPU that computes native TLS 1.3 handshakes' signatures
// and wakes the loop through Post. Metrics gauges read per-loop atomics;
// the admin snapshot runs as a task on each loop.
//
// # gnet v2.9.7 gaps and where each workaround lives
//
//   - Close() discards pending output, and there is no drained callback:
//     gap_output.go (gnet's write path is never used).
//   - No read pause: gap_pause.go (the fd leaves the loop's epoll set).
//   - A peer FIN is a full close: gap_fin.go (the fd is duplicated and kept).
//   - No way to stop accepting: gap_accept.go.
//   - No way to serve an inherited listening socket (restart, systemd):
//     inherit.go (one accept goroutine per socket, connections Enrolled on
//     the loops in turn; HandOff stops polling without breaking the socket).
//   - No list of loops, no per-loop timers: probe.go, watcher.go.
//   - Private state reached by reflection, checked at start-up: gnetpriv.go.
//
// Each has a test in gnet_pins_test.go that fails if a gnet upgrade changes
// the behaviour relied on.
//
// # Limits
//
// Output buffers are bounded by the caller through HighWater/NotifyWritable
// and by WriteTimeout, whose progress is what the peer ACKs (the kernel
// send queue shrinking, looked at every WriteTimeout/16 while output
// waits), so a reader behind a receive buffer of B bytes at R bytes/s
// needs WriteTimeout above B/R; the linger likewise waits while the peer
// still reads what the kernel holds (close.go lingerWaits); input is bounded by PauseRead (at most one read,
// ReadBufferSize, is held per paused connection). MaxConns caps connections
// and MaxHandshakes TLS handshakes; either may be exceeded for a moment by
// at most 64 evictions posted to other loops.
// Linux only (epoll, timerfd, SIOCOUTQ).
package engine
