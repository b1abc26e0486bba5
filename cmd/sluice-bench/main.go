package main

import (
	"os"

	"github.com/sluice-proxy/sluice/bench"
)

func main() { os.Exit(bench.Main(os.Args[1:], os.Stdout, os.Stderr)) }
