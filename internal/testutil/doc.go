// Package testutil holds the test helpers every package's tests share,
// written once: loopback ports never handed out twice, accept-loop
// backends, TLS fixtures (a tlsio self-signed pair, a CA with a leaf),
// building the sluice binary with the test's own tags, child processes
// whose output lines are kept and watched, external tool lookup, a locked
// log buffer, a writer keeping each Write (Writes) and a hand-driven
// HTTP/2 client on x/net's Framer.
//
// Threading: a Proc's output is read by one goroutine per stream; Serve
// runs one goroutine per connection; Proc, Buffer and Writes methods are safe
// from any goroutine, an H2Conn belongs to one. Limits: loopback only;
// every process started is killed, and every listener and connection
// Serve accepted is closed, in t.Cleanup.
package testutil
