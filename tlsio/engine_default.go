//go:build !tlsnative

package tlsio

// DefaultEngine is the engine a ServerConfig without Engine gets. Build
// with -tags tlsnative to make it EngineNative (the whole test suite runs
// on the native engine that way).
const DefaultEngine = EngineStdlib
