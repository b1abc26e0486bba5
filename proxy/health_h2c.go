package proxy

import (
	"golang.org/x/net/http2/hpack"
)

// h2cHealthRequest is the probe's request header list for an h2c or h2
// upstream u (an h2c-only upstream, gRPC, cannot answer an HTTP/1.1 GET).
func h2cHealthRequest(h *HTTP, u *Upstream) []hpack.HeaderField {
	return []hpack.HeaderField{
		{Name: ":method", Value: "GET"},
		{Name: ":scheme", Value: u.Scheme()},
		{Name: ":authority", Value: u.Host()},
		{Name: ":path", Value: h.cfg.HealthPath},
		{Name: "user-agent", Value: "sluice-health-check"},
	}
}
