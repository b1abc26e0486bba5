// Package proxy is what sluice does with a connection once the engine has
// it: the layer-4 relay (tcp mode), and the admin listener (metrics, health,
// readiness, /debug/connections, pprof). HTTP routing, upstream pools, load
// balancing and header rewriting arrive with the HTTP issues.
//
// # Threading model
//
// Relay state is loop-owned: a client connection and the upstream connection
// serving it live on the same engine loop, so forwarding is a function call
// and needs no locks. The admin server runs on net/http's goroutines and
// reads engine state only through Engine.Snapshot (a task on each loop) and
// metrics (atomics read at scrape time).
package proxy
