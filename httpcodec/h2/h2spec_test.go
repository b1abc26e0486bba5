package h2

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestH2Spec runs the h2spec conformance suite (github.com/summerwind/h2spec,
// pinned as a Go tool in go.mod) against a server-role Conn on a loopback
// TCP listener. H2SPEC names another binary; H2SPEC_STRICT=1 adds h2spec's
// strict mode (-S), which also checks SHOULDs.
func TestH2Spec(t *testing.T) {
	bin := os.Getenv("H2SPEC")
	if bin == "" {
		out, err := exec.Command("go", "tool", "-n", "h2spec").Output()
		if err != nil {
			t.Fatalf("building the pinned h2spec (go tool -n h2spec): %v", err)
		}
		bin = strings.TrimSpace(string(out))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			startLoop(t, nc, func(l *loop) *Conn {
				app := newServerApp()
				app.defer_ = true
				app.c = NewConn(Server, Config{}, app, time.Now())
				l.post = app.flushReady
				return app.c
			})
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-o", "3"}
	if os.Getenv("H2SPEC_STRICT") != "" {
		args = append(args, "-S")
	}
	cmd := exec.Command(bin, args...)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("h2spec: %v", err)
	}
}
