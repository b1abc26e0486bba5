package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/tlsio"
)

// Config configures an Engine. Zero values take the defaults below.
type Config struct {
	// Loops is the number of gnet event loops (default GOMAXPROCS).
	Loops int
	// LockThreads pins each loop to its own OS thread. Steady-state
	// proxying gains (the loop stops hopping between threads after each
	// blocking epoll_wait); TLS handshakes, which hand off between a
	// goroutine and the loop, lose a little (see README, Benchmarks).
	LockThreads bool
	// Listeners are the addresses to accept on.
	Listeners []Listener
	// WriteTimeout aborts a connection whose output makes no progress for
	// this long (default 60s, nginx's send_timeout). During the close
	// sequence it is the flush timeout.
	WriteTimeout time.Duration
	// LingerTimeout bounds the linger phase (default 5s, nginx's lingering_timeout).
	LingerTimeout time.Duration
	// HighWater and LowWater are output-buffer marks for backpressure: a
	// producer pauses above HighWater and is told (OnWritable) at LowWater.
	// Defaults 256 KiB and 64 KiB.
	HighWater, LowWater int
	// MaxConns caps live connections, downstream and upstream (default
	// 16384, under this machine's 20,000-fd limit). At the cap, the oldest
	// client connection still waiting for its first byte is evicted to
	// make room; when there is none, the new one is reset at once and
	// counted as rejected.
	MaxConns int
	// HandshakeTimeout bounds a TLS handshake, from the client's first
	// byte (default 10s).
	HandshakeTimeout time.Duration
	// FirstByteTimeout is how long a TLS client or a balancer that owes a
	// PROXY header may send nothing; with a PROXY
	// header, the time from accept to the whole header. Then the
	// connection is reset (default 5s, see admission.go).
	FirstByteTimeout time.Duration
	// MaxHandshakes caps TLS handshakes in flight across all loops
	// (default 1024). A handshake takes its slot at the client's first
	// byte; at the cap the one that has gone longest without progress is
	// evicted to make room (admission.go).
	MaxHandshakes int
	// ReadBufferSize is gnet's per-loop read buffer (default 64 KiB).
	ReadBufferSize int
	// Logger receives engine logs; nil discards them.
	Logger *slog.Logger
	// Metrics is the set engine metrics are registered in; nil uses a
	// private set (see Engine.Metrics).
	Metrics *metrics.Set
}

// Listener is one listening address.
type Listener struct {
	// Name labels connections from this listener in logs and traces.
	Name string
	// Addr is host:port; port 0 picks a free port (see Engine.Addr).
	Addr string
	// Accept returns the handler for a new connection. It runs on the
	// connection's loop. On a TLS listener the handler's OnOpen runs after
	// the handshake.
	Accept func(c *Conn) Handler
	// TLS, when set, makes this a TLS listener (see tls.go).
	TLS *tlsio.Server
	// ProxyProtocol requires a PROXY protocol header (v1 or v2) at the
	// start of every connection, before TLS; RemoteAddr is then the
	// client it names (see proxyproto.go).
	ProxyProtocol bool
	// ClientFirst says the client speaks first (HTTP): until its first
	// byte a connection may be evicted when MaxConns is reached
	// (admission.go). TLS and ProxyProtocol imply it, and add
	// FirstByteTimeout; leave it off where a server-first protocol may be
	// relayed.
	ClientFirst bool
	// Inherited are listening sockets handed to this process (a restart's
	// predecessor, or systemd's LISTEN_FDS). When set, the engine accepts
	// on them itself instead of binding Addr (inherit.go); it takes
	// ownership of the fds.
	Inherited []int
}

func (cfg *Config) setDefaults() error {
	if cfg.Loops <= 0 {
		cfg.Loops = runtime.GOMAXPROCS(0)
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 60 * time.Second
	}
	if cfg.LingerTimeout <= 0 {
		cfg.LingerTimeout = 5 * time.Second
	}
	if cfg.HighWater <= 0 {
		cfg.HighWater = 256 << 10
	}
	if cfg.LowWater <= 0 || cfg.LowWater > cfg.HighWater {
		cfg.LowWater = min(64<<10, cfg.HighWater/2)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 16384
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.FirstByteTimeout <= 0 {
		cfg.FirstByteTimeout = 5 * time.Second
	}
	if cfg.MaxHandshakes <= 0 {
		cfg.MaxHandshakes = 1024
	}
	if cfg.ReadBufferSize <= 0 {
		cfg.ReadBufferSize = 64 << 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Listeners) == 0 {
		return errors.New("engine: no listeners")
	}
	names := map[string]bool{}
	for i, ln := range cfg.Listeners {
		if ln.Accept == nil {
			return fmt.Errorf("engine: listener %q has no Accept function", ln.Addr)
		}
		if ln.Name == "" {
			cfg.Listeners[i].Name = fmt.Sprintf("listener%d", i)
		}
		if names[cfg.Listeners[i].Name] {
			return fmt.Errorf("engine: duplicate listener name %q", cfg.Listeners[i].Name)
		}
		names[cfg.Listeners[i].Name] = true
	}
	return nil
}
