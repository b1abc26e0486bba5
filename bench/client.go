package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

// Error kinds a report counts (beside HTTP statuses).
const (
	errDialRefused = "dial_refused"
	errDialTimeout = "dial_timeout"
	errDial        = "dial_error"
	errTLS         = "tls_handshake"
	errNoH2        = "no_h2_alpn"
	errResumed     = "tls_resumed"
	errTimeout     = "timeout"
	// errUnprocessed: the protocol says the target did not process the
	// request, so a client may retry it: an HTTP/2 stream refused
	// (REFUSED_STREAM, or above a GOAWAY's last stream id), or an HTTP/1.1
	// keep-alive connection that had answered before and closed before any
	// response byte: the server may have closed it as idle while the
	// request was on its way (RFC 9112 §9.3.1). HTTP/1.1 gives the client
	// no way to tell that race from a dropped request (the EOF's delay
	// was seen up to 47 ms on a loaded machine, so no time bound helps);
	// HTTP/2's GOAWAY last stream id makes the count exact, which is why
	// loss checks should run over HTTP/2.
	errUnprocessed = "unprocessed"
	// errLost: a request that may have been processed got no response: the
	// first request on a connection closed before any response byte, or an
	// HTTP/2 stream the target accepted and then reset or dropped.
	errLost = "lost"
	// errTruncated: the response began and did not end whole.
	errTruncated   = "truncated"
	errBadResponse = "bad_response"
	errH2          = "h2_conn_error"
)

// isLoss says whether an error kind is a response lost to the client.
func isLoss(kind string) bool { return kind == errLost || kind == errTruncated || kind == errTimeout }

// dialKind classifies a failed connect.
func dialKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return errDialRefused
	case errors.As(err, &ne) && ne.Timeout():
		return errDialTimeout
	}
	return errDial
}

// isTimeout says whether err is a deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// tlsConfig is the client side: no session cache, so every handshake is
// full (Go's client resumes only from a ClientSessionCache).
func (o *Options) tlsConfig(protos ...string) *tls.Config {
	c := &tls.Config{InsecureSkipVerify: o.Insecure, ServerName: o.URL.Hostname(), NextProtos: protos,
		SessionTicketsDisabled: true}
	if o.TLSVer != 0 {
		c.MinVersion, c.MaxVersion = o.TLSVer, o.TLSVer
	}
	return c
}

// connect dials the target and, for https, runs the handshake with ALPN
// h2 or http/1.1. The error is already a kind.
func (o *Options) connect(ctx context.Context, d *dialer) (net.Conn, string) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	c, err := d.dial(ctx, o.URL.Host)
	if err != nil {
		return nil, dialKind(err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		if o.Mode == ModeSlowRead {
			// A small receive buffer, so the slow reader is felt by the
			// target and not absorbed by the kernel's autotuning.
			tc.SetReadBuffer(max(4096, min(o.ReadRate, 256<<10)))
		}
	}
	if o.URL.Scheme != "https" {
		return c, ""
	}
	proto := "http/1.1"
	if o.H2 {
		proto = "h2"
	}
	tc := tls.Client(c, o.tlsConfig(proto))
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		if isTimeout(err) || ctx.Err() != nil {
			return nil, errDialTimeout
		}
		return nil, errTLS
	}
	if o.H2 && tc.ConnectionState().NegotiatedProtocol != "h2" {
		tc.Close()
		return nil, errNoH2
	}
	return tc, ""
}

// h1Request is the request bytes every HTTP/1.1 connection sends.
func (o *Options) h1Request() []byte {
	req := fmt.Appendf(nil, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-bench\r\n", o.Method, o.target(), o.URL.Host)
	for _, h := range o.Headers {
		name, value, _ := strings.Cut(h, ":")
		req = fmt.Appendf(req, "%s: %s\r\n", strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if o.Body > 0 || o.Method == "POST" || o.Method == "PUT" {
		req = fmt.Appendf(req, "Content-Length: %d\r\n", o.Body)
	}
	req = append(req, "\r\n"...)
	return append(req, bytes.Repeat([]byte("x"), o.Body)...)
}

// h1Conn is one HTTP/1.1 client connection with its parser state.
type h1Conn struct {
	c    net.Conn
	p    h1.Parser
	resp h1.Response
	dec  h1.BodyDecoder
	buf  []byte
	used int // requests answered on it
	head bool
	ttfb time.Time // first response byte of the last roundTrip
}

func newH1Conn(c net.Conn, head bool) *h1Conn {
	return &h1Conn{c: c, buf: make([]byte, 32<<10), head: head}
}

// exchange is one request and its whole response. The error, if any, is
// a kind; got says whether any response byte arrived.
type exchange struct {
	status int
	body   int64
	keep   bool
	kind   string
}

// roundTrip writes req and reads one whole response (interim 1xx
// responses skipped). A reader that is not nil paces the body reads
// (slowread).
func (h *h1Conn) roundTrip(req []byte, pace func(n int) int) (x exchange) {
	got := false
	h.ttfb = time.Time{}
	defer func() {
		if x.kind != "" {
			x.keep = false
			switch {
			case x.kind == errTimeout || x.kind == errBadResponse:
			case got:
				x.kind = errTruncated
			case h.used > 0:
				x.kind = errUnprocessed
			default:
				x.kind = errLost
			}
		}
	}()
	fail := func(err error) exchange {
		if isTimeout(err) {
			return exchange{kind: errTimeout}
		}
		return exchange{kind: errLost}
	}
	if _, err := h.c.Write(req); err != nil {
		return fail(err)
	}
	h.p.Reset()
	have := 0
	m := h1.MethodOther
	if h.head {
		m = h1.MethodHEAD
	}
	var hn int
	for {
		n, rerr := h.c.Read(h.buf[have:])
		if n > 0 {
			if !got {
				h.ttfb = time.Now()
			}
			got = true
		}
		have += n
		var err error
		hn, err = h.p.ParseResponse(&h.resp, h.buf[:have], m)
		if err == nil {
			if h.resp.Status >= 100 && h.resp.Status < 200 && h.resp.Status != 101 {
				copy(h.buf, h.buf[hn:have])
				have -= hn
				h.p.Reset()
				continue
			}
			break
		}
		if err != h1.ErrNeedMore {
			return exchange{kind: errBadResponse}
		}
		if rerr != nil {
			return fail(rerr)
		}
		if have == len(h.buf) {
			return exchange{kind: errBadResponse}
		}
	}
	x.status = h.resp.Status
	x.keep = !h.resp.Close
	h.dec.ForResponse(&h.resp)
	rest := h.buf[hn:have]
	for {
		for len(rest) > 0 && !h.dec.Done() {
			data, k, derr := h.dec.Decode(rest)
			if derr != nil {
				return exchange{kind: errBadResponse}
			}
			x.body += int64(len(data))
			rest = rest[k:]
		}
		if h.dec.Done() {
			break
		}
		want := len(h.buf)
		if pace != nil {
			want = max(1, min(want, pace(0)))
		}
		n, rerr := h.c.Read(h.buf[:want])
		if pace != nil && n > 0 {
			pace(n)
		}
		if n == 0 && rerr != nil {
			if rerr == io.EOF && h.dec.EOF() == nil {
				x.keep = false // an until-close body ended
				break
			}
			return fail(rerr)
		}
		rest = h.buf[:n]
	}
	if len(rest) > 0 {
		return exchange{kind: errBadResponse}
	}
	h.used++
	return x
}
