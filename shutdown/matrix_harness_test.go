package shutdown_test

// The fault matrix of issue #12 (matrix_test.go) runs sluice's engine and
// HTTP proxy with a TLS listener on 127.0.0.1, a net/http backend, and
// clients written here (HTTP/1.1 over crypto/tls, HTTP/2 with x/net's
// Framer), then drives a process drain through the shutdown coordinator
// exactly as cmd/sluice does. A test-only import of proxy: the shutdown
// package itself imports only engine.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-proxy/sluice/diag"
	"github.com/sluice-proxy/sluice/engine"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/shutdown"
	"github.com/sluice-proxy/sluice/tlsio"

	"github.com/sluice-proxy/sluice/internal/testutil"

	"github.com/sluice-proxy/sluice/internal/testutil/enginetest"
)

// body returns the n-byte response body for seed: deterministic, so a
// client checks its checksum without the server telling it.
func body(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := mrand.New(mrand.NewPCG(seed, 77))
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func bodySum(seed uint64, n int) [32]byte { return sha256.Sum256(body(seed, n)) }

// backend serves /b?n=N&seed=S (Content-Length, one write) and, with
// hold=1, waits for release first.
type backend struct {
	*httptest.Server
	release chan struct{}
	once    sync.Once
	arrived chan struct{}
}

func newBackend(t *testing.T) *backend {
	be := &backend{release: make(chan struct{}), arrived: make(chan struct{}, 1024)}
	be.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		n, _ := strconv.Atoi(q.Get("n"))
		seed, _ := strconv.ParseUint(q.Get("seed"), 10, 64)
		be.arrived <- struct{}{}
		if q.Get("hold") == "1" {
			<-be.release
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(body(seed, n))
	}))
	t.Cleanup(func() { be.open(); be.Close() })
	return be
}

func (be *backend) open() { be.once.Do(func() { close(be.release) }) }

// waitArrived waits until n requests reached the backend.
func (be *backend) waitArrived(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-be.arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d requests reached the backend", i, n)
		}
	}
}

// logSink collects the engine's JSON log lines (and echoes them with
// SLUICE_TEST_LOG set).
type logSink struct{ testutil.Buffer }

func (l *logSink) Write(p []byte) (int, error) {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		os.Stderr.Write(p)
	}
	return l.Buffer.Write(p)
}

// mx is one sluice for one case.
type mx struct {
	t    *testing.T
	e    *engine.Engine
	set  *metrics.Set
	logs *logSink
	addr string // TLS listener
	be   *backend
	co   *shutdown.Coordinator
	res  chan shutdown.Result
	// asked is closed when DrainConnections has returned: every loop has
	// told its connections to finish.
	asked chan struct{}
	// drainAt is the engine clock when the drain's Draining phase began.
	drainAt int64
}

type knobs struct {
	ecfg    engine.Config
	hcfg    proxy.HTTPConfig
	timeout time.Duration // drain deadline (default 10s)
}

