package proxy

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-proxy/sluice/diag"
)

// /metrics as Prometheus reads it: parsed with Prometheus's own text
// parser, every family has a type and help text, histograms have le
// buckets, counters end in _total, times are in seconds, and requests
// are labelled by route and upstream.
func TestMetricsExposition(t *testing.T) {
	api := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api") }))
	web := hpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "web") }))
	apiR, err := ParseRoute("api:/api/=" + api.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	webR, err := ParseRoute("example.com/=" + web.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	env := hpStart(t, HTTPConfig{Routes: []Route{apiR, webR}})
	cl := &http.Client{Timeout: 5 * time.Second}
	get := func(host, path string, want int) {
		req, _ := http.NewRequest("GET", env.url(path), nil)
		req.Host = host
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s%s: %d, want %d", host, path, resp.StatusCode, want)
		}
	}
	get("a.test", "/api/1", 200)
	get("a.test", "/api/2", 200)
	get("example.com", "/page", 200)
	get("a.test", "/nowhere", 404)

	a, err := diag.NewAdmin("127.0.0.1:0", env.e, slog.New(slog.DiscardHandler), env.set)
	if err != nil {
		t.Fatal(err)
	}
	go a.Serve()
	t.Cleanup(func() { a.Close(t.Context()) })
	resp, err := cl.Get("http://" + a.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "vmrange") {
		t.Error("/metrics has VictoriaMetrics vmrange buckets; Prometheus needs le")
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("Prometheus text parser: %v", err)
	}
	if len(fams) < 50 {
		t.Fatalf("only %d families", len(fams))
	}
	for name, f := range fams {
		typ := f.GetType()
		if f.Type == nil || typ == dto.MetricType_UNTYPED {
			t.Errorf("%s: untyped (no # TYPE)", name)
		}
		if strings.TrimSpace(f.GetHelp()) == "" {
			t.Errorf("%s: no # HELP text (add it to diag/metrichelp.go)", name)
		}
		if (typ == dto.MetricType_COUNTER) != strings.HasSuffix(name, "_total") {
			t.Errorf("%s: type %v; counters, and only counters, end in _total", name, typ)
		}
		for _, bad := range []string{"_ms", "_milliseconds", "_microseconds", "_us", "_ns", "_kb", "_mb"} {
			if strings.HasSuffix(strings.TrimSuffix(name, "_total"), bad) {
				t.Errorf("%s: not in base units (seconds, bytes)", name)
			}
		}
		if strings.Contains(name, "duration") && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("%s: a duration not in seconds", name)
		}
		if typ == dto.MetricType_HISTOGRAM {
			for _, m := range f.Metric {
				h := m.GetHistogram()
				if len(h.GetBucket()) < 5 {
					t.Errorf("%s%v: %d le buckets", name, m.Label, len(h.GetBucket()))
				}
			}
		}
	}
	labels := func(m *dto.Metric) map[string]string {
		l := map[string]string{}
		for _, lp := range m.Label {
			l[lp.GetName()] = lp.GetValue()
		}
		return l
	}
	find := func(fam string, want map[string]string) *dto.Metric {
		f := fams[fam]
		if f == nil {
			t.Fatalf("no family %s", fam)
		}
	next:
		for _, m := range f.Metric {
			l := labels(m)
			for k, v := range want {
				if l[k] != v {
					continue next
				}
			}
			return m
		}
		t.Errorf("%s: no series with %v", fam, want)
		return &dto.Metric{}
	}
	apiUp, webUp := api.Listener.Addr().String(), web.Listener.Addr().String()
	for _, tc := range []struct {
		l map[string]string
		n float64
	}{
		{map[string]string{"route": "api", "upstream": apiUp, "proto": "http/1.1", "code": "200"}, 2},
		{map[string]string{"route": "example.com/", "upstream": webUp, "proto": "http/1.1", "code": "200"}, 1},
		{map[string]string{"route": "", "upstream": "", "proto": "http/1.1", "code": "404"}, 1},
	} {
		if v := find("sluice_http_requests_total", tc.l).GetCounter().GetValue(); v != tc.n {
			t.Errorf("sluice_http_requests_total%v = %v, want %v", tc.l, v, tc.n)
		}
	}
	h := find("sluice_http_request_duration_seconds", map[string]string{"route": "api", "upstream": apiUp}).GetHistogram()
	if h.GetSampleCount() != 2 {
		t.Errorf("sluice_http_request_duration_seconds{route=api}: count %d, want 2", h.GetSampleCount())
	}
	if b := h.GetBucket(); len(b) == 0 || b[len(b)-1].GetCumulativeCount() != 2 {
		t.Errorf("sluice_http_request_duration_seconds{route=api}: buckets %v", b)
	}
}

// The Grafana dashboard in deploy/ queries only metrics sluice exposes.
func TestGrafanaDashboardNamesExist(t *testing.T) {
	b, err := os.ReadFile("../deploy/grafana/sluice-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\b(sluice|process|go)_[a-z0-9_]+`)
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, name := range re.FindAllString(tg.Expr, -1) {
				fam := name
				for _, suf := range []string{"_bucket", "_count", "_sum"} {
					if f, ok := strings.CutSuffix(name, suf); ok && strings.HasSuffix(f, "_seconds") {
						fam = f
					}
				}
				if diag.Help(fam) == "" {
					t.Errorf("panel %q queries %s, which sluice does not expose", p.Title, name)
				}
				n++
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d metric references in the dashboard", n)
	}
}
