// Package bench holds sluice's comparison benchmarks: each runs sluice and
// a baseline side by side in the same run and reports the ratio, because
// the machine is shared and absolute figures mean little (see
// shared/BENCHMARKING.md). Run them with
//
//	go test -run '^$' -bench . -benchtime 5x ./bench/
//
// The package has no non-test code besides this comment.
package bench
