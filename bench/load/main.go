package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-proxy/sluice/httpcodec/h1"
)

type options struct {
	url      *url.URL
	conns    int
	streams  int
	dur      time.Duration
	total    int64
	h2       bool
	insecure bool
	method   string
	body     int
	timeout  time.Duration
}

// result is what one worker measured.
type result struct {
	lat    []time.Duration
	codes  map[int]int64
	errs   map[string]int64
	bytes  int64
	reqs   int64
	failed int64
}

func (r *result) add(o *result) {
	r.lat = append(r.lat, o.lat...)
	for k, v := range o.codes {
		r.codes[k] += v
	}
	for k, v := range o.errs {
		r.errs[k] += v
	}
	r.bytes += o.bytes
	r.reqs += o.reqs
	r.failed += o.failed
}

func newResult() *result { return &result{codes: map[int]int64{}, errs: map[string]int64{}} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "load: %v\n", err)
		return 2
	}
	start := time.Now()
	var res *result
	if o.h2 {
		res = runH2(o)
	} else {
		res = runH1(o)
	}
	report(stdout, o, res, time.Since(start))
	if res.reqs == 0 {
		return 1
	}
	return 0
}

func parse(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	u := fs.String("url", "", "target URL (http:// or https://)")
	fs.IntVar(&o.conns, "c", 50, "connections")
	fs.IntVar(&o.streams, "m", 10, "concurrent streams per connection (-h2)")
	fs.DurationVar(&o.dur, "d", 10*time.Second, "duration (ignored when -n is given)")
	fs.Int64Var(&o.total, "n", 0, "total requests (0: run for -d)")
	fs.BoolVar(&o.h2, "h2", false, "HTTP/2 (ALPN h2 over https, prior knowledge over http)")
	fs.BoolVar(&o.insecure, "k", false, "do not verify the server certificate")
	fs.StringVar(&o.method, "method", "GET", "request method")
	fs.IntVar(&o.body, "body", 0, "request body size in bytes")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *u == "" {
		return nil, errors.New("-url is required")
	}
	var err error
	if o.url, err = url.Parse(*u); err != nil || (o.url.Scheme != "http" && o.url.Scheme != "https") || o.url.Host == "" {
		return nil, fmt.Errorf("-url %q: want http://host:port/path or https://host:port/path", *u)
	}
	if o.url.Port() == "" {
		o.url.Host = net.JoinHostPort(o.url.Hostname(), map[string]string{"http": "80", "https": "443"}[o.url.Scheme])
	}
	if o.conns < 1 || o.streams < 1 {
		return nil, errors.New("-c and -m must be positive")
	}
	if !h1.ValidMethod(o.method) {
		return nil, fmt.Errorf("-method %q: not a method token", o.method)
	}
	return o, nil
}

// budget hands out request slots: -n total, or until the deadline.
type budget struct {
	left     atomic.Int64
	deadline time.Time
}

func (b *budget) take() bool {
	if b.deadline.IsZero() {
		return b.left.Add(-1) >= 0
	}
	return time.Now().Before(b.deadline)
}

func newBudget(o *options) *budget {
	b := &budget{}
	if o.total > 0 {
		b.left.Store(o.total)
	} else {
		b.deadline = time.Now().Add(o.dur)
	}
	return b
}

func (o *options) tlsConfig(protos ...string) *tls.Config {
	return &tls.Config{InsecureSkipVerify: o.insecure, ServerName: o.url.Hostname(), NextProtos: protos}
}

func (o *options) target() string {
	t := o.url.RequestURI()
	if t == "" {
		t = "/"
	}
	return t
}

// ---- HTTP/1.1 ----

