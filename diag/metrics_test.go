package diag

import (
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// The lifecycle families count what they are told, every family has HELP
// text, and the open gauge reads its callback at scrape time.
func TestConnMetrics(t *testing.T) {
	s := metrics.NewSet()
	open := int64(0)
	m := NewConnMetrics(s, func(side Side, st State) int64 {
		if side == Downstream && st == DataTransfer {
			return open
		}
		return 0
	})
	tr := Trace{Side: Downstream, Outcome: Clean}
	tr.Entered[Created], tr.Entered[ShutdownInitiated], tr.Entered[SocketClosed] = 1, 2e6, 3e6
	m.Left(Downstream, DataTransfer, ShutdownInitiated, 5e5)
	m.Left(Upstream, DataTransfer, ShutdownInitiated, 5e5) // only client connections are timed by state
	m.ShutdownPending(100)
	m.Abort(Upstream, 10)
	m.Closed(&tr)
	open = 7
	if m.Closes(Downstream, Clean) != 1 || m.Aborts(Upstream) != 1 || m.Aborts(Downstream) != 0 {
		t.Fatalf("closes %d, aborts %d/%d", m.Closes(Downstream, Clean), m.Aborts(Downstream), m.Aborts(Upstream))
	}
	var sb strings.Builder
	s.WritePrometheus(&sb)
	out := sb.String()
	for _, want := range []string{
		`sluice_connections_active{state="DataTransfer"} 7`,
		`sluice_connection_closes_total{outcome="clean"} 1`,
		`sluice_upstream_connection_abort_discarded_bytes_total 10`,
		`sluice_connection_state_duration_seconds_count{state="DataTransfer"} 1`,
		`sluice_close_sequence_duration_seconds_count 1`,
		`sluice_shutdown_pending_bytes_count 1`,
		`sluice_connection_duration_seconds_count 1`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("no %s", want)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if line == "" || line[0] == '#' { // # HELP/# TYPE once an admin server has turned metadata on
			continue
		}
		fam := line[:strings.IndexAny(line, "{ ")]
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if f, ok := strings.CutSuffix(fam, suf); ok && strings.HasSuffix(f, "_seconds") || ok && strings.HasSuffix(f, "_bytes") {
				fam = f
			}
		}
		if Help(fam) == "" {
			t.Errorf("%s: no HELP text in metrichelp.go", fam)
		}
	}
}
