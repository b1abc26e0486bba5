// Command compare is the side-by-side report: sluice on its defaults,
// sluice tuned, HAProxy, nginx, h2o and Go's httputil.ReverseProxy
// (bench/goproxy), each one worker/thread/loop with a committed config
// (configs/), the same certificate and the same nginx backend in two
// kinds (return 200 of 1 KiB; a 1 KiB static file). Scenarios: HTTP/2
// (h2load) and HTTP/1.1 (wrk) throughput with the target's CPU per
// request, idle TLS connections held with RSS per connection, full
// handshakes with CPU per handshake, and a graceful stop of busy
// connections with lost responses and the time to exit (the last three
// with package bench's load modes). Rounds alternate target by target,
// each target started fresh for each measurement; the report gives the
// median and min–max of each figure and of each ratio sluice ÷ target,
// and checks the targets, as markdown and PNG charts drawn with
// gonum.org/v1/plot.
//
//	go run ./bench/compare -quick     # about a minute: a smoke run
//	go run ./bench/compare            # 5 rounds, 19,000 idle, 10,000 draining
//
// Missing Debian packages (nginx haproxy h2o nghttp2-client wrk) are
// installed with apt-get unless -install=false. Run it from the
// repository root, as root for apt-get; it needs a 20,000 fd hard limit
// for the full hold scenario. Single-threaded; it starts and kills only
// the process groups it created.
package main
