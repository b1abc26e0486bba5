// Package header is sluice's one header policy and its encoders: which
// fields are hop-by-hop, what forwarding adds or replaces (Host,
// X-Forwarded-*, Forwarded, Via, X-Request-Id), which fields may travel as
// trailers, and the pseudo-header fields of HTTP/2. Every protocol pair
// (HTTP/1.1 or HTTP/2 on either side, requests and responses) goes
// through the same rules: a received message is read through a View
// (HTTP/1.1 parsed fields, or an HTTP/2 field list), and written by the
// encoder of the protocol it leaves in (HTTP/1.1 head bytes, or an HPACK
// field list for the HTTP/2 codec to encode). The protocol adapters in
// package proxy say only how the body is framed.
//
// # Threading model
//
// None: a Policy is immutable after NewPolicy and may be shared; a
// Scratch belongs to one connection (loop-owned in sluice). Nothing here
// does I/O, reads the clock or logs.
//
// # Limits
//
// Encoding allocates nothing into HTTP/1.1 output beyond dst's growth;
// an HTTP/2 field list whose strings are not already immutable shares one
// allocation (the rest of its fields are the received strings). A View of
// HTTP/1.1 fields hands out strings that alias the parser's buffer (see
// Alias): they are valid only until that buffer is reused, which is why
// the HTTP/2 encoder copies them.
package header
