package main

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// Issue #9: a client whose ALPN offer is only http/1.0 is served as
// HTTP/1.x (it used to get a handshake failure, no_application_protocol):
// curl --http1.0 and a crypto/tls client offering only http/1.0.
func TestHTTP10ClientsOverTLS(t *testing.T) {
	up := httpBackend(t)
	p := startSluice(t, "-upstream", "http://"+up)

	c, err := tls.Dial("tcp", p.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.0"}})
	if err != nil {
		t.Fatalf("handshake offering only http/1.0: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if got := c.ConnectionState().NegotiatedProtocol; got != "http/1.0" {
		t.Fatalf("ALPN %q, want http/1.0", got)
	}
	io.WriteString(c, "GET /ten HTTP/1.0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body) // an HTTP/1.0 exchange ends with the connection
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), "backend saw GET /ten") {
		t.Fatalf("%d %q %v", resp.StatusCode, body, err)
	}

	curl := testutil.NeedTool(t, "curl")
	out, err := exec.Command(curl, "-sSkv", "--http1.0", "-w", "|%{http_version}", "https://"+p.addr+"/curl10").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "backend saw GET /curl10") || !strings.HasSuffix(string(out), "|1.1") ||
		!strings.Contains(string(out), "ALPN: server accepted http/1.0") {
		t.Fatalf("curl --http1.0: %v %s", err, out)
	}
}