func start(t *testing.T, k knobs) *mx {
	t.Helper()
	m := &mx{t: t, set: metrics.NewSet(), logs: &logSink{}, be: newBackend(t), res: make(chan shutdown.Result, 1)}
	lg := slog.New(slog.NewJSONHandler(m.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := testutil.TLSServer(t, testutil.SelfSigned(t), tlsio.ServerConfig{NextProtos: []string{"h2", "http/1.1"}})
	hc := k.hcfg
	hc.Routes = []proxy.Route{{PathPrefix: "/", Upstreams: []string{strings.TrimPrefix(m.be.URL, "http://")}}}
	hc.Logger = lg
	hc.AccessLog = slog.New(slog.DiscardHandler)
	h, err := proxy.NewHTTP(hc, proxy.NewMetrics(m.set))
	if err != nil {
		t.Fatal(err)
	}
	ec := k.ecfg
	ec.Loops = 2
	ec.Logger = lg
	ec.Metrics = m.set
	ec.Listeners = []engine.Listener{{Name: "tls", Addr: "127.0.0.1:0", Accept: h.Accept, TLS: srv}}
	m.e = enginetest.Start(t, ec)
	t.Cleanup(h.Close) // before the engine's Stop (cleanups run last first)
	m.addr = m.e.Addr("tls")
	if k.timeout == 0 {
		k.timeout = 10 * time.Second
	}
	m.asked = make(chan struct{})
	m.co = shutdown.New(shutdown.Config{Drainer: askedTarget{m.e, m.asked}, Timeout: k.timeout, Logger: lg, Metrics: m.set})
	return m
}

// drain starts the process drain (as SIGTERM does) and returns once the
// connections have been asked to finish. The Draining phase begins just
// before the loops are asked, so waiting for the phase alone let a
// response the test releases next race the loop's drain task (seen under
// load: a response without Connection: close).
func (m *mx) drain() {
	go func() { m.res <- m.co.Run(nil) }()
	for m.co.Phase() < shutdown.Draining {
		time.Sleep(100 * time.Microsecond)
	}
	m.drainAt = engine.Now()
	select {
	case <-m.asked:
	case <-time.After(5 * time.Second):
		m.t.Fatal("the loops were not asked to drain within 5s")
	}
}

// askedTarget is the engine as the coordinator's Drainer, reporting when
// DrainConnections has returned.
type askedTarget struct {
	*engine.Engine
	asked chan struct{}
}

func (a askedTarget) DrainConnections(ctx context.Context) error {
	defer close(a.asked)
	return a.Engine.DrainConnections(ctx)
}

// done waits for the drain to end.
func (m *mx) done(d time.Duration) shutdown.Result {
	m.t.Helper()
	select {
	case r := <-m.res:
		return r
	case <-time.After(d):
		m.t.Fatalf("drain still running after %v: phase %v, %d connections", d, m.co.Phase(), m.e.Live())
	}
	return shutdown.Result{}
}

// agree checks that the outcome counters and the "connection closed" log
// lines of client connections say the same, outcome by outcome.
func (m *mx) agree() map[string]int {
	m.t.Helper()
	logged := map[string]int{}
	for _, l := range m.logs.JSONLines() {
		if l["msg"] == "connection closed" && l["side"] == "downstream" {
			logged[l["outcome"].(string)]++
		}
	}
	var sb strings.Builder
	m.set.WritePrometheus(&sb)
	counted := map[string]int{}
	for _, line := range strings.Split(sb.String(), "\n") {
		rest, ok := strings.CutPrefix(line, `sluice_connection_closes_total{outcome="`)
		if !ok {
			continue
		}
		name, val, _ := strings.Cut(rest, `"} `)
		if n, _ := strconv.Atoi(val); n > 0 {
			counted[name] = n
		}
	}
	if fmt.Sprint(logged) != fmt.Sprint(counted) {
		m.t.Errorf("closes counted %v, logged %v", counted, logged)
	}
	return counted
}

// ---- HTTP/1.1 over TLS ----

func (m *mx) dialTLS(proto string) *tls.Conn {
	m.t.Helper()
	c, err := tls.Dial("tcp", m.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{proto}})
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

func get1(seed uint64, n int, extra string) string {
	return fmt.Sprintf("GET /b?n=%d&seed=%d%s HTTP/1.1\r\nHost: t\r\n\r\n", n, seed, extra)
}

// readResp1 reads one HTTP/1.1 response, checking its body's checksum.
func readResp1(t *testing.T, br *bufio.Reader, seed uint64, n int) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("response head: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || len(b) != n || sha256.Sum256(b) != bodySum(seed, n) {
		t.Fatalf("response body: %d of %d bytes, checksum ok %v, err %v", len(b), n, err == nil && len(b) == n && sha256.Sum256(b) == bodySum(seed, n), err)
	}
	return resp
}

// ---- HTTP/2 over TLS ----

type h2c struct {
	t   *testing.T
	c   *tls.Conn
	fr  *http2.Framer
	hdr *testutil.HeaderBlock
	// per stream: body hash, bytes, ended
	got   map[uint32]*h2body
	goway []*http2.GoAwayFrame
}

type h2body struct {
	h     []byte
	n     int
	ended bool
	reset bool
	buf   bytes.Buffer
}

func (m *mx) dialH2() *h2c {
	m.t.Helper()
	return m.h2Over(m.dialTLS("h2"))
}

func (r *h2c) get(id uint32, seed uint64, n int, extra string) {
	r.t.Helper()
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndStream: true, EndHeaders: true,
		BlockFragment: r.hdr.Encode(":method", "GET", ":scheme", "https", ":authority", "t",
			":path", fmt.Sprintf("/b?n=%d&seed=%d%s", n, seed, extra))}); err != nil {
		r.t.Fatal(err)
	}
}

// next reads one frame, answering PINGs and SETTINGS, recording bodies.
func (r *h2c) next() (http2.Frame, error) {
	f, err := testutil.ReadH2Frame(r.fr)
	if err != nil {
		return nil, err
	}
	switch f := f.(type) {
	case *http2.GoAwayFrame:
		r.goway = append(r.goway, f)
	case *http2.DataFrame:
		b := r.body(f.StreamID)
		b.buf.Write(f.Data())
		b.n += len(f.Data())
		if f.StreamEnded() {
			b.ended = true
		}
	case *http2.MetaHeadersFrame:
		if f.StreamEnded() {
			r.body(f.StreamID).ended = true
		}
	case *http2.RSTStreamFrame:
		r.body(f.StreamID).reset = true
	}
	return f, nil
}

func (r *h2c) body(id uint32) *h2body {
	b := r.got[id]
	if b == nil {
		b = &h2body{}
		r.got[id] = b
	}
	return b
}

// until reads frames until cond holds; it returns the read error if the
// connection ends first.
func (r *h2c) until(cond func() bool) error {
	for !cond() {
		if _, err := r.next(); err != nil {
			return err
		}
	}
	return nil
}

