// Command sluice is a reverse proxy on gnet event loops whose distinguishing
// part is the end of a connection: every byte delivered, close_notify sent,
// sockets closed on time, each step visible.
//
// main.go is the wiring and the signals: it parses the flags, builds the
// configuration, starts the engine and the admin endpoints, and on
// SIGTERM/SIGINT hands over to package shutdown; on SIGUSR2 it restarts
// into a new process that inherits the listening sockets, then drains
// (restart.go, which also adopts systemd's LISTEN_FDS). It holds no proxy
// logic. See README.md for every flag.
//
// flags.go defines the flags (newFlagSet) and parses them; file.go reads
// the -config TOML file, whose keys are the flag names (from the flag set,
// so a new flag is a key with no code) plus [[routes]] and [[upstreams]]
// tables; validate.go checks every value and lists every problem;
// config.go's build is the one constructor from a checked config to the
// TLS server, the proxy and the engine, used by start-up and by -check
// (ops.go) alike, opening no socket and creating no file. ops.go also
// holds -version; reload.go is the SIGHUP reloader, which parses
// everything again on the main goroutine and hands the routes to
// proxy.HTTP.SetRoutes and the certificates to the TLS store, or keeps
// all of the old configuration; log.go builds the loggers. demo.go is
// the built-in upstream for running on the embedded defaults.
//
// Threading: everything here runs on the main goroutine except the demo
// upstream's net/http server and the admin server.
// Limits: a reload changes routes, upstreams and certificates only; every
// other setting, upstream TLS included, needs a restart (logged, naming
// each one, when it changed).
package main
