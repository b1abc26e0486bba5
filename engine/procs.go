package engine

import (
	"os"
	"runtime"
	"sync"
)

var baseProcs = sync.OnceValue(func() int { return runtime.GOMAXPROCS(0) })

// SetProcs gives the Go scheduler one P per loop on top of the CPUs it
// found (GOMAXPROCS as the runtime chose it, cgroup limits included),
// unless the GOMAXPROCS environment variable says otherwise. A loop keeps
// its P while it sleeps in epoll_wait, so without the extra Ps a goroutine
// readied meanwhile (a TLS handshake) waits until the runtime takes that P
// back. It returns the GOMAXPROCS now in force. Call it before Start.
func SetProcs(loops int) int {
	if os.Getenv("GOMAXPROCS") != "" || loops < 1 {
		return runtime.GOMAXPROCS(0)
	}
	n := baseProcs() + loops
	runtime.GOMAXPROCS(n)
	return n
}
