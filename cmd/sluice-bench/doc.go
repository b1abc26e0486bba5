// Command sluice-bench is sluice's load tool: HTTP/1.1 and HTTP/2, over
// TLS or cleartext, in five modes — rate (closed or open loop), hold (idle
// keep-alive connections and the target's RSS per connection), handshake
// (full TLS handshakes per second, resumption checked off), drain (SIGTERM
// under load, lost and truncated responses counted) and slowread. It
// reports req/s, HDR-histogram latency percentiles, errors by kind and the
// target's CPU and RSS from /proc; -json prints the same as JSON.
//
//	go run ./cmd/sluice-bench -h
//	go run ./cmd/sluice-bench -url https://127.0.0.1:8443/ -k -h2 -c 50 -m 10 -n 20000 -pid $(pidof sluice)
//
// The logic lives in package bench; this file only calls bench.Main.
// Limits: one process holds at most RLIMIT_NOFILE's hard limit of
// connections (it says so when -c needs more).
package main
