// Package tlsio is sans-I/O TLS for event loops, server and client side:
// ciphertext in,
// plaintext and events out, ciphertext to send appended to caller-owned
// buffers. Its shape follows rustls' ServerConnection and picotls: the
// caller feeds bytes (Feed, FeedEOF), collects what the connection wants to
// send (AppendOutput), reads plaintext (ReadPlaintext), encrypts its own
// data (Seal, CloseNotify) and looks at State, Events and Err. Errors are
// sticky, but the alert that goes with a failure is still handed out by
// AppendOutput.
//
// The per-connection API is the Conn interface. Client.NewConn returns an
// implementation backed by crypto/tls. Server.NewConn returns one of two
// engines (ServerConfig.Engine): EngineStdlib, backed by crypto/tls, or
// EngineNative, sluice's own TLS 1.3 server (native_*.go): record layer,
// key schedule, ClientHello parser and a handshake state machine on
// standard-library primitives, whose states are values (after rustls'
// server/hs.rs). A native Conn that receives a ClientHello not offering
// TLS 1.3 hands it, with every byte received so far, to a crypto/tls Conn
// and forwards every method to it; Info.Engine tells which ran. A client
// Conn is the same state machine with the roles swapped: its handshake
// function is ready at once (the ClientHello goes first), the first bytes
// are not sniffed, and a certificate that does not verify fails it with
// ReasonCertificate.
//
// # What it owns
//
// Server: the per-listener configuration (CertStore, ALPN list, version
// range, session ticket keys). Client: the per-peer configuration (roots,
// server name, ALPN offer, session cache). CertStore: key pairs selected by SNI and
// replaceable at run time. Conn: one connection's TLS state and its
// buffers. Nothing else: no sockets, no files, no timers, no logging.
//
// # Threading model
//
// A Conn belongs to one goroutine, its event loop. All Conn methods must be
// called from that goroutine, never concurrently, with one exception:
// Close may be called from any goroutine at any time, and is idempotent.
//
// The handshake is CPU-heavy (public-key signatures, key exchange), so it
// never runs on the loop. When Feed has buffered the client's first
// complete record, HandshakeWork returns a function, exactly once. The
// caller runs that function on a goroutine of its own (tlsio never starts
// a goroutine). The function runs crypto/tls's server handshake over an
// in-memory transport: its reads block until the loop calls Feed, FeedEOF
// or Close; its writes append to the Conn's pending output and call the
// wake function given to NewConn. It returns when the handshake completes
// or fails, or promptly after Close, and calls wake once more on the way
// out (not after Close). wake runs on that goroutine: it must be
// goroutine-safe, must not block, and should only post a task to the loop,
// which then calls AppendOutput, ReadPlaintext and Events.
//
// While the handshake function runs, the loop only hands it bytes; it
// never touches crypto/tls state. Once the loop has observed the end of
// the handshake (any Conn method does that), records are decrypted and
// encrypted on the loop itself, inside Feed and Seal, with no goroutine:
// the transport then answers crypto/tls's reads with a temporary net.Error
// when it is empty, which crypto/tls treats as retryable (a behaviour that
// TestPinTemporaryReadRetry pins). Application data that arrives in the
// same Feed as the client's Finished is decrypted as soon as the loop
// observes HandshakeDone.
//
// The native engine runs the whole handshake on the loop, inside Feed,
// except the certificate's private-key signature: when the server's flight
// is ready but for CertificateVerify, HandshakeWork returns a function that
// only signs (it never blocks and never reads input), then calls wake. Until
// the loop observes its result the connection sends nothing encrypted. A
// resumed handshake has no such function. The caller may run it on any
// goroutine, a worker pool included. Close of a native Conn from another
// goroutine only sets a flag; the loop's next call releases the buffers.
//
// Server, CertStore and KeyPair are safe for concurrent use. The
// ServerConfig.CountError hook is called on the loop goroutine, from inside
// a Conn method. CertStore is consulted from handshake goroutines.
//
// # Time
//
// The package never reads the clock. crypto/tls needs the time only during
// handshakes (ticket lifetimes and ticket key rotation); Server wires
// tls.Config.Time to the latest time passed to Feed or FeedEOF by any of
// its connections that was still handshaking. (crypto/tls itself reads the
// clock in one place, to set a write deadline around close_notify on the
// transport; the transport ignores deadlines.)
//
// # Limits
//
//   - TLS 1.2 and 1.3; a Client may present a certificate, a Server does
//     not ask for one; no 0-RTT, no renegotiation (crypto/tls refuses it).
//   - crypto/tls never sends KeyUpdate on its own; the server answers a
//     client's KeyUpdate that requests one, and that answer comes out of
//     AppendOutput (or first in the next Seal).
//   - Memory: an established idle Conn holds no tlsio buffer (input is
//     lent, plaintext buffers are pooled, output is released when taken),
//     but crypto/tls keeps its own record input buffer, sized by the
//     largest record received so far. A native Conn keeps only its keys and
//     sequence numbers when idle: complete records are decrypted in place
//     in the bytes given to Feed, and only a partial record is copied.
//   - Native engine: TLS 1.3 server only; suites AES-128-GCM, AES-256-GCM,
//     ChaCha20-Poly1305; groups X25519MLKEM768, X25519, P-256, P-384 (a
//     HelloRetryRequest asks for one when the client sent no usable
//     share); signatures ECDSA P-256/P-384/P-521, RSA-PSS, Ed25519. No
//     client certificates, no 0-RTT (declined: early records are skipped,
//     up to 16 KiB), psk_dhe_ke resumption only, one stateless ticket per
//     connection sent after the client's Finished (so it never waits for
//     a client that sends its first request with Finished), sealed under a
//     key derived per 24 h epoch from the Server's random seed and taken
//     for 8 epochs (the ticket lifetime is 7 days). Tickets of one Server
//     are not valid at another. It sends KeyUpdate after
//     ServerConfig.KeyUpdateAfter bytes and answers update_requested.
//     Abuse bounds: 32 records in a row without data (empty records,
//     change_cipher_spec, user_canceled), 32 KeyUpdates without data,
//     handshake messages of 64 KiB (1 KiB after the handshake).
//   - The caller bounds input: Feed buffers what it is given (before and
//     during the handshake, and plaintext not yet read).
package tlsio
