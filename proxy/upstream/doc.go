// Package upstream owns what sluice knows about its origin servers: the
// state of each one (Upstream: address, TLS client, load, health, the
// in-use cap's counters), the balancing policies that pick one for a
// request (Selector: RoundRobin, LeastConn, PowerOfTwo; Set applies a
// route's weights, built once per route), passive health (Passive: eject
// after consecutive failures, half-open re-admission) and active health
// checks (Checker: one per upstream, probing with HTTP/1.1 or, for an
// h2c/h2 upstream, HTTP/2). Routes, configuration and the request's
// exchange stay in package proxy, which passes in what this package needs.
//
// # Threading model
//
// An Upstream is shared by every loop and every route naming it: its
// counters are atomics, the rest is set before it is published. Selectors
// are shared too and must not block. A Checker and its probe connections
// run on one engine loop, with a loop timer: no goroutine of their own.
//
// # Limits
//
// A probe is one request on a fresh connection, judged by the status of
// the response head alone (below 400 passes) within CheckConfig.Timeout;
// the body is never read. Weights are 1 to 100 (proxy checks them): a
// route's Set holds each upstream once per unit of weight.
package upstream
