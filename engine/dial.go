package engine

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/sluice-proxy/sluice/tlsio"
)

var errEngineStopped = errors.New("engine: stopped")

type dialReq struct {
	h   Handler
	tls *tlsio.Client
}

// Dial connects to addr ("host:port") within timeout and registers the
// connection on this loop, so it can serve a downstream connection of the
// same loop without locks. On success h.OnOpen runs on the loop; on failure
// onErr does (a timeout is a net.Error with Timeout() true). Call on the loop
// or from any goroutine.
func (l *Loop) Dial(addr string, timeout time.Duration, h Handler, onErr func(error)) {
	l.dial(addr, timeout, nil, h, onErr)
}

// DialTLS is Dial with TLS: once connected, the connection runs a client
// handshake with cl (on a goroutine, as a listener's do), and h.OnOpen
// runs when it is done (Conn.TLSInfo is valid then). A failed handshake
// closes the connection with outcome TLSError (HandshakeTimeout after
// Config.HandshakeTimeout) without OnOpen: h sees OnClosed only. From then
// on it is like any TLS connection: Write seals, OnData gets plaintext,
// and the close sequence sends close_notify.
func (l *Loop) DialTLS(addr string, timeout time.Duration, cl *tlsio.Client, h Handler, onErr func(error)) {
	l.dial(addr, timeout, cl, h, onErr)
}

func (l *Loop) dial(addr string, timeout time.Duration, cl *tlsio.Client, h Handler, onErr func(error)) {
	l.e.met.dialsInFlight.Add(1)
	go func() {
		defer l.e.met.dialsInFlight.Add(-1)
		fail := func(err error, kind int) {
			l.e.met.dials[kind].Inc()
			_ = l.Post(func() { onErr(err) })
		}
		d := net.Dialer{Timeout: timeout}
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				fail(err, dialTimeout)
			} else {
				fail(err, dialError)
			}
			return
		}
		l.e.enrolls.RLock()
		defer l.e.enrolls.RUnlock()
		if l.e.stopped.Load() {
			nc.Close()
			fail(errEngineStopped, dialError)
			return
		}
		ctx := gnet.NewContext(context.Background(), &dialReq{h: h, tls: cl})
		ch, err := l.gel.Enroll(ctx, nc) // gnet dups the fd and closes nc
		if err != nil {
			nc.Close()
			fail(err, dialError)
			return
		}
		if res := <-ch; res.Err != nil {
			fail(res.Err, dialError)
		}
	}()
}
