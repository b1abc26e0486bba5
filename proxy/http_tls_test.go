package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/tlsio"
)

// On a TLS listener the handler sees plaintext; X-Forwarded-Proto says
// https for it and http for a plain listener of the same proxy.
func TestHTTPOverTLSListener(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(headerEcho))
	kp, err := tlsio.SelfSigned(time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	store, err := tlsio.NewCertStore(kp)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tlsio.NewServer(tlsio.ServerConfig{Certs: store, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	set := metrics.NewSet()
	h, err := NewHTTP(HTTPConfig{Routes: []Route{{PathPrefix: "/", Upstreams: []string{be.addr()}}}}, NewMetrics(set))
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(engine.Config{
		Loops: 2,
		Listeners: []engine.Listener{
			{Name: "tls", Addr: "127.0.0.1:0", Accept: h.Accept, TLS: srv},
			{Name: "plain", Addr: "127.0.0.1:0", Accept: h.Accept},
		},
		Logger:  hpLogger(),
		Metrics: set,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: false,
	}}
	for _, tc := range []struct{ url, proto string }{
		{"https://" + e.Addr("tls") + "/s", "https"},
		{"http://" + e.Addr("plain") + "/p", "http"},
	} {
		for i := 0; i < 3; i++ { // keep-alive over TLS too
			resp, err := cl.Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string][]string
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s: %d %v", tc.url, resp.StatusCode, err)
			}
			if p := got["X-Forwarded-Proto"]; len(p) != 1 || p[0] != tc.proto {
				t.Fatalf("%s: X-Forwarded-Proto %v, want %s", tc.url, p, tc.proto)
			}
		}
	}
	if n := be.conns.Load(); n > 2 {
		t.Errorf("upstream connections = %d; want the pool reused", n)
	}
}
