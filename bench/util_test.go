package bench

import (
	"net"
	"sync/atomic"
)

type atomicInt struct{ v atomic.Int64 }

func (a *atomicInt) add(d int64) { a.v.Add(d) }
func (a *atomicInt) get() int    { return int(a.v.Load()) }

// goServe is the baselines' server: a goroutine per connection reading
// (with echo, writing back) until EOF, counted in live if given, until ln
// is closed. Not testutil.Serve: its bookkeeping of open connections
// would count in the baseline's heap per connection.
func goServe(ln net.Listener, live *atomicInt, echo bool) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if live != nil {
				live.add(1)
			}
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						break
					}
					if echo {
						c.Write(buf[:n])
					}
				}
				c.Close()
				if live != nil {
					live.add(-1)
				}
			}()
		}
	}()
}
