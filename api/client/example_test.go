package client_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
)

func TestMain(m *testing.M) {
	wasm.MaybeRunExecutor() // the dev grid's executors re-run this binary
	os.Exit(m.Run())
}

// startGrid runs a one-process grid for the example and returns its address
// and token, as `peergrid dev` prints them.
func startGrid(ctx context.Context, dir string) (*devgrid.Grid, error) {
	return devgrid.Start(ctx, devgrid.Config{DataDir: filepath.Join(dir, "grid"), Cores: 2, Logger: slog.New(slog.DiscardHandler)})
}

// writeJob writes a job file and its module (examples/tiny: a small C
// program that echoes its arguments) into dir.
func writeJob(dir string) (string, error) {
	mod, err := os.ReadFile("../../examples/tiny/tiny.wasm")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "tiny.wasm"), mod, 0o644); err != nil {
		return "", err
	}
	job := filepath.Join(dir, "job.toml")
	return job, os.WriteFile(job, []byte(`name = "echo"
module = "tiny.wasm"
args = ["task", "{index}"]
tasks = 3
timeout = "10s"
memory = "1MiB"
`), 0o644)
}

// Submit a job file, wait for it, and read its results: what `peergrid job
// submit --wait` and `peergrid job results` do.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "peergrid-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	grid, err := startGrid(ctx, dir)
	if err != nil {
		log.Fatal(err)
	}
	defer grid.Close()
	jobPath, err := writeJob(dir)
	if err != nil {
		log.Fatal(err)
	}

	c := client.New(grid.Addr, grid.Token)           // several servers: client.New(a, token, b, c)
	c.Pin(auth.Pin{Fingerprint: grid.CAFingerprint}) // trust only the grid's CA (peergrid dev prints it)
	job, err := tasks.ParseFile(jobPath)
	if err != nil {
		log.Fatal(err) // names the file, the line and the key
	}
	id, err := c.SubmitJobFile(ctx, job)
	if err != nil {
		log.Fatal(err)
	}
	sum, err := c.WaitJob(ctx, id, 50*time.Millisecond, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sum.State, sum.Done, "of", sum.Tasks)
	results, err := c.Results(ctx, id) // all in memory; DownloadResults streams to files
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range results {
		fmt.Printf("task %d: %s", r.Index, r.Stdout)
	}
	// Output:
	// complete 3 of 3
	// task 0: task 0
	// task 1: task 1
	// task 2: task 2
}
