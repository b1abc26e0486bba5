package proxy

import (
	"fmt"
	"io"
	"net/http"
	"testing"
)

func TestH2GetThroughProxy(t *testing.T) {
	be := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s %s %s via=%s xff=%s", r.Method, r.URL.RequestURI(), r.Host, r.Header.Get("Via"), r.Header.Get("X-Forwarded-For"))
	}))
	env := h2Start(t, HTTPConfig{}, be.addr())
	for _, c := range []struct {
		name string
		cl   *http.Client
		url  string
	}{{"h2c", h2cClient(), env.h2cURL("/a/b?c=d")}, {"tls", h2TLSClient(), env.tlsURL("/a/b?c=d")}} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := c.cl.Get(c.url)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Fatalf("proto %s", resp.Proto)
			}
			t.Logf("%d %q %v", resp.StatusCode, body, resp.Header)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
		})
	}
}
