//go:build race

package proxy

// raceEnabled: the race runtime allocates on its own; allocation guards skip.
const raceEnabled = true
