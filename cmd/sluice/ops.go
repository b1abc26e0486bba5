package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// buildInfo is what the binary knows of its build (debug.ReadBuildInfo):
// the module version ("(devel)" for a build from a checkout), the VCS
// revision and time, and whether the tree had uncommitted changes.
type buildInfo struct {
	version, revision, time string
	modified                bool
}

func readBuildInfo() buildInfo {
	b := buildInfo{version: "(unknown)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.version = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.revision = s.Value
		case "vcs.time":
			b.time = s.Value
		case "vcs.modified":
			b.modified = s.Value == "true"
		}
	}
	return b
}

// versionLine is what -version prints.
func versionLine() string {
	b := readBuildInfo()
	var sb strings.Builder
	fmt.Fprintf(&sb, "sluice %s", b.version)
	if b.revision != "" {
		fmt.Fprintf(&sb, " revision %s", b.revision)
		if b.modified {
			sb.WriteString(" (modified)")
		}
		if b.time != "" {
			fmt.Fprintf(&sb, " committed %s", b.time)
		}
	} else {
		sb.WriteString(" revision unknown (built without VCS information)")
	}
	fmt.Fprintf(&sb, " %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return sb.String()
}

// registerBuildInfo adds sluice_build_info{version,revision,modified,goversion} 1.
func registerBuildInfo(set *metrics.Set) {
	b := readBuildInfo()
	set.NewGauge(fmt.Sprintf(`sluice_build_info{version=%q,revision=%q,modified="%t",goversion=%q}`,
		b.version, b.revision, b.modified, runtime.Version()), func() float64 { return 1 })
}

// printErr writes err as lines, each "sluice: ...": a configuration file
// can have several problems, one line each.
func printErr(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "sluice: %s\n", line)
	}
}

// check is -check: the flags and the file were parsed and validated;
// here everything start-up builds is built the same way (build), short
// of sockets, files and goroutines. 0 when good, else 2 and one line per
// problem.
func check(cfg *config, stdout, stderr io.Writer) int {
	// No demo upstream is started: its route gets a stand-in address.
	b, err := build(cfg, buildEnv{demo: "127.0.0.1:1"})
	if err != nil {
		printErr(stderr, err)
		return 2
	}
	b.close()
	what := fmt.Sprintf("%d routes", len(cfg.routes))
	if cfg.mode == "tcp" {
		what = "tcp mode"
	} else if len(cfg.routes) == 0 {
		what = "no routes: the demo upstream"
	}
	src := "flags"
	if cfg.configFile != "" {
		src = cfg.configFile
	}
	fmt.Fprintf(stdout, "sluice: configuration OK (%s, %s)\n", src, what)
	return 0
}
