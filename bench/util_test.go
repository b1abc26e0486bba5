package bench

import "sync/atomic"

type atomicInt struct{ v atomic.Int64 }

func (a *atomicInt) add(d int64) { a.v.Add(d) }
func (a *atomicInt) get() int    { return int(a.v.Load()) }
