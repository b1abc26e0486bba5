// Command load is sluice's load generator: keep-alive HTTP/1.1 (over TLS or
// cleartext) or HTTP/2 requests from a fixed number of connections, for a
// duration or a request count, reporting throughput, latency percentiles,
// status codes and errors.
//
//	go run ./bench/load -url https://127.0.0.1:8443/ -c 50 -d 10s -k
//	go run ./bench/load -url https://127.0.0.1:8443/ -h2 -c 10 -m 10 -n 20000 -k
//
// HTTP/1.1 connections send one request at a time and parse responses with
// sluice's own codec (httpcodec/h1), so the generator costs little CPU
// beside the proxy on a shared machine. HTTP/2 uses net/http's HTTP/2 (ALPN
// h2, or h2c with prior knowledge for http:// URLs), one connection per -c
// with -m concurrent streams each.
package main
