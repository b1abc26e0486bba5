package tlsio

import (
	"crypto/rand"
	"crypto/tls"
	"io"
	"slices"
	"sync/atomic"
	"time"
)

// Protocol versions for ServerConfig.MinVersion and MaxVersion.
const (
	VersionTLS12 uint16 = 0x0303
	VersionTLS13 uint16 = 0x0304
)

// Default ALPN protocols, in server preference order. http/1.0 is there
// so a client that offers only it is not refused (no_application_protocol).
var defaultNextProtos = []string{"h2", "http/1.1", "http/1.0"}

// ServerConfig configures a Server. Only Certs is required.
type ServerConfig struct {
	// Certs holds the certificates; it may be replaced at run time
	// (CertStore.Replace) without touching the Server.
	Certs *CertStore
	// NextProtos lists the ALPN protocols in preference order. nil means
	// {"h2", "http/1.1", "http/1.0"}; an empty non-nil slice disables ALPN.
	NextProtos []string
	// MinVersion and MaxVersion bound the protocol version; zero means
	// VersionTLS12 and VersionTLS13. Only those two versions are allowed.
	MinVersion, MaxVersion uint16
	// SessionTicketsDisabled turns off session resumption.
	SessionTicketsDisabled bool
	// Rand is the entropy source; nil means crypto/rand.
	Rand io.Reader
	// CountError, if set, is called with a Reason* constant each time a
	// connection fails because of its peer's input. It is called on the
	// goroutine that owns the failing Conn, inside a Conn method.
	CountError func(reason string)
	// Engine selects the TLS implementation: EngineNative (sluice's own
	// TLS 1.3, with crypto/tls for clients that do not offer TLS 1.3) or
	// EngineStdlib (crypto/tls for everything). "" means DefaultEngine.
	Engine string
	// KeyUpdateAfter is how many plaintext bytes the native engine seals
	// under one key before it sends a KeyUpdate and moves to the next;
	// 0 means DefaultKeyUpdateAfter, negative never.
	KeyUpdateAfter int64
}

// TLS engines for ServerConfig.Engine and Info.Engine.
const (
	EngineNative = "native"
	EngineStdlib = "stdlib"
)

// DefaultKeyUpdateAfter is the default ServerConfig.KeyUpdateAfter: far
// below the AEAD limits of RFC 8446, Section 5.5 (about 2^24.5 full
// records for AES-GCM), and rare enough to cost nothing.
const DefaultKeyUpdateAfter = 1 << 30

// ConfigError reports an invalid ServerConfig or ClientConfig.
type ConfigError struct {
	// Config is "ClientConfig" for a client; empty means ServerConfig.
	Config string
	// Field is the field at fault.
	Field string
	// Problem says what is wrong with it.
	Problem string
}

// Error implements error.
func (e *ConfigError) Error() string {
	c := e.Config
	if c == "" {
		c = "ServerConfig"
	}
	return "tlsio: " + c + "." + e.Field + ": " + e.Problem
}

// Server holds what a listener's connections share: certificates, ALPN,
// versions, session ticket keys. It is safe for concurrent use.
//
// crypto/tls consults the clock only during handshakes (ticket ages, ticket
// key rotation). Its Config.Time is wired to the most recent time passed to
// Feed or FeedEOF of any of this Server's connections that was not yet
// established, so the package itself never reads the clock.
type Server struct {
	endpoint
	certs *CertStore

	// The native engine's configuration; immutable.
	native         bool
	ticketsOff     bool
	keyUpdateAfter int64
	entropy        io.Reader
	ticketSeed     [32]byte
	onlySuite      uint16 // tests: the one TLS 1.3 suite to accept
}

// endpoint is what a Server and a Client share with their connections.
type endpoint struct {
	config     *tls.Config
	client     bool
	countError func(string)
	// clock is the Unix time in nanoseconds last passed by a handshaking
	// Conn; 0 means none yet. Written by loops, read by handshake goroutines.
	clock atomic.Int64
}

