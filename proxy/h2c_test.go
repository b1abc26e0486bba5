package proxy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// grpcEcho is a gRPC-shaped handler: it echoes every line of the request
// body as soon as it arrives (flushing), then ends with trailers.
func grpcEcho(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/grpc")
	w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
	w.WriteHeader(200)
	w.(http.Flusher).Flush()
	br := bufio.NewReader(r.Body)
	n := 0
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			n++
			io.WriteString(w, "echo:"+line)
			w.(http.Flusher).Flush()
		}
		if err != nil {
			break
		}
	}
	w.Header().Set("Grpc-Status", "0")
	w.Header().Set("Grpc-Message", fmt.Sprintf("%d messages", n))
}

// A bidirectional stream through sluice to an h2c upstream: each message
// is echoed back before the next one is sent (so nothing waits for the
// whole body), then the trailers arrive.
func TestH2CBidiStreamingTrailers(t *testing.T) {
	be := h2cServe(t, http.HandlerFunc(grpcEcho))
	env := h2Start(t, HTTPConfig{}, be.url())
	for _, c := range []struct {
		name string
		cl   *http.Client
		url  string
	}{{"h2c", h2cClient(), env.h2cURL("/svc/Echo")}, {"tls", h2TLSClient(), env.tlsURL("/svc/Echo")}} {
		t.Run(c.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			req, _ := http.NewRequest("POST", c.url, pr)
			req.Header.Set("Content-Type", "application/grpc")
			req.Header.Set("Te", "trailers")
			type result struct {
				resp *http.Response
				err  error
			}
			done := make(chan result, 1)
			go func() {
				resp, err := c.cl.Do(req)
				done <- result{resp, err}
			}()
			io.WriteString(pw, "m0\n")
			var resp *http.Response
			select {
			case r := <-done:
				if r.err != nil {
					t.Fatal(r.err)
				}
				resp = r.resp
			case <-time.After(10 * time.Second):
				t.Fatal("no response head while the request body is still open")
			}
			br := bufio.NewReader(resp.Body)
			for i := 0; i < 20; i++ {
				if i > 0 {
					fmt.Fprintf(pw, "m%d\n", i)
				}
				line, err := br.ReadString('\n')
				if err != nil || line != fmt.Sprintf("echo:m%d\n", i) {
					t.Fatalf("message %d: %q %v", i, line, err)
				}
			}
			pw.Close()
			rest, err := io.ReadAll(br)
			if err != nil || len(rest) != 0 {
				t.Fatalf("after the last message: %q %v", rest, err)
			}
			resp.Body.Close()
			if g, m := resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message"); g != "0" || m != "20 messages" {
				t.Fatalf("trailers %v", resp.Trailer)
			}
			if v := resp.Header.Get("Via"); v != "2.0 sluice" {
				t.Errorf("Via %q", v)
			}
		})
	}
	// One connection per loop at most (each loop has its own pool): the
	// streams are multiplexed.
	if n := be.conns.Load(); n > 2 {
		t.Errorf("upstream connections %d, want at most 2 (one per loop)", n)
	}
}

// An HTTP/1.1 client to an h2c upstream: translated both ways; trailers
// come in the last chunk.
func TestH1ToH2CTranslation(t *testing.T) {
	be := h2cServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			t.Errorf("upstream got %s", r.Proto)
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Via", r.Header.Get("Via"))
		fmt.Fprintf(w, "%s %s len=%d", r.Method, r.URL.RequestURI(), len(body))
		w.Header().Set("X-Sum", fmt.Sprintf("%x", sha256.Sum256(body)))
	}))
	env := h2Start(t, HTTPConfig{}, be.url())
	cl := hpClient()
	body := make([]byte, 3<<20)
	rand.Read(body)
	for i := 0; i < 3; i++ {
		resp, err := cl.Post(env.url(fmt.Sprintf("/up?i=%d", i)), "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf("POST /up?i=%d len=%d", i, len(body))
		if resp.StatusCode != 200 || string(got) != want {
			t.Fatalf("%d %q, want %q", resp.StatusCode, got, want)
		}
		if s := resp.Trailer.Get("X-Sum"); s != fmt.Sprintf("%x", sha256.Sum256(body)) {
			t.Fatalf("trailer X-Sum %q", s)
		}
		if h := resp.Header.Get("X-Host"); !strings.HasPrefix(h, "127.0.0.1:") {
			t.Errorf("upstream Host %q", h)
		}
		if v := resp.Header.Get("X-Via"); v != "1.1 sluice" {
			t.Errorf("upstream Via %q", v)
		}
		if v := resp.Header.Get("Via"); v != "2.0 sluice" {
			t.Errorf("response Via %q", v)
		}
	}
	if n := be.conns.Load(); n != 1 {
		t.Errorf("upstream connections %d, want 1", n)
	}
}
