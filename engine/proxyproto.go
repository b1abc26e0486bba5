package engine

import (
	"errors"
	"net"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/httpcodec/proxyproto"
)

// The PROXY protocol (HAProxy, versions 1 and 2): a load balancer in
// front of sluice opens each connection with a header naming the client's
// address, so logs, traces and X-Forwarded-For show the client rather
// than the balancer. A listener with ProxyProtocol set requires the
// header: the connection's handler is chosen (and a TLS handshake
// started) only once it has been read, and a connection without a valid
// header, or that does not send one within FirstByteTimeout of accept, is
// closed; until the header is complete the connection is waiting, as a
// silent one is (admission.go).
// Only trusted balancers should be able to reach such a listener: the
// header is taken at its word. The parser is httpcodec/proxyproto; this
// file is the waiting for it.

// ppState is a connection whose PROXY header is still being read.
type ppState struct {
	ln  *Listener
	buf []byte
}

// ppRead takes bytes of a connection still waiting for its header. Once
// the header is complete it accepts the connection for real and hands the
// bytes after it on.
func (c *Conn) ppRead(b []byte) {
	p := c.pp
	in := b
	if len(p.buf) > 0 {
		p.buf = append(p.buf, b...)
		in = p.buf
	}
	h, err := proxyproto.Parse(in)
	if err == proxyproto.ErrNeedMore {
		if len(p.buf) == 0 {
			p.buf = append(p.buf, b...)
		}
		return
	}
	if err != nil {
		var pe *proxyproto.Error
		errors.As(err, &pe)
		c.ppFailed(pe.Reason, err)
		return
	}
	rest := in[h.Len:]
	c.pp = nil
	c.stopWaiting()
	e := c.l.e
	e.met.proxyProto(ppResultVersion(h))
	if h.Src.IsValid() {
		c.lb = c.remote
		c.remote = net.TCPAddrFromAddrPort(h.Src)
	}
	// Behind a balancer the client may still say nothing: TLS waits for
	// its first byte again (acceptFrom).
	c.acceptFrom(p.ln)
	if c.tls == nil {
		c.openHandler()
	}
	if len(rest) > 0 && c.state < diag.SocketClosed && !c.socketClosing {
		c.dispatchRead(rest)
	}
}

func ppResultVersion(h proxyproto.Header) int {
	if h.Version == 1 {
		return ppV1
	}
	return ppV2
}

// ppFailed closes a connection whose header was bad or did not come.
func (c *Conn) ppFailed(reason string, err error) {
	c.pp = nil
	e := c.l.e
	e.met.proxyProtoFailed(reason)
	e.log.Info("proxy protocol header rejected", "conn", diag.ConnID(c.id), "remote", addrString(c.remote),
		"reason", reason, "err", err)
	c.Close(diag.ProtocolError)
}
