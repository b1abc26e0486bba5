package main

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/tlsio"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-port", "4000", "-shim-id", "7", "-server", "-cert-file", "c", "-key-file", "k",
		"-tls-engine", "stdlib", "-resume-count", "1", "-expect-version", "772",
		"-on-resume-expect-session-miss", "-on-initial-expect-alpn", "h2", "-no-tls13"})
	if err != nil {
		t.Fatal(err)
	}
	if o.port != "4000" || o.shimID != "7" || o.engine != "stdlib" || o.resumeCount != 1 {
		t.Fatalf("parsed %+v", o)
	}
	if o.initial.version != 772 || o.resume.version != 772 {
		t.Errorf("unscoped -expect-version: initial %d resume %d", o.initial.version, o.resume.version)
	}
	if o.initial.sessionMiss || !o.resume.sessionMiss || o.initial.alpn != "h2" || o.resume.alpn != "" {
		t.Errorf("scoped expectations: initial %+v resume %+v", o.initial, o.resume)
	}
	if lo, hi, err := o.versions(); err != nil || lo != tls.VersionTLS12 || hi != tls.VersionTLS12 {
		t.Errorf("versions with -no-tls13: %#x %#x %v", lo, hi, err)
	}

	base := []string{"-port", "1", "-server", "-cert-file", "c", "-key-file", "k"}
	for _, args := range [][]string{
		append(base, "-curves", "29"),                       // a config sluice has no knob for
		append(base, "-on-resume-no-ticket"),                // config that differs per connection
		append(base, "-on-retry-expect-version", "1"),       // ECH retries
		{"-port", "1", "-cert-file", "c", "-key-file", "k"}, // client role
	} {
		if _, err := parseFlags(args); !errors.Is(err, errUnimplemented) {
			t.Errorf("%q: err %v, want errUnimplemented", args, err)
		}
	}
	for _, args := range [][]string{
		append(base, "-tls-engine", "openssl"),
		append(base, "-expect-version"),
		append(base, "-min-version", "x"),
	} {
		if _, err := parseFlags(args); err == nil || errors.Is(err, errUnimplemented) {
			t.Errorf("%q: err %v, want a usage error", args, err)
		}
	}
	o, _ = parseFlags(append(base, "-max-version", "770"))
	if _, _, err := o.versions(); !errors.Is(err, errUnimplemented) {
		t.Errorf("TLS 1.1 at most: err %v, want errUnimplemented", err)
	}
}

// TestServeEcho runs the pump against a crypto/tls client on both engines:
// the handshake completes, each byte comes back XOR 0xff, the checks see
// the negotiated session and a clean close ends serve without error.
func TestServeEcho(t *testing.T) {
	kp, err := tlsio.SelfSigned(time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	store, err := tlsio.NewCertStore(kp)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		engine  string
		version uint16
		exp     expectations
		fail    bool
	}{
		{"native", tls.VersionTLS13, expectations{version: tls.VersionTLS13, alpn: "x", serverName: "example.test"}, false},
		{"native", tls.VersionTLS12, expectations{version: tls.VersionTLS12}, false},
		{"stdlib", tls.VersionTLS13, expectations{version: tls.VersionTLS13, curve: int(tls.X25519MLKEM768)}, false},
		{"native", tls.VersionTLS13, expectations{alpn: "y"}, true},
		{"stdlib", tls.VersionTLS13, expectations{version: tls.VersionTLS12}, true},
	} {
		srv, err := tlsio.NewServer(tlsio.ServerConfig{Certs: store, Engine: tc.engine, NextProtos: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() {
			nc, err := ln.Accept()
			if err != nil {
				served <- err
				return
			}
			defer nc.Close()
			served <- serve(nc, srv.NewConn, &options{}, tc.exp, true)
		}()
		cc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true,
			ServerName: "example.test", NextProtos: []string{"x"}, MaxVersion: tc.version})
		ln.Close()
		if err != nil {
			t.Fatalf("%s: dial: %v", tc.engine, err)
		}
		cc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := cc.Write([]byte{0x00, 0x0f, 0xff}); err != nil {
			t.Fatalf("%s: write: %v", tc.engine, err)
		}
		got := make([]byte, 3)
		_, rerr := io.ReadFull(cc, got)
		cc.Close()
		err = <-served
		if tc.fail {
			if err == nil || rerr == nil {
				t.Errorf("%s %+v: serve %v, client read %v; want both to fail", tc.engine, tc.exp, err, rerr)
			}
			continue
		}
		if rerr != nil || string(got) != "\xff\xf0\x00" {
			t.Errorf("%s: echo %x, %v", tc.engine, got, rerr)
		}
		if err != nil {
			t.Errorf("%s: serve: %v", tc.engine, err)
		}
	}
}
