package engine

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// signPool runs the private-key signatures of native TLS 1.3 handshakes
// (tlsio.Conn.HandshakeWork on a native Conn: it only signs, never blocks
// on input) on a fixed set of workers, one per CPU, so that neither a loop
// nor a goroutine per handshake pays for an RSA-2048 signature. crypto/tls
// handshakes block on input and keep a goroutine of their own.
type signPool struct {
	jobs chan func()
	wg   sync.WaitGroup
	ran  atomic.Int64 // jobs done, for tests
}

// newSignPool starts the workers. depth bounds the queue: every native
// handshake in flight has at most one job, and MaxHandshakes bounds those.
func newSignPool(depth int) *signPool {
	p := &signPool{jobs: make(chan func(), depth)}
	n := runtime.NumCPU()
	p.wg.Add(n)
	for range n {
		go func() {
			defer p.wg.Done()
			for f := range p.jobs {
				f()
				p.ran.Add(1)
			}
		}()
	}
	return p
}

// submit queues f without blocking; false if the queue is full.
func (p *signPool) submit(f func()) bool {
	select {
	case p.jobs <- f:
		return true
	default:
		return false
	}
}

// stop ends the workers once the queue is empty. Called after the loops
// have stopped, so nothing submits any more.
func (p *signPool) stop() {
	close(p.jobs)
	p.wg.Wait()
}
