package interop

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// The hyper client → sluice → the hyper server, every pairing of client
// protocol (TLS h1, TLS h2, h2c on the plaintext port) and upstream kind:
// 1,000 requests each, bodies 0 B to 1 MiB both ways (most small, 2% of a
// MiB), uploads streamed in 16 KiB chunks with and without a length,
// streamed responses, h2 trailers end to end where both sides speak h2.
// Zero errors on either side, every checksum equal (the client checks
// each), then a drain: sluice exits 0 and every pooled connection it held
// to the server ended with close_notify (TLS) or FIN, never a reset.
func TestHyperMatrix(t *testing.T) {
	needPeers(t)
	c := testutil.WriteCerts(t, t.TempDir())
	for _, cl := range []string{"h1", "h2", "h2c"} {
		for _, up := range []string{"http", "h2c", "h2", "https"} {
			t.Run(cl+"_to_"+up, func(t *testing.T) {
				srv := startServer(t, serverProto(up), c)
				s := startSluice(t, c, upstreamURL(up, srv.addr))
				args := append(clientArgs(s, cl, c), "--mix", "load", "--requests", "1000", "--size", strconv.Itoa(1<<20))
				if cl == "h1" {
					args = append(args, "--concurrency", "16")
				} else {
					args = append(args, "--concurrency", "32", "--conns", "2", "--trailers")
				}
				bothH2 := cl != "h1" && (up == "h2c" || up == "h2")
				if bothH2 {
					args = append(args, "--expect-trailers")
				}
				sum := runClient(t, 4*time.Minute, args...)
				if sum.BytesUp < 10<<20 || sum.BytesDown < 20<<20 {
					t.Errorf("moved only %d bytes up, %d down: the size mix did not run", sum.BytesUp, sum.BytesDown)
				}
				t.Logf("%d requests in %d ms over %d connections; %d MiB up, %d MiB down", sum.OK, sum.Ms, sum.Conns, sum.BytesUp>>20, sum.BytesDown>>20)
				s.drain(t, 30*time.Second)
				checkUpstreamEnds(t, srv.stop(t), srv.tls)
			})
		}
	}
}

// An upstream that answers every request with Connection: close: sluice
// dials anew each time, and the hyper client, whose connections stay up,
// sees no error.
func TestHyperUpstreamConnectionClose(t *testing.T) {
	needPeers(t)
	c := testutil.WriteCerts(t, t.TempDir())
	for _, cl := range []string{"h1", "h2"} {
		for _, up := range []string{"http", "https"} {
			t.Run(cl+"_to_"+up, func(t *testing.T) {
				srv := startServer(t, serverProto(up), c)
				s := startSluice(t, c, upstreamURL(up, srv.addr))
				runClient(t, time.Minute, append(clientArgs(s, cl, c), "--mix", "close", "--requests", "100", "--concurrency", "4")...)
				ends := srv.ends(t)
				if len(ends) < 100 {
					t.Errorf("the server saw %d connections end for 100 Connection: close responses", len(ends))
				}
				s.drain(t, 30*time.Second)
				checkUpstreamEnds(t, srv.stop(t), srv.tls)
			})
		}
	}
}

// sluice's idle timeout on an idle keep-alive connection: the hyper
// client waits past it between requests; sluice closes with close_notify
// (after a GOAWAY on h2), the client sees a clean end and reconnects.
// Over TLS every close must carry close_notify; on h2c a FIN.
// -pool-idle-timeout closes sluice's pooled upstream connections, which
// the server must see end with close_notify or FIN while sluice runs.
func TestHyperIdleTimeoutClose(t *testing.T) {
	needPeers(t)
	c := testutil.WriteCerts(t, t.TempDir())
	for _, cl := range []string{"h1", "h2", "h2c"} {
		for _, up := range []string{"http", "h2", "https"} {
			t.Run(cl+"_to_"+up, func(t *testing.T) {
				srv := startServer(t, serverProto(up), c)
				s := startSluice(t, c, upstreamURL(up, srv.addr), "-idle-timeout", "700ms", "-pool-idle-timeout", "700ms")
				sum := runClient(t, time.Minute, append(clientArgs(s, cl, c), "--mix", "bytes", "--size", "20000",
					"--requests", "8", "--concurrency", "2", "--conns", "2", "--idle-ms", "1500")...)
				// 2 workers, 4 rounds, a wait before each after the first:
				// the first three rounds' connections were closed by sluice.
				closed := sum.CloseNotify
				if cl == "h2c" {
					closed = sum.Fin
				}
				if closed < 6 || sum.Conns < 8 {
					t.Errorf("sluice closed %d idle connections cleanly (eof close_notify %d, fin %d) of %d opened; want at least 6 of 8", closed, sum.CloseNotify, sum.Fin, sum.Conns)
				}
				// The pooled upstream connections close at idle too, while
				// sluice still runs.
				deadline := time.Now().Add(5 * time.Second)
				for len(srv.ends(t)) == 0 && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
				checkUpstreamEnds(t, srv.ends(t), srv.tls)
				s.drain(t, 30*time.Second)
				checkUpstreamEnds(t, srv.stop(t), srv.tls)
			})
		}
	}
}

