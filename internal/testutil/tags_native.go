//go:build tlsnative

package testutil

// buildTags: see tags_default.go.
const buildTags = "tlsnative"
