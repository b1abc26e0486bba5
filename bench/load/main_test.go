package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestLoadHTTP1AndHTTP2(t *testing.T) {
	var hits, posts atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			n, _ := io.Copy(io.Discard, r.Body)
			if n == 100 {
				posts.Add(1)
			}
		}
		hits.Add(1)
		w.Write(bytes.Repeat([]byte("z"), 1024))
	})
	srv := httptest.NewUnstartedServer(h)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	defer srv.Close()
	tlsSrv := httptest.NewUnstartedServer(h)
	tlsSrv.EnableHTTP2 = true
	tlsSrv.StartTLS()
	defer tlsSrv.Close()

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-url", srv.URL + "/x", "-c", "4", "-n", "200"}, "requests    200 "},
		{[]string{"-url", tlsSrv.URL + "/x", "-c", "4", "-n", "200", "-k"}, "requests    200 "},
		{[]string{"-url", srv.URL + "/x", "-c", "2", "-n", "50", "-method", "POST", "-body", "100"}, "requests    50 "},
		{[]string{"-url", srv.URL + "/x", "-h2", "-c", "2", "-m", "5", "-n", "200"}, "requests    200 "},
		{[]string{"-url", tlsSrv.URL + "/x", "-h2", "-c", "2", "-m", "5", "-n", "200", "-k"}, "requests    200 "},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s %s", tc.args, code, out.String(), errb.String())
		}
		s := out.String()
		if !strings.Contains(s, tc.want) || !strings.Contains(s, "(0 failed)") || !strings.Contains(s, "status 200") {
			t.Fatalf("%v:\n%s", tc.args, s)
		}
	}
	if hits.Load() != 850 || posts.Load() != 50 {
		t.Fatalf("server saw %d requests, %d full POST bodies", hits.Load(), posts.Load())
	}
}

func TestLoadBadFlags(t *testing.T) {
	for _, args := range [][]string{{}, {"-url", "ftp://x"}, {"-url", "http://x", "-c", "0"}, {"-url", "http://x", "-method", "G T"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 || strings.Count(errb.String(), "\n") != 1 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
}
