package shutdown

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// A scrape while the drain waits walks the target's connections once for
// every sluice_drain_connections{state} series (a gauge per state walked
// once per state), and the family is typed and described once.
func TestDrainConnectionsOneWalkPerScrape(t *testing.T) {
	metrics.ExposeMetadata(true) // as the admin server does
	defer metrics.ExposeMetadata(false)
	synctest.Test(t, func(t *testing.T) {
		f := newFake(3)
		h := startDrain(t, f, 0, 30*time.Second)
		synctest.Wait()
		if h.co.Phase() != Draining {
			t.Fatalf("phase %v", h.co.Phase())
		}
		before := f.walks.Load()
		var sb strings.Builder
		h.set.WritePrometheus(&sb)
		if n := f.walks.Load() - before; n != 1 {
			t.Errorf("one scrape walked the connections %d times, want 1", n)
		}
		out := sb.String()
		for _, want := range []string{"sluice_drain_connections{state=\"DataTransfer\"} 0\n",
			"sluice_drain_connections{state=\"Lingering\"} 3\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in\n%s", want, out)
			}
		}
		if n := strings.Count(out, "# TYPE sluice_drain_connections gauge\n"); n != 1 {
			t.Errorf("%d TYPE lines for sluice_drain_connections, want 1:\n%s", n, out)
		}
		time.Sleep(31 * time.Second) // the deadline: forced, Done
		if res := <-h.res; !res.Forced {
			t.Fatalf("result %+v", res)
		}
		if got := metricValue(t, h.set, `sluice_drain_connections{state="Lingering"}`); got != "0" {
			t.Errorf("drain connections %s after the drain", got)
		}
	})
}
