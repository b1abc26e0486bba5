package engine

import (
	"time"

	"golang.org/x/sys/unix"
)

// The engine clock is CLOCK_MONOTONIC in nanoseconds, the clock timerfd uses,
// so deadlines can be handed to the kernel unchanged. It is read through
// time.Since (vDSO) plus an offset taken once, not through a syscall.
var (
	clockBase     = time.Now()
	clockBaseMono = func() int64 {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			panic("engine: clock_gettime(CLOCK_MONOTONIC): " + err.Error())
		}
		return ts.Nano()
	}()
)

// Now returns the engine clock: monotonic nanoseconds.
func Now() int64 { return clockBaseMono + int64(time.Since(clockBase)) }

// Dur converts an engine-clock interval to a time.Duration.
func Dur(ns int64) time.Duration { return time.Duration(ns) }
