package proxy

import "github.com/sluice-proxy/sluice/proxy/upstream"

// Upstream is one origin server; its state, selection and health are
// package upstream's.
type Upstream = upstream.Upstream

// Balancing policies, for HTTPConfig.Balance.
const (
	BalanceRoundRobin = upstream.BalanceRoundRobin
	BalanceLeastConn  = upstream.BalanceLeastConn
	BalanceP2C        = upstream.BalanceP2C
)
