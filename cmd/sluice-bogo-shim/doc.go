// Command sluice-bogo-shim is a shim for BoringSSL's TLS test runner
// (BoGo, ssl/test/runner): it speaks the runner's flag protocol for the
// server role over tlsio's sans-I/O API, through a plain net.Conn pump.
// -tls-engine selects tlsio's native engine (the default; it hands hellos
// without TLS 1.3 to crypto/tls, as sluice does) or stdlib. bogo.sh builds
// the runner from a BoringSSL checkout and runs it against both engines;
// config*.json disable what sluice does not do, each pattern with why.
//
// It owns only the test protocol: the flags, the shim ID, the XOR-0xff
// echo, and the checks a test asks for (-expect-version, -expect-alpn,
// ...). Threading: one goroutine runs every tlsio.Conn method; a reader
// goroutine and the handshake function only post to channels.
//
// Limits: server role only. Any flag it cannot honour (client role,
// per-connection config, curves, signing preferences, credentials, 0-RTT,
// ...) exits 89, which the runner counts as unimplemented, never as a
// pass. TLS 1.0 and 1.1 are not served. Not part of CI: the runner's
// module is not on the Go module proxy.
package main