// whole checks that stream id ended with the right body.
func (r *h2c) whole(id uint32, seed uint64, n int) {
	r.t.Helper()
	b := r.got[id]
	if b == nil || !b.ended || b.reset || b.n != n || sha256.Sum256(b.buf.Bytes()) != bodySum(seed, n) {
		if b == nil {
			r.t.Fatalf("stream %d: nothing", id)
		}
		r.t.Fatalf("stream %d: %d of %d bytes, ended %v, reset %v, checksum ok %v", id, b.n, n, b.ended, b.reset,
			sha256.Sum256(b.buf.Bytes()) == bodySum(seed, n))
	}
}

// endsCleanly reads to the end of the connection: a TLS close_notify
// then EOF, and nothing that is not a GOAWAY, PING or SETTINGS.
func (r *h2c) endsCleanly() {
	r.t.Helper()
	for {
		f, err := r.next()
		if err == io.EOF {
			return
		}
		if err != nil {
			r.t.Fatalf("connection end: %v", err)
		}
		switch f.(type) {
		case *http2.GoAwayFrame, *http2.PingFrame, *http2.SettingsFrame:
		default:
			r.t.Fatalf("connection end: unexpected %v", f)
		}
	}
}

func localOf(c net.Conn) string { return c.LocalAddr().String() }

// dialRaw dials TCP with a small receive buffer, then TLS over it; the
// TCP conn is returned too, for resets.
func (m *mx) dialRaw(proto string, rcvbuf int) (*net.TCPConn, *tls.Conn) {
	m.t.Helper()
	nc, err := net.Dial("tcp", m.addr)
	if err != nil {
		m.t.Fatal(err)
	}
	tc := nc.(*net.TCPConn)
	if rcvbuf > 0 {
		tc.SetReadBuffer(rcvbuf)
	}
	c := tls.Client(tc, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{proto}})
	m.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.Handshake(); err != nil {
		m.t.Fatal(err)
	}
	return tc, c
}

// h2Over speaks HTTP/2 on an established TLS conn.
func (m *mx) h2Over(c *tls.Conn) *h2c {
	h, err := testutil.StartH2(c, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	if err != nil {
		m.t.Fatal(err)
	}
	h.Fr.WriteWindowUpdate(0, 1<<31-1-65535)
	return &h2c{t: m.t, c: c, fr: h.Fr, hdr: &h.HeaderBlock, got: map[uint32]*h2body{}}
}

// raw returns the engine trace of the client connection at local.
func (m *mx) raw(local string) diag.Trace {
	m.t.Helper()
	var got diag.Trace
	deadline := time.Now().Add(10 * time.Second)
	for got.ID == 0 && time.Now().Before(deadline) {
		m.e.RecentCloses(context.Background(), func(t *diag.Trace) bool {
			if t.Side == diag.Downstream && t.Remote == local {
				got = *t
			}
			return false
		})
		if got.ID == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if got.ID == 0 {
		m.t.Fatalf("no close trace for %s", local)
	}
	return got
}

// within checks that the trace entered state st no later than bound (+50
// ms) after from (engine clock).
func (m *mx) within(tr diag.Trace, st diag.State, from int64, bound time.Duration) {
	m.t.Helper()
	at := tr.Entered[st]
	if at == 0 {
		m.t.Errorf("c%x (%v) never entered %v", tr.ID, tr.Outcome, st)
		return
	}
	if late := time.Duration(at - from); late > bound+50*time.Millisecond {
		m.t.Errorf("c%x (%v) entered %v %v after its start, deadline %v + 50ms", tr.ID, tr.Outcome, st, late, bound)
	}
}

// paced reads r at rate bytes/s into a hash until n bytes or an error.
func paced(r io.Reader, n, rate int) ([]byte, error) {
	var out bytes.Buffer
	buf := make([]byte, 4<<10)
	step := time.Duration(float64(time.Second) * float64(len(buf)) / float64(rate))
	next := time.Now()
	for out.Len() < n {
		k, err := r.Read(buf[:min(len(buf), n-out.Len())])
		out.Write(buf[:k])
		if err != nil {
			return out.Bytes(), err
		}
		next = next.Add(step)
		time.Sleep(time.Until(next))
	}
	return out.Bytes(), nil
}

func newDecoder() *hpack.Decoder { return hpack.NewDecoder(4096, nil) }

// pacedReader reads at most rate bytes/s.
type pacedReader struct {
	r    io.Reader
	rate int
	next time.Time
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.next.IsZero() {
		p.next = time.Now()
	}
	time.Sleep(time.Until(p.next))
	n, err := p.r.Read(b[:min(len(b), 4<<10)])
	p.next = p.next.Add(time.Duration(float64(time.Second) * float64(n) / float64(p.rate)))
	return n, err
}

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc.(*net.TCPConn)
}
