package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8443", "TLS listen address (ALPN h2 and http/1.1)")
	cert := flag.String("cert", "", "certificate PEM file")
	key := flag.String("key", "", "private key PEM file")
	upstream := flag.String("upstream", "", "upstream URL, http://host:port")
	idle := flag.Int("max-idle-per-host", 1024, "idle upstream connections kept (Go's default, 2, churns)")
	drain := flag.Duration("drain-timeout", 30*time.Second, "graceful shutdown deadline on SIGTERM")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		fmt.Fprintf(os.Stderr, "goproxy: -upstream %q: want http://host:port\n", *upstream)
		os.Exit(2)
	}
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		fmt.Fprintf(os.Stderr, "goproxy: -cert/-key: %v\n", err)
		os.Exit(2)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
			r.SetXForwarded()
		},
		Transport: &http.Transport{MaxIdleConns: 0, MaxIdleConnsPerHost: *idle, IdleConnTimeout: 60 * time.Second,
			DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext},
		ErrorLog: log.New(os.Stderr, "goproxy: ", 0),
	}
	srv := &http.Server{Addr: *listen, Handler: rp, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}}}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "goproxy: -listen: %v\n", err)
		os.Exit(2)
	}
	done := make(chan struct{})
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), *drain)
		defer cancel()
		srv.Shutdown(ctx)
		close(done)
	}()
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "goproxy: %v\n", err)
		os.Exit(1)
	}
	<-done
}
