package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// tool runs a command with a deadline and returns its combined output.
func tool(t *testing.T, stdin []byte, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// header returns a response header's value from curl -D output (the last
// response's, if there were several).
func header(dump, name string) string {
	v := ""
	for _, l := range strings.Split(dump, "\n") {
		if k, val, ok := strings.Cut(strings.TrimRight(l, "\r"), ":"); ok && strings.EqualFold(k, name) {
			v = strings.TrimSpace(val)
		}
	}
	return v
}

// curl through sluice to the hyper server, on each client protocol and
// upstream kind: a 1 MiB download checked against the server's checksum,
// a 1 MiB -T upload (with a length) and a chunked one (-T - from stdin:
// chunked on HTTP/1.1, no length on h2), each echoed whole.
func TestCurlThroughSluiceToHyper(t *testing.T) {
	needPeers(t)
	curl := testutil.NeedTool(t, "curl")
	c := testutil.WriteCerts(t, t.TempDir())
	dir := t.TempDir()
	up := make([]byte, 1<<20)
	for i := range up {
		up[i] = byte(i*7 + i>>11)
	}
	upFile := filepath.Join(dir, "up.bin")
	if err := os.WriteFile(upFile, up, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"http", "h2"} {
		t.Run("to_"+kind, func(t *testing.T) {
			srv := startServer(t, serverProto(kind), c)
			s := startSluice(t, c, upstreamURL(kind, srv.addr))
			_, port, _ := net.SplitHostPort(s.Addr)
			tlsArgs := []string{"--cacert", c.CA, "--resolve", "localhost:" + port + ":127.0.0.1"}
			for _, mode := range []struct{ name, flag, base, ver string }{
				{"http1.1", "--http1.1", "https://localhost:" + port, "1.1"},
				{"http2", "--http2", "https://localhost:" + port, "2"},
				{"http2-prior-knowledge", "--http2-prior-knowledge", "http://" + s.plain, "2"},
			} {
				args := []string{"-sS", "--max-time", "60", mode.flag, "-w", "%{http_code} %{http_version}\n"}
				if strings.HasPrefix(mode.base, "https") {
					args = append(args, tlsArgs...)
				}
				for _, op := range []struct {
					name  string
					extra []string
					stdin []byte
					want  string // the checksum the response must carry
				}{
					{"get", []string{mode.base + "/bytes?n=1048576&seed=5"}, nil, ""},
					{"upload", []string{"-T", upFile, mode.base + "/echo"}, nil, sha(up)},
					{"chunked-upload", []string{"-T", "-", mode.base + "/echo"}, up, sha(up)},
				} {
					hdr, body := filepath.Join(dir, "h"), filepath.Join(dir, "b")
					out, err := tool(t, op.stdin, curl, append(append(append([]string{}, args...), "-D", hdr, "-o", body), op.extra...)...)
					what := mode.name + " " + op.name
					if err != nil {
						t.Fatalf("%s: curl: %v\n%s", what, err, out)
					}
					if want := "200 " + mode.ver; strings.TrimSpace(out) != want {
						t.Fatalf("%s: curl printed %q, want %q", what, out, want)
					}
					h, _ := os.ReadFile(hdr)
					b, _ := os.ReadFile(body)
					if op.want == "" {
						if got := header(string(h), "x-body-sha256"); got != sha(b) || len(b) != 1<<20 {
							t.Errorf("%s: %d bytes, sha256 %s; the server sent %s", what, len(b), sha(b), got)
						}
						continue
					}
					if got := header(string(h), "x-request-sha256"); got != op.want {
						t.Errorf("%s: the server received sha256 %s, want %s (x-request-bytes %s)", what, got, op.want, header(string(h), "x-request-bytes"))
					}
					if !bytes.Equal(b, up) {
						t.Errorf("%s: echoed %d bytes, not the upload", what, len(b))
					}
				}
			}
			s.drain(t, 30*time.Second)
			checkUpstreamEnds(t, srv.stop(t), srv.tls)
		})
	}
}

// nghttp and h2load over TLS (ALPN h2) and h2c through sluice to the
// hyper h2 and h2c servers: every response 200, none failed or errored.
func TestH2LoadAndNghttpThroughSluiceToHyper(t *testing.T) {
	needPeers(t)
	h2load := testutil.NeedTool(t, "h2load")
	nghttp := testutil.NeedTool(t, "nghttp")
	c := testutil.WriteCerts(t, t.TempDir())
	for _, kind := range []string{"h2c", "h2"} {
		t.Run("to_"+kind, func(t *testing.T) {
			srv := startServer(t, serverProto(kind), c)
			s := startSluice(t, c, upstreamURL(kind, srv.addr))
			for _, base := range []string{"https://" + s.Addr, "http://" + s.plain} {
				out, err := tool(t, nil, h2load, "-n", "2000", "-c", "4", "-m", "10", base+"/bytes?n=20000")
				if err != nil {
					t.Fatalf("h2load %s: %v\n%s", base, err, out)
				}
				m := regexp.MustCompile(`requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored`).FindStringSubmatch(out)
				if m == nil || m[1] != "2000" || m[3] != "2000" || m[4] != "0" || m[5] != "0" {
					t.Fatalf("h2load %s: want 2000 succeeded, 0 failed, 0 errored:\n%s", base, out)
				}
				if !strings.Contains(out, "status codes: 2000 2xx") {
					t.Fatalf("h2load %s: not 2000 2xx:\n%s", base, out)
				}
				out, err = tool(t, nil, nghttp, "-nv", base+"/bytes?n=100000", base+"/slow?chunks=5&ms=20&size=1000", base+"/bytes?n=0")
				if err != nil {
					t.Fatalf("nghttp %s: %v\n%s", base, err, out)
				}
				if n := strings.Count(out, ":status: 200"); n != 3 {
					t.Fatalf("nghttp %s: %d responses with :status 200, want 3:\n%s", base, n, out)
				}
				if strings.Contains(out, "RST_STREAM") || strings.Contains(out, "error_code=") && !strings.Contains(out, "error_code=NO_ERROR") {
					t.Fatalf("nghttp %s saw a reset or an error:\n%s", base, out)
				}
			}
			s.drain(t, 30*time.Second)
			checkUpstreamEnds(t, srv.stop(t), srv.tls)
		})
	}
}

// openssl s_client (TLS 1.2 and 1.3) and gnutls-cli speak HTTP/1.1
// through sluice to the hyper server. -msg shows the close both ways:
// sluice's close_notify after its Connection: close response, and the
// client's own, which sluice reads in its linger before its FIN.
func TestOpenSSLAndGnuTLSThroughSluiceToHyper(t *testing.T) {
	needPeers(t)
	openssl := testutil.NeedTool(t, "openssl")
	gnutls := testutil.NeedTool(t, "gnutls-cli")
	c := testutil.WriteCerts(t, t.TempDir())
	srv := startServer(t, "h1", c)
	s := startSluice(t, c, upstreamURL("http", srv.addr))
	_, port, _ := net.SplitHostPort(s.Addr)
	req := []byte("GET /bytes?n=5000&seed=3 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
	closeAlert := regexp.MustCompile(`(?m)^(<<<|>>>) TLS 1\.[23],? Alert \[length 0002\], warning close_notify`)
	for _, v := range []string{"-tls1_2", "-tls1_3"} {
		out, err := tool(t, req, openssl, "s_client", v, "-msg", "-ign_eof", "-connect", s.Addr, "-servername", "localhost",
			"-CAfile", c.CA, "-verify_return_error", "-alpn", "http/1.1")
		if err != nil {
			t.Fatalf("openssl s_client %s: %v\n%s", v, err, tail(out, 40))
		}
		if !strings.Contains(out, "HTTP/1.1 200 OK") || !strings.Contains(out, "Verify return code: 0 (ok)") {
			t.Fatalf("openssl s_client %s: no verified 200:\n%s", v, tail(out, 40))
		}
		dirs := map[string]bool{}
		for _, m := range closeAlert.FindAllStringSubmatch(out, -1) {
			dirs[m[1]] = true
		}
		if !dirs["<<<"] || !dirs[">>>"] {
			t.Fatalf("openssl s_client %s: close_notify received %v, sent %v; want both:\n%s", v, dirs["<<<"], dirs[">>>"], tail(out, 40))
		}
	}
	out, err := tool(t, req, gnutls, "--x509cafile", c.CA, "--alpn", "http/1.1", "-p", port, "localhost")
	if err != nil {
		t.Fatalf("gnutls-cli: %v\n%s", err, tail(out, 40))
	}
	if !strings.Contains(out, "HTTP/1.1 200 OK") || !strings.Contains(out, "- Peer has closed the GnuTLS connection") {
		t.Fatalf("gnutls-cli: want a 200 and a peer close_notify (\"Peer has closed the GnuTLS connection\"):\n%s", tail(out, 40))
	}
	if cl := header(out, "content-length"); cl != strconv.Itoa(5000) {
		t.Errorf("gnutls-cli: content-length %q", cl)
	}
	s.drain(t, 30*time.Second)
	checkUpstreamEnds(t, srv.stop(t), false)
}

// python3 with python3-h2 (Debian's; a pyenv python on PATH may lack it).
func h2Python(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if path, err := exec.LookPath(p); err == nil && exec.Command(path, "-c", "import h2").Run() == nil {
			return path
		}
	}
	t.Skip("no python3 with the h2 module (Debian python3-h2; .ci/run installs it)")
	return ""
}

// The python3-h2 edge cases through sluice (TLS, ALPN h2) to the hyper h2
// server: a zero initial window then WINDOW_UPDATEs, request and response
// trailers end to end, and a client RST_STREAM mid-response after which
// the connection goes on (h2edge.py).
func TestPythonH2EdgeCasesThroughSluiceToHyper(t *testing.T) {
	needPeers(t)
	py := h2Python(t)
	c := testutil.WriteCerts(t, t.TempDir())
	for _, kind := range []string{"h2", "h2c"} {
		t.Run("to_"+kind, func(t *testing.T) {
			srv := startServer(t, serverProto(kind), c)
			s := startSluice(t, c, upstreamURL(kind, srv.addr))
			host, port, _ := net.SplitHostPort(s.Addr)
			for _, cs := range []string{"zero-window", "trailers", "rst"} {
				out, err := tool(t, nil, py, "h2edge.py", host, port, c.CA, cs)
				if err != nil || !strings.HasSuffix(strings.TrimSpace(out), "OK") {
					t.Errorf("%s: %v\n%s", cs, err, out)
				}
			}
			s.drain(t, 30*time.Second)
			checkUpstreamEnds(t, srv.stop(t), srv.tls)
		})
	}
}
