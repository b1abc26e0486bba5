package enginetest

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/engine"
)

// Start builds and starts an engine from cfg and stops it (within 10 s,
// or the test fails) when the test ends.
func Start(t testing.TB, cfg engine.Config) *engine.Engine {
	t.Helper()
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return e
}
