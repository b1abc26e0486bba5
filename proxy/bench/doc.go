// Package bench compares sluice's HTTP/1.1 proxy path with nginx as a
// reverse proxy, in the same run, on the same backend (nginx serving 1 KiB
// responses) and the same load (wrk, or a Go load generator when wrk is
// missing, 50 keep-alive connections). Targets alternate round by round
// and the ratio's median and range are reported, because the machine is
// shared (see shared/BENCHMARKING.md). Run:
//
//	go test -run '^$' -bench . -benchtime 1x ./proxy/bench/
//
// Each round runs both targets, the order swapping every round; keep the
// number of rounds even so each goes first equally often (on this machine
// the first run of a round was seen to be favoured).
//
// Knobs (environment): SLUICE_BENCH_ROUNDS (default 6), SLUICE_BENCH_SECONDS
// per run (default 3), SLUICE_BENCH_WORKERS, the loops of sluice and the
// worker processes of the nginx proxy (default 1), SLUICE_BENCH_LOADGEN=go
// to use the Go load generator even when wrk is installed.
//
// The benchmark skips when nginx is not installed (Debian: apt-get install
// nginx wrk). Sub-benchmarks: cleartext, and tls (the client side on TLS
// 1.2/1.3 with a self-signed pair for both proxies; the backend stays
// cleartext). wrk resumes nothing here: its 50 connections are opened once
// and kept alive, so the TLS figures are record encryption, not handshakes.
//
// The package has no non-test code besides this comment.
package bench
