// Command sluice is a reverse proxy on gnet event loops whose distinguishing
// part is the end of a connection: every byte delivered, close_notify sent,
// sockets closed on time, each step visible.
//
// main parses flags into a config, starts the engine with the chosen mode's
// handler, serves the admin endpoints, and on SIGTERM/SIGINT hands over to
// package shutdown. On SIGUSR2 it restarts into a new process that
// inherits the listening sockets, then drains (restart.go); it adopts
// systemd's LISTEN_FDS the same way. It holds no proxy logic. See
// README.md for every flag.
//
// flags.go defines the flags (newFlagSet) and checks them; config.go reads
// the -config TOML file, whose keys are the flag names (from the flag set,
// so a new flag is a key with no code) plus [[routes]] tables; ops.go holds
// -version, -check and the SIGHUP reloader, which parses everything again
// on the main goroutine and hands the routes to proxy.HTTP.SetRoutes and
// the certificates to the TLS store, or keeps all of the old configuration.
// Limits: a reload changes routes, upstreams and certificates only; every
// other setting needs a restart (logged when it changed).
package main
