package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-proxy/sluice/internal/testutil"
)

// runBin runs the real binary to completion (bounded) and returns its exit
// status, stdout and stderr.
func runBin(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Errorf("%v: still running after 5s (it should have refused to start)", args)
		return -1, stdout.String(), stderr.String()
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// The operator's mistakes of issue #15: each one line naming the flag and
// what is wrong, exit status 2, nothing started.
func TestCLIMistakesExit2WithOneLine(t *testing.T) {
	a, b := testutil.FreePort(t), testutil.FreePort(t)
	port := a[strings.LastIndexByte(a, ':'):]
	cases := []struct {
		args []string
		want []string // all in the one line
	}{
		{[]string{"-listen", a, "-listen-plain", a, "-admin", b}, []string{"-listen", "-listen-plain", "same address"}},
		{[]string{"-listen", port, "-listen-plain", "127.0.0.1" + port, "-admin", b}, []string{"-listen", "-listen-plain", "same address"}},
		{[]string{"-listen", a, "-admin", a}, []string{"-listen", "-admin", "same address"}},
		{[]string{"-listen", "unix:/tmp/sluice.sock", "-admin", b}, []string{"-listen", "unix sockets are not supported", "host:port"}},
		{[]string{"-listen", "127.0.0.1:https", "-admin", b}, []string{"-listen", "port"}},
		{[]string{"-idle-timeout", "5"}, []string{"-idle-timeout", "unit", "5s"}},
		{[]string{"-drain-timeout", "soon"}, []string{"-drain-timeout", "not a duration"}},
		{[]string{"-loops", "two"}, []string{"-loops", "whole number"}},
		{[]string{"-lock-loops=maybe"}, []string{"-lock-loops", "true or false"}},
		{[]string{"-trusted-proxies", "10.0.0.0/8,bogus"}, []string{"-trusted-proxies", `"bogus"`}},
		{[]string{"-upstream", "http://127.0.0.1:1/path"}, []string{`-upstream "http://127.0.0.1:1/path"`, "only scheme, host and port"}},
	}
	for _, tc := range cases {
		code, _, stderr := runBin(t, tc.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", tc.args, code, stderr)
			continue
		}
		if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
			t.Errorf("%v: want exactly one line, got %q", tc.args, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: %q does not say %q", tc.args, stderr, w)
			}
		}
		if strings.Contains(stderr, "route") {
			t.Errorf("%v: %q mentions a route the user never wrote", tc.args, stderr)
		}
	}
}

// JSON logs write durations as seconds (floats), not bare nanoseconds.
func TestJSONLogDurationsInSeconds(t *testing.T) {
	p := startSluice(t, "-log-format", "json")
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}}
	resp, err := cl.Get("https://" + p.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	cl.CloseIdleConnections()
	var line map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for line == nil && time.Now().Before(deadline) {
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(l, `"msg":"request"`) {
				if err := json.Unmarshal([]byte(l), &line); err != nil {
					t.Fatalf("bad JSON line %q: %v", l, err)
				}
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if line == nil {
		t.Fatalf("no access log line\n%s", p.stderr)
	}
	// The access log's fields for operators (proxy/accesslog.go).
	for k, want := range map[string]string{"user_agent": "Go-http-client/1.1", "tls_version": "TLS 1.3", "alpn": "http/1.1", "route": "/"} {
		if line[k] != want {
			t.Errorf("access log %s = %v, want %q", k, line[k], want)
		}
	}
	if id, _ := line["request_id"].(string); len(id) != 24 {
		t.Errorf("access log request_id = %v, want a generated id", line["request_id"])
	}
	for _, k := range []string{"duration", "upstream_header"} {
		v, ok := line[k].(float64)
		if !ok {
			t.Fatalf("%s = %v (%T), want a number", k, line[k], line[k])
		}
		// A loopback request takes well under 5 s; in nanoseconds it
		// would be thousands at least.
		if v < 0 || v > 5 || v == float64(int64(v)) && v != 0 {
			t.Errorf("%s = %v: not seconds", k, v)
		}
	}
}

// The real binary's /metrics, every package's families included (engine,
// proxy, shutdown, process), read by Prometheus's own text parser: each
// family typed and described.
func TestBinaryMetricsParseAsPrometheus(t *testing.T) {
	p := startSluice(t)
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	tp := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("Prometheus text parser: %v", err)
	}
	for _, want := range []string{"sluice_connections_accepted_total", "sluice_http_request_duration_seconds", "sluice_drain_phase", "process_resident_memory_bytes"} {
		if fams[want] == nil {
			t.Errorf("no family %s", want)
		}
	}
	for name, f := range fams {
		if f.Type == nil || f.GetType() == dto.MetricType_UNTYPED {
			t.Errorf("%s: untyped", name)
		}
		if strings.TrimSpace(f.GetHelp()) == "" {
			t.Errorf("%s: no help text (diag/metrichelp.go)", name)
		}
	}
}
