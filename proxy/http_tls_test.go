package proxy

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/tlsio"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// On a TLS listener the handler sees plaintext; X-Forwarded-Proto says
// https for it and http for a plain listener of the same proxy.
func TestHTTPOverTLSListener(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(headerEcho))
	srv := testutil.TLSServer(t, testutil.SelfSigned(t), tlsio.ServerConfig{NextProtos: []string{"http/1.1"}})
	env := hpLaunch(t, HTTPConfig{}, engine.Config{}, srv, be.addr())
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: false,
	}}
	for _, tc := range []struct{ url, proto string }{
		{"https://" + env.e.Addr("tls") + "/s", "https"},
		{"http://" + env.addr + "/p", "http"},
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
