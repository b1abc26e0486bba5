package tlsio

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"slices"
)

// ClientConfig configures a Client: the TLS client side of connections
// the caller opens (a proxy's upstreams). The zero value verifies the
// peer against the system roots and offers no ALPN.
type ClientConfig struct {
	// ServerName is sent as SNI (unless it is an IP address) and is the
	// name the peer's certificate must be valid for. Required unless
	// InsecureSkipVerify is set.
	ServerName string
	// RootCAs verifies the peer's chain; nil means the system roots.
	RootCAs *x509.CertPool
	// InsecureSkipVerify accepts any certificate. For tests and for
	// upstreams reached over a trusted network only.
	InsecureSkipVerify bool
	// NextProtos lists the ALPN protocols to offer; nil offers none.
	NextProtos []string
	// Certificate, when set, is presented to a peer that asks for a
	// client certificate (mutual TLS); otherwise none is.
	Certificate *KeyPair
	// MinVersion and MaxVersion bound the protocol version; zero means
	// VersionTLS12 and VersionTLS13.
	MinVersion, MaxVersion uint16
	// SessionCacheSize is how many sessions are kept for resumption
	// (TLS 1.3 and TLS 1.2 tickets); 0 means 64, negative disables
	// resumption. Sessions are keyed by ServerName: without one
	// (InsecureSkipVerify) every connection of the Client shares one
	// entry, so use one Client per peer.
	SessionCacheSize int
	// Rand is the entropy source; nil means crypto/rand.
	Rand io.Reader
	// CountError is as in ServerConfig.
	CountError func(reason string)
}

// Client holds what the connections to one peer share: verification,
// ALPN, versions and the session cache. It is safe for concurrent use.
// Config.Time is wired as for a Server: to the latest time a handshaking
// connection was fed (a Feed of nil before HandshakeWork sets it for the
// ClientHello; certificates are checked at the time fed with the
// server's flight).
type Client struct {
	endpoint
}

// NewClient validates cfg and builds a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	minV, maxV, err := checkVersions(cfg.MinVersion, cfg.MaxVersion)
	if err == nil {
		err = checkProtos(cfg.NextProtos)
	}
	if err == nil && cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		err = &ConfigError{Field: "ServerName", Problem: "required unless InsecureSkipVerify is set"}
	}
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.Config = "ClientConfig"
		}
		return nil, err
	}
	cl := &Client{}
	cl.client = true
	cl.countError = cfg.CountError
	cl.config = &tls.Config{
		ServerName:         cfg.ServerName,
		Certificates:       clientCerts(cfg.Certificate),
		RootCAs:            cfg.RootCAs,
		InsecureSkipVerify: cfg.InsecureSkipVerify,
		NextProtos:         slices.Clone(cfg.NextProtos),
		MinVersion:         minV,
		MaxVersion:         maxV,
		Rand:               cfg.Rand,
		Time:               cl.now,
	}
	switch {
	case cfg.SessionCacheSize == 0:
		cl.config.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	case cfg.SessionCacheSize > 0:
		cl.config.ClientSessionCache = tls.NewLRUClientSessionCache(cfg.SessionCacheSize)
	}
	return cl, nil
}

func clientCerts(k *KeyPair) []tls.Certificate {
	if k == nil {
		return nil
	}
	return []tls.Certificate{k.cert}
}

// NewConn returns a new client connection in state Handshaking. Its
// HandshakeWork is ready at once (the ClientHello goes first); wake is as
// for Server.NewConn.
func (cl *Client) NewConn(wake func()) Conn {
	c := &stdConn{ep: &cl.endpoint, ready: true}
	c.t.init(wake)
	return c
}