// SIGTERM in the middle of 200 concurrent streaming responses (2 s each):
// every one completes whole (h1: Connection: close on each; h2: GOAWAY,
// each stream finishes), the client sees no error, sluice exits 0, and the
// upstream connections end with close_notify at the drain's end.
func TestHyperDrainMidFlight(t *testing.T) {
	needPeers(t)
	c := testutil.WriteCerts(t, t.TempDir())
	for _, cl := range []string{"h1", "h2"} {
		for _, up := range []string{"h2c", "h2", "https"} {
			t.Run(cl+"_to_"+up, func(t *testing.T) {
				srv := startServer(t, serverProto(up), c)
				s := startSluice(t, c, upstreamURL(up, srv.addr))
				args := append(clientArgs(s, cl, c), "--mix", "slow", "--requests", "200", "--concurrency", "200", "--conns", "4")
				p := startClient(t, args...)
				p.WaitLine(t, "HEADS 200", time.Minute)
				s.Signal(t, syscall.SIGTERM)
				sum, code := finishClient(t, p, time.Minute)
				if code != 0 || sum.OK != 200 || sum.Errors != 0 {
					t.Fatalf("drain mid-flight: client exit %d, %d of 200 ok:\n%s\nsluice:\n%s", code, sum.OK, tail(p.Output(), 30), tail(s.Output(), 30))
				}
				if code := s.Wait(t, 30*time.Second); code != 0 {
					t.Fatalf("sluice exit %d:\n%s", code, tail(s.Output(), 30))
				}
				if strings.Contains(s.Output(), "forced_at_deadline") {
					t.Errorf("the drain forced connections:\n%s", tail(s.Output(), 30))
				}
				checkUpstreamEnds(t, srv.stop(t), srv.tls)
			})
		}
	}
}

// The upstream process dies a quarter of the way through a 1 MiB
// response: the hyper client must see an error (h1: the connection ends
// short of the length; h2: the stream is reset), never a clean end.
func TestHyperUpstreamDiesMidResponse(t *testing.T) {
	needPeers(t)
	c := testutil.WriteCerts(t, t.TempDir())
	for _, cl := range []string{"h1", "h2"} {
		for _, up := range []string{"http", "h2c", "h2", "https"} {
			t.Run(cl+"_to_"+up, func(t *testing.T) {
				srv := startServer(t, serverProto(up), c)
				s := startSluice(t, c, upstreamURL(up, srv.addr))
				p := startClient(t, append(clientArgs(s, cl, c), "--mix", "die", "--requests", "1", "--concurrency", "1", "--size", strconv.Itoa(1<<20))...)
				sum, code := finishClient(t, p, time.Minute)
				if code != 0 || sum.Errors != 0 {
					t.Fatalf("client exit %d:\n%s", code, p.Output())
				}
				l := p.WaitLine(t, "EXPECTED-ERROR", time.Second)
				t.Logf("the client saw: %s", l)
				if srv.Wait(t, 10*time.Second) != 3 {
					t.Errorf("the server did not die as planned:\n%s", srv.Output())
				}
			})
		}
	}
}

// The client's own check: a TLS server that answers and then ends the
// TCP stream without close_notify makes the hyper client exit 1 naming
// it; the same server closing with close_notify passes. (Without this
// the close checks above could not fail.)
func TestHyperClientNamesMissingCloseNotify(t *testing.T) {
	needPeers(t)
	c := testutil.WriteCerts(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, notify := range []bool{false, true} {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		serve := func(conn net.Conn) {
			tc := conn.(*tls.Conn)
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			req, err := http.ReadRequest(bufio.NewReader(tc))
			if err != nil {
				tc.NetConn().Close()
				return
			}
			body := make([]byte, 100)
			for i := range body {
				body[i] = byte(i)
			}
			fmt.Fprintf(tc, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Body-Sha256: %s\r\n\r\n", sha(body))
			tc.Write(body)
			_ = req
			time.Sleep(200 * time.Millisecond)
			if notify {
				tc.Close() // close_notify, then FIN
			} else {
				tc.NetConn().Close() // FIN alone
			}
		}
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go serve(conn)
			}
		}()
		// The second request waits a second: the server closes the first
		// connection while it is idle.
		p := startClient(t, "--addr", ln.Addr().String(), "--proto", "h1", "--tls", "--sni", "localhost", "--ca", c.CA,
			"--mix", "bytes", "--size", "100", "--requests", "2", "--concurrency", "1", "--idle-ms", "1000")
		_, code := finishClient(t, p, 30*time.Second)
		named := strings.Contains(p.Output(), "missing close_notify")
		if notify && (code != 0 || named) {
			t.Errorf("with close_notify: exit %d:\n%s", code, p.Output())
		}
		if !notify && (code != 1 || !named) {
			t.Errorf("without close_notify: exit %d, want 1 naming it:\n%s", code, p.Output())
		}
	}
}
