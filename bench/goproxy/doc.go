// Command goproxy is the Go standard library baseline of bench/compare:
// net/http's server (TLS, ALPN h2 and http/1.1) in front of
// httputil.ReverseProxy, with the upstream idle pool raised from Go's
// default of 2 per host (which churns thousands of connections per run)
// and a graceful Shutdown on SIGTERM. One goroutine per connection, as
// net/http always runs; GOMAXPROCS is Go's default.
//
//	go run ./bench/goproxy -listen 127.0.0.1:8443 -cert c.pem -key k.pem -upstream http://127.0.0.1:8080
package main
