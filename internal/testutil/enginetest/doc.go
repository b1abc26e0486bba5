// Package enginetest starts engines for tests outside package engine (its
// own tests cannot import it: testutil is imported by them, so this lives
// apart). Test-only: it calls t.Fatal and registers cleanups.
//
// Threading: Start runs on the test goroutine; the engine's loops are the
// engine's.
package enginetest