func runH1(o *options) *result {
	b := newBudget(o)
	req := fmt.Appendf(nil, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-load\r\n", o.method, o.target(), o.url.Host)
	if o.body > 0 {
		req = fmt.Appendf(req, "Content-Length: %d\r\n\r\n", o.body)
		req = append(req, bytes.Repeat([]byte("x"), o.body)...)
	} else {
		req = append(req, "\r\n"...)
	}
	out := newResult()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < o.conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newResult()
			h1Worker(o, b, req, r)
			mu.Lock()
			out.add(r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (o *options) dial() (net.Conn, error) {
	d := net.Dialer{Timeout: o.timeout}
	if o.url.Scheme == "https" {
		return tls.DialWithDialer(&d, "tcp", o.url.Host, o.tlsConfig("http/1.1"))
	}
	return d.Dial("tcp", o.url.Host)
}

func h1Worker(o *options, b *budget, req []byte, r *result) {
	var c net.Conn
	var p h1.Parser
	var resp h1.Response
	var dec h1.BodyDecoder
	buf := make([]byte, 64<<10)
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for b.take() {
		if c == nil {
			var err error
			if c, err = o.dial(); err != nil {
				r.fail("dial: " + errClass(err))
				time.Sleep(10 * time.Millisecond)
				continue
			}
		}
		start := time.Now()
		c.SetDeadline(start.Add(o.timeout))
		code, n, keep, err := roundTrip(c, req, buf, &p, &resp, &dec, o.method == "HEAD")
		if err != nil {
			r.fail(errClass(err))
			c.Close()
			c = nil
			continue
		}
		r.lat = append(r.lat, time.Since(start))
		r.codes[code]++
		r.bytes += n
		r.reqs++
		if !keep {
			c.Close()
			c = nil
		}
	}
}

// roundTrip writes req and reads one whole response.
func roundTrip(c net.Conn, req, buf []byte, p *h1.Parser, resp *h1.Response, dec *h1.BodyDecoder, head bool) (code int, body int64, keep bool, err error) {
	if _, err = c.Write(req); err != nil {
		return
	}
	p.Reset()
	have := 0
	m := h1.MethodOther
	if head {
		m = h1.MethodHEAD
	}
	var hn int
	for {
		n, rerr := c.Read(buf[have:])
		have += n
		hn, err = p.ParseResponse(resp, buf[:have], m)
		if err == nil {
			if resp.Status >= 100 && resp.Status < 200 && resp.Status != 101 {
				copy(buf, buf[hn:have])
				have -= hn
				p.Reset()
				continue
			}
			break
		}
		if err != h1.ErrNeedMore {
			return
		}
		if rerr != nil {
			err = rerr
			return
		}
		if have == len(buf) {
			err = errors.New("response head too large")
			return
		}
	}
	code = resp.Status
	keep = !resp.Close
	dec.ForResponse(resp)
	rest := buf[hn:have]
	for !dec.Done() {
		for len(rest) > 0 && !dec.Done() {
			data, k, derr := dec.Decode(rest)
			if derr != nil {
				err = derr
				return
			}
			body += int64(len(data))
			rest = rest[k:]
		}
		if dec.Done() {
			break
		}
		n, rerr := c.Read(buf)
		if n == 0 && rerr != nil {
			if rerr == io.EOF {
				err = dec.EOF()
				keep = false
				return
			}
			err = rerr
			return
		}
		rest = buf[:n]
	}
	if len(rest) > 0 {
		err = errors.New("bytes after the response")
	}
	return
}

// ---- HTTP/2 ----

func runH2(o *options) *result {
	b := newBudget(o)
	out := newResult()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < o.conns; i++ {
		// HTTP/2 only (h2c with prior knowledge for http://), one
		// connection per transport: all its streams share it.
		var p http.Protocols
		p.SetHTTP2(true)
		p.SetUnencryptedHTTP2(true)
		tr := &http.Transport{TLSClientConfig: o.tlsConfig("h2"), Protocols: &p,
			HTTP2: &http.HTTP2Config{StrictMaxConcurrentRequests: true}}
		client := &http.Client{Transport: tr, Timeout: o.timeout}
		for s := 0; s < o.streams; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := newResult()
				h2Worker(o, b, client, r)
				mu.Lock()
				out.add(r)
				mu.Unlock()
			}()
		}
		defer tr.CloseIdleConnections()
	}
	wg.Wait()
	return out
}

func h2Worker(o *options, b *budget, client *http.Client, r *result) {
	body := bytes.Repeat([]byte("x"), o.body)
	for b.take() {
		var rd io.Reader
		if o.body > 0 {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequest(o.method, o.url.String(), rd)
		if err != nil {
			r.fail(err.Error())
			return
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			r.fail(errClass(err))
			continue
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			r.fail(errClass(err))
			continue
		}
		r.lat = append(r.lat, time.Since(start))
		r.codes[resp.StatusCode]++
		r.bytes += n
		r.reqs++
	}
}

// ---- report ----

func (r *result) fail(why string) {
	r.failed++
	r.errs[why]++
}

func errClass(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

func report(w io.Writer, o *options, r *result, took time.Duration) {
	proto := "HTTP/1.1"
	if o.h2 {
		proto = "HTTP/2"
	}
	fmt.Fprintf(w, "target      %s (%s, %d connections", o.url, proto, o.conns)
	if o.h2 {
		fmt.Fprintf(w, " x %d streams", o.streams)
	}
	fmt.Fprintf(w, ")\n")
	fmt.Fprintf(w, "requests    %d in %v (%d failed)\n", r.reqs, took.Round(time.Millisecond), r.failed)
	fmt.Fprintf(w, "throughput  %.1f req/s, %.2f MiB/s body\n", float64(r.reqs)/took.Seconds(), float64(r.bytes)/took.Seconds()/(1<<20))
	if len(r.lat) > 0 {
		sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
		pct := func(p float64) time.Duration { return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))] }
		fmt.Fprintf(w, "latency     p50 %v  p90 %v  p99 %v  max %v\n", pct(0.5), pct(0.9), pct(0.99), r.lat[len(r.lat)-1])
	}
	codes := make([]int, 0, len(r.codes))
	for c := range r.codes {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "status %d  %d\n", c, r.codes[c])
	}
	for e, n := range r.errs {
		fmt.Fprintf(w, "error %-20s %d\n", e, n)
	}
}