// NewServer validates cfg and builds a Server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Certs == nil {
		return nil, &ConfigError{Field: "Certs", Problem: "required"}
	}
	minV, maxV, err := checkVersions(cfg.MinVersion, cfg.MaxVersion)
	if err != nil {
		return nil, err
	}
	protos := cfg.NextProtos
	if protos == nil {
		protos = defaultNextProtos
	}
	if err := checkProtos(protos); err != nil {
		return nil, err
	}
	s := &Server{certs: cfg.Certs, ticketsOff: cfg.SessionTicketsDisabled, entropy: cfg.Rand}
	switch cfg.Engine {
	case "":
		s.native = DefaultEngine == EngineNative
	case EngineNative, EngineStdlib:
		s.native = cfg.Engine == EngineNative
	default:
		return nil, &ConfigError{Field: "Engine", Problem: "must be \"native\" or \"stdlib\""}
	}
	// A server that cannot speak TLS 1.3 has nothing for the native engine.
	s.native = s.native && maxV == VersionTLS13
	switch {
	case cfg.KeyUpdateAfter == 0:
		s.keyUpdateAfter = DefaultKeyUpdateAfter
	case cfg.KeyUpdateAfter > 0:
		s.keyUpdateAfter = cfg.KeyUpdateAfter
	}
	if s.entropy == nil {
		s.entropy = rand.Reader
	}
	if _, err := io.ReadFull(s.entropy, s.ticketSeed[:]); err != nil {
		return nil, &ConfigError{Field: "Rand", Problem: err.Error()}
	}
	s.countError = cfg.CountError
	s.config = &tls.Config{
		MinVersion:             minV,
		MaxVersion:             maxV,
		NextProtos:             slices.Clone(protos),
		GetCertificate:         s.getCertificate,
		SessionTicketsDisabled: cfg.SessionTicketsDisabled,
		Rand:                   cfg.Rand,
		Time:                   s.now,
		// CipherSuites and CurvePreferences stay nil: Go's defaults,
		// which put X25519MLKEM768 first.
	}
	return s, nil
}

// Certs returns the certificate store given in ServerConfig.
func (s *Server) Certs() *CertStore { return s.certs }

// checkVersions applies the version defaults and limits.
func checkVersions(minV, maxV uint16) (uint16, uint16, error) {
	if minV == 0 {
		minV = VersionTLS12
	}
	if maxV == 0 {
		maxV = VersionTLS13
	}
	for _, v := range [...]struct {
		f string
		v uint16
	}{{"MinVersion", minV}, {"MaxVersion", maxV}} {
		if v.v != VersionTLS12 && v.v != VersionTLS13 {
			return 0, 0, &ConfigError{Field: v.f, Problem: "only TLS 1.2 (0x0303) and TLS 1.3 (0x0304) are supported"}
		}
	}
	if minV > maxV {
		return 0, 0, &ConfigError{Field: "MinVersion", Problem: "greater than MaxVersion"}
	}
	return minV, maxV, nil
}

func checkProtos(protos []string) error {
	for _, p := range protos {
		if len(p) == 0 || len(p) > 255 {
			return &ConfigError{Field: "NextProtos", Problem: "protocol names must be 1 to 255 bytes"}
		}
	}
	return nil
}

// NewConn returns a new connection in state Handshaking. wake may be nil;
// otherwise it must be safe to call from any goroutine, must not block, and
// should only schedule the owning loop to look at the Conn (call
// AppendOutput, ReadPlaintext, Events). It is called from the handshake
// goroutine whenever the Conn has new output, and when the handshake has
// finished or failed.
func (s *Server) NewConn(wake func()) Conn {
	if s.native {
		return s.newNativeConn(wake)
	}
	return s.newStdConn(wake)
}

// Engine reports the engine the Server's connections start with.
func (s *Server) Engine() string {
	if s.native {
		return EngineNative
	}
	return EngineStdlib
}

func (s *Server) newStdConn(wake func()) Conn {
	c := &stdConn{ep: &s.endpoint}
	c.t.init(wake)
	return c
}

func (s *Server) rand() io.Reader { return s.entropy }

func (s *Server) getCertificate(chi *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.certs.forHello(chi)
}

// setNow records the caller's time for crypto/tls's Config.Time.
func (s *endpoint) setNow(t time.Time) {
	if !t.IsZero() {
		s.clock.Store(t.UnixNano())
	}
}

// now is crypto/tls's Config.Time.
func (s *endpoint) now() time.Time {
	n := s.clock.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func (s *endpoint) count(reason string) {
	if s.countError != nil {
		s.countError(reason)
	}
}
