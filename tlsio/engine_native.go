//go:build tlsnative

package tlsio

// DefaultEngine: see engine_default.go.
const DefaultEngine = EngineNative
