package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main is cmd/sluice-bench: parse flags, run, print the table or JSON.
// It returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	o, err := Parse(args, stdout)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sluice-bench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := Run(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sluice-bench: %v\n", err)
		return 1
	}
	if o.JSON {
		r.WriteJSON(stdout)
	} else {
		r.WriteTable(stdout)
	}
	if r.Failed() {
		return 1
	}
	return 0
}
