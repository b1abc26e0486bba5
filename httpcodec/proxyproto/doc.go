// Package proxyproto parses and writes the PROXY protocol header
// (HAProxy's, versions 1 and 2): the line or binary block a load balancer
// sends first on a connection to name the client's address.
//
// # What it owns
//
// Parse reads a header at the start of a buffer (ErrNeedMore while it could
// still become one, an *Error naming the reason when it cannot); Append
// and AppendV2 write one. The waiting for the header, its deadline and
// admission are the engine's (engine/proxyproto.go).
//
// # Threading model
//
// None: pure functions on caller-owned buffers. No I/O, no clock, no
// logging, no goroutines.
//
// # Limits
//
// A v1 line is at most 107 bytes (the specification's bound), a v2 header
// at most 16+2048 bytes (sluice's bound; its TLVs are skipped, not
// interpreted). Only TCP over IPv4 or IPv6 yields an address: LOCAL,
// UNKNOWN, UNSPEC, UDP and unix sockets say "keep the connection's own".
package proxyproto
