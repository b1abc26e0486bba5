// Command sluice is a reverse proxy on gnet event loops whose distinguishing
// part is the end of a connection: every byte delivered, close_notify sent,
// sockets closed on time, each step visible.
//
// main parses flags into a config, starts the engine with the chosen mode's
// handler, serves the admin endpoints, and on SIGTERM/SIGINT hands over to
// package shutdown. It holds no proxy logic. See README.md for every flag.
package main
