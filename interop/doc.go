// Package interop runs sluice, as its real binary, between real peers
// built from other stacks: a hyper 0.14 + rustls 0.20 client and server
// (the Rust crate in hyper/, built offline against Debian's librust-*-dev
// crates), curl, h2load, nghttp, openssl s_client, gnutls-cli and
// python3-h2 (h2edge.py). It owns no production code: its tests are the
// compatibility matrix in the README.
//
// Threading: each test starts its own processes and waits for them; the
// tests run one after another. Limits: loopback only; bounded request
// counts and durations; every process is killed at cleanup. The tests skip
// only when cargo itself is absent (interop/setup.sh installs what they
// need; CI runs it).
package interop
