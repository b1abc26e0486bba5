package engine

import (
	"context"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/netpoll"

	"github.com/sluice-proxy/sluice/diag"
)

// Loop is the engine's side of one gnet event loop. Everything in it marked
// "loop-owned" is touched only by code running on that loop: gnet callbacks
// and tasks posted with Post. Connections never move between loops, and an
// upstream dialed for a downstream is placed on the downstream's loop, so
// forwarding between them is a function call.
type Loop struct {
	e      *Engine
	idx    int
	gel    gnet.EventLoop
	poller *netpoll.Poller
	lnFDs  []int
	w      *watcher

	// Loop-owned.
	conns      map[uint64]*Conn
	timers     timerHeap
	armed      int64  // deadline the timerfd is set to, 0 = not armed
	nowNs      int64  // clock read at callback entry
	depth      int    // nesting of enter/exit
	callbacks  uint64 // outermost callbacks entered: names one for caches (kernelQueue)
	dirty      []*Conn
	runq       []func()
	inTraffic  *Conn // conn whose gnet OnTraffic is running
	inClose    *Conn // conn whose gnet OnClose is running
	iov        [][]byte
	sealBuf    []byte               // TLS output staging (Seal, alerts), reused
	plainBuf   []byte               // TLS plaintext staging, reused; never aliases sealBuf
	recent     *diag.Ring           // recent close traces
	adm        [numAdmKinds]admList // waiting connections, handshakes (admission.go); heads' keys readable anywhere
	batchq     []func()             // AfterBatch work for the current batch
	batchSpare []func()
	batchDue   bool // batchTask is posted and has not run
	drained    bool // DrainConnections reached this loop (OnDrain hooks ran)
	onDrain    []func()

	// Read by metrics scrapes from other goroutines.
	stateCount [2][diag.NumStates]atomic.Int64 // [side][state]
	buffered   atomic.Int64                    // bytes in engine output buffers
	live       atomic.Int64

	task      gnet.Runnable
	batchTask gnet.Runnable
}

const recentTraces = 64

func newLoop(e *Engine, idx int, gel gnet.EventLoop, priv gnetLoopPriv) (*Loop, error) {
	w, err := newWatcher()
	if err != nil {
		return nil, err
	}
	l := &Loop{
		e: e, idx: idx, gel: gel, poller: priv.poller, lnFDs: priv.listenerFDs, w: w,
		conns: make(map[uint64]*Conn), recent: diag.NewRing(recentTraces),
		iov: make([][]byte, 0, 64),
	}
	l.task = gnet.RunnableFunc(func(context.Context) error { l.onWatcher(); return nil })
	l.batchTask = gnet.RunnableFunc(func(context.Context) error {
		l.enter()
		l.runBatch()
		l.exit()
		return nil
	})
	go w.run(gel, l.task)
	return l, nil
}

// Index is the loop's position, 0-based.
func (l *Loop) Index() int { return l.idx }

// Now is the engine clock as of the current callback: read once when the
// callback began, so handlers can stamp events freely. Outside a callback
// it reads the clock. Loop-owned: call it only on the loop.
func (l *Loop) Now() int64 { return l.now() }

// now is the clock as of the current callback.
func (l *Loop) now() int64 {
	if l.depth == 0 {
		return Now()
	}
	return l.nowNs
}

func (l *Loop) enter() {
	if l.depth == 0 {
		l.nowNs = Now()
		l.callbacks++
	}
	l.depth++
}

// exit ends a callback. The outermost exit runs deferred work and flushes
// every connection written to during the callback, so many small writes
// leave as one writev.
func (l *Loop) exit() {
	if l.depth > 1 {
		l.depth--
		return
	}
	for len(l.runq) > 0 || len(l.dirty) > 0 {
		// By index, so the slice keeps its capacity; fn may append.
		for i := 0; i < len(l.runq); i++ {
			fn := l.runq[i]
			l.runq[i] = nil
			fn()
		}
		l.runq = l.runq[:0]
		for len(l.dirty) > 0 {
			c := l.dirty[len(l.dirty)-1]
			l.dirty[len(l.dirty)-1] = nil
			l.dirty = l.dirty[:len(l.dirty)-1]
			c.dirty = false
			c.flush()
		}
	}
	l.armTimer()
	l.depth--
}

