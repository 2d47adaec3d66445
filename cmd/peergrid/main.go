// Command peergrid is the one binary of the grid: agent, dev grid, demo, and
// the CLI client of the HTTP API.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/peergrid/peergrid/wasm"
)

func main() {
	wasm.MaybeRunExecutor() // this process may be a worker's executor child
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	os.Exit(m.Run(ctx, os.Args[1:]))
}
