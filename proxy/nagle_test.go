package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"testing"
	"time"
)

// net/http over TLS with Nagle left on (as Python's ssl and many client
// libraries do), a new connection per request: from the request written
// to the first response byte takes what the proxy and the upstream take,
// not the 40 ms of a delayed ACK (engine/quickack.go). Median of 9.
func TestHTTPSFirstResponseWithoutNoDelay(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	env := h2Start(t, HTTPConfig{}, be.addr())
	tr := &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				err = c.(*net.TCPConn).SetNoDelay(false)
			}
			return c, err
		},
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	var lat []time.Duration
	for i := 0; i < 9; i++ {
		var wrote, first time.Time
		trace := &httptrace.ClientTrace{
			WroteRequest:         func(httptrace.WroteRequestInfo) { wrote = time.Now() },
			GotFirstResponseByte: func() { first = time.Now() },
		}
		req, _ := http.NewRequest("GET", env.tlsURL("/"), nil)
		resp, err := cl.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok" || resp.ProtoMajor != 1 {
			t.Fatalf("%s %d %q", resp.Proto, resp.StatusCode, b)
		}
		lat = append(lat, first.Sub(wrote))
	}
	slices.Sort(lat)
	t.Logf("request written to first response byte, fresh TLS connections without TCP_NODELAY: %v", lat)
	if m := lat[len(lat)/2]; m > 5*time.Millisecond {
		t.Errorf("median %v, want under 5ms", m)
	}
}
