package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// -drain-delay: after SIGTERM /readyz answers 503 at once, while new
// connections are still accepted and served for the delay; then the
// listeners close, and sluice exits. The phases are logged and shown in
// /debug/connections and the sluice_drain_phase gauge.
func TestDrainDelayKeepsServing(t *testing.T) {
	up := httpBackend(t)
	const delay = 1500 * time.Millisecond
	p := startSluice(t, "-upstream", "http://"+up, "-drain-delay", delay.String(), "-drain-timeout", "10s")
	url := "https://" + p.addr + "/bytes?n=100000"
	get := func() (int, error) {
		// A new connection each time: the listener must still accept.
		c := insecureClient()
		c.Transport.(*http.Transport).DisableKeepAlives = true
		resp, err := c.Get(url)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && len(b) != 100000 {
			t.Errorf("body %d bytes", len(b))
		}
		return resp.StatusCode, err
	}
	if code, err := get(); code != 200 {
		t.Fatalf("before the signal: %d %v", code, err)
	}
	sent := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	waitLog(t, p, "phase=NotReady")
	if code := httpStatus("http://" + p.admin + "/readyz"); code != 503 {
		t.Fatalf("/readyz in the lame-duck phase: %d", code)
	}
	if v := adminMetric(t, p, "sluice_drain_phase"); v != "1" {
		t.Fatalf("sluice_drain_phase %q in the lame-duck phase", v)
	}
	resp, err := http.Get("http://" + p.admin + "/debug/connections")
	if err != nil {
		t.Fatal(err)
	}
	var snap struct {
		Drain struct{ Phase string } `json:"drain"`
	}
	err = json.NewDecoder(resp.Body).Decode(&snap)
	resp.Body.Close()
	if err != nil || snap.Drain.Phase != "NotReady" {
		t.Fatalf("/debug/connections drain %+v, %v", snap.Drain, err)
	}
	served := 0
	for time.Since(sent) < delay-300*time.Millisecond {
		if code, err := get(); code != 200 {
			t.Fatalf("%v after the signal, within the delay: %d %v\n%s", time.Since(sent), code, err, p.stderr)
		}
		served++
		time.Sleep(100 * time.Millisecond)
	}
	code, took := p.wait(t, 10*time.Second)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr)
	}
	if el := time.Since(sent); el < delay {
		t.Fatalf("exited %v after the signal, before the %v delay", el, delay)
	}
	t.Logf("%d new connections served in the delay; exited %v later", served, took)
	if _, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
		t.Fatal("still accepting after exit")
	}
	log := p.stderr.String()
	for _, ph := range []string{"NotReady", "StopAccepting", "Draining", "Done"} {
		if strings.Count(log, "phase="+ph+" ") != 1 {
			t.Errorf("phase %s logged %d times\n%s", ph, strings.Count(log, "phase="+ph+" "), log)
		}
	}
	if strings.Contains(log, "phase=Forcing") {
		t.Errorf("forced\n%s", log)
	}
}
