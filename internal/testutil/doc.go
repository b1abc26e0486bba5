// Package testutil holds test helpers shared by packages whose tests run
// sluice as a real process beside real peers: loopback ports never handed
// out twice, a CA with a leaf certificate, building the sluice binary, and
// running a child process whose output lines are kept and watched.
//
// Threading: a Proc's output is read by one goroutine per stream; its
// methods are safe from any goroutine. Limits: loopback only; every
// process started is killed in t.Cleanup.
package testutil
