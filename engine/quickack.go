package engine

import "golang.org/x/sys/unix"

// The first-request stall of clients that leave Nagle on.
//
// crypto/tls (behind tlsio) sends a TLS 1.3 server's session tickets in
// its first flight, before the client's Finished, and then has nothing to
// send. The Finished arrives in a connection the kernel already treats as
// interactive (we answered the ClientHello at once), so its ACK is
// delayed, by 40 ms on Linux. A client without TCP_NODELAY (Python's ssl,
// many HTTP libraries) holds its first request behind Nagle until that
// ACK: measured 42 ms to the first response, where OpenSSL servers, which
// send their tickets after the Finished, answer in well under a
// millisecond. TLS 1.2 is not affected: the server's own Finished follows
// the client's and carries the ACK, and neither is tlsio's native TLS 1.3
// engine (-tls-engine native), whose answer to the Finished carries it
// (the test, run without this, stalls only crypto/tls's TLS 1.3).
//
// When a server-side handshake completes, the engine asks for the ACK
// at once (TCP_QUICKACK: the kernel leaves delayed-ACK mode and sends an
// ACK it was holding). One setsockopt per handshake; a client that sent
// its request with the Finished loses nothing, it got its ACK already.
// TestTLSFirstResponseWithoutNoDelay pins it.
func (c *Conn) quickAck() {
	_ = unix.SetsockoptInt(c.fd, unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
}