// defer runs fn at the end of the current callback, after the code that
// asked for it has returned. Used to avoid re-entering a handler.
func (l *Loop) deferFn(fn func()) { l.runq = append(l.runq, fn) }

// Post runs fn on the loop. It is safe from any goroutine. It fails only when
// the gnet engine is shutting down.
func (l *Loop) Post(fn func()) error {
	return l.gel.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		l.enter()
		fn()
		l.exit()
		return nil
	}))
}

// AfterBatch runs fn on the loop once the loop has handled every event of
// its current batch (the sockets one epoll_wait reported), as a task gnet
// runs after them. What many events produce for one connection then
// leaves in one Write: the HTTP/2 frames of many upstream reads to one
// client make one TLS record and one writev (with 500 streams in flight,
// client-side writes per request went from 1 to about 0.15). fn runs once
// per call; a caller that may ask several times in a batch keeps its own
// flag. When the engine is stopping and the task cannot be posted, fn runs
// at the end of the current callback instead. Loop-owned.
func (l *Loop) AfterBatch(fn func()) {
	l.batchq = append(l.batchq, fn)
	if l.batchDue {
		return
	}
	l.batchDue = true
	if l.gel.Execute(context.Background(), l.batchTask) != nil {
		l.deferFn(l.runBatch)
	}
}

// OnDrain registers fn to run on this loop, once, when the process drain
// reaches it (Engine.DrainConnections), before any connection's
// Handler.OnDrain: the place for per-loop work such as closing pooled
// upstream connections, done once per loop instead of by each connection.
// Registered after that, fn runs at the end of the current callback.
// Loop-owned.
func (l *Loop) OnDrain(fn func()) {
	if l.drained {
		l.deferFn(fn)
		return
	}
	l.onDrain = append(l.onDrain, fn)
}

// Draining reports whether the drain has reached this loop (its OnDrain
// hooks ran). Loop-owned.
func (l *Loop) Draining() bool { return l.drained }

// drain is DrainConnections on this loop: the loop's hooks once, then
// every connection that can take it. A client handshake whose server
// flight is out is drained once it is done (tlsPump).
func (l *Loop) drain() {
	if !l.drained {
		l.drained = true
		hooks := l.onDrain
		l.onDrain = nil
		for _, fn := range hooks {
			fn()
		}
	}
	for _, c := range l.sortedConns() {
		if c.state < diag.ShutdownInitiated && !c.handshakeUnderWay() {
			c.h.OnDrain(c)
		}
	}
}

// runBatch runs the AfterBatch work queued so far; work queued while it
// runs waits for the next batch.
func (l *Loop) runBatch() {
	l.batchDue = false
	q := l.batchq
	l.batchq = l.batchSpare[:0]
	for i, fn := range q {
		q[i] = nil
		fn()
	}
	l.batchSpare = q[:0]
}

// armTimer points the timerfd at the earliest deadline if that moved earlier.
func (l *Loop) armTimer() {
	m := l.timers.min()
	if m == 0 {
		return
	}
	if l.armed == 0 || m < l.armed {
		l.armed = m
		l.w.arm(m)
	}
}

// onWatcher runs on the loop for each batch the watcher collected.
func (l *Loop) onWatcher() {
	ready, tick := l.w.take()
	l.enter()
	for _, tok := range ready {
		if c := l.conns[tok]; c != nil {
			c.onWritable()
		}
	}
	l.w.giveBack(ready)
	if tick {
		l.armed = 0
		l.runTimers()
	}
	l.exit()
}

func (l *Loop) runTimers() {
	now := l.nowNs
	for {
		t := l.timers.popDue(now)
		if t == nil {
			return
		}
		t.fire(now)
	}
}

func (l *Loop) record(t *diag.Trace) { l.recent.Add(t) }
