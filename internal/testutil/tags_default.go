//go:build !tlsnative

package testutil

// buildTags are passed to the go build of the sluice binary.
const buildTags = ""
