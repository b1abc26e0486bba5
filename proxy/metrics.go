package proxy

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
)

// Metrics holds the proxy's metrics, created once at start-up in a set.
type Metrics struct {
	set *metrics.Set
}

type tcpMetrics struct {
	dialErrors *metrics.Counter
	relays     *metrics.Counter
}

// NewMetrics registers the proxy's metrics in s.
func NewMetrics(s *metrics.Set) *Metrics { return &Metrics{set: s} }

func (m *Metrics) tcp(upstream string) *tcpMetrics {
	return &tcpMetrics{
		dialErrors: m.set.NewCounter(fmt.Sprintf(`sluice_upstream_requests_total{upstream=%q,result="dial_error"}`, upstream)),
		relays:     m.set.NewCounter(fmt.Sprintf(`sluice_upstream_requests_total{upstream=%q,result="connected"}`, upstream)),
	}
}
