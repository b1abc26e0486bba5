package main

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// demoUpstream is the built-in upstream sluice starts when no -upstream is given,
// so the default command does something visible on a fresh machine.
type demoUpstream struct {
	srv *http.Server
	ln  net.Listener
}

// startDemo serves on a loopback port:
//
//	/            a greeting with the request line and headers as received
//	/bytes?n=N   N bytes (default 1 MiB, at most 1 GiB) of a repeating pattern
func startDemo() (*demoUpstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n := int64(1 << 20)
		if s := r.URL.Query().Get("n"); s != "" {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v < 0 || v > 1<<30 {
				http.Error(w, "n must be 0..1073741824", http.StatusBadRequest)
				return
			}
			n = v
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		buf := make([]byte, 32<<10)
		for i := range buf {
			buf[i] = byte('a' + i%26)
		}
		for n > 0 {
			m := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:m]); err != nil {
				return
			}
			n -= m
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Hello from sluice's demo upstream.\n\n%s %s %s\n", r.Method, r.RequestURI, r.Proto)
		fmt.Fprintf(w, "Host: %s\n", r.Host)
		for k, vs := range r.Header {
			for _, v := range vs {
				fmt.Fprintf(w, "%s: %s\n", k, v)
			}
		}
	})
	d := &demoUpstream{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go d.srv.Serve(ln)
	return d, nil
}

// Addr is the demo's host:port.
func (d *demoUpstream) Addr() string { return d.ln.Addr().String() }

// Close stops the demo upstream.
func (d *demoUpstream) Close() error { return d.srv.Close() }
