//go:build !poll_opt

package engine

// gnetPollOpt reports gnet's poll_opt build, whose epoll data layout the
// engine's read pause cannot use.
const gnetPollOpt = false
