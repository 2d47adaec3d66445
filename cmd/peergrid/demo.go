package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/tasks"
)

// demoResult is one line of the demo's summary.
type demoResult struct {
	name    string
	tasks   int
	elapsed time.Duration
	err     error
}

func (m *Main) runDemo(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("demo", "demo [--data-dir DIR] [--out DIR] [--cores N]")
	dataDir := fs.String("data-dir", "", "grid state (default: a temporary directory, removed after)")
	out := fs.String("out", filepath.Join(os.TempDir(), "peergrid-demo"), "where the demo writes mandelbrot.png")
	cores := fs.Int("cores", 0, "task slots of the worker (default: all cores)")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	if _, err := parse(fs, args); err != nil {
		return exitError, err
	}
	log, err := m.logger(*logLevel)
	if err != nil {
		return exitError, err
	}
	work, cleanup, err := demoDir(*dataDir)
	if err != nil {
		return exitError, err
	}
	defer cleanup()
	fmt.Fprintf(m.Stdout, "starting a dev grid (one Raft server, one worker and %d storage peers on loopback) in %s\n", demoStoragePeers, work)
	// Short failure detection, so the storage demo's repair is seconds away.
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: filepath.Join(work, "grid"), Cores: *cores, Logger: log,
		StoragePeers: demoStoragePeers, WorkerTTL: 3 * time.Second, RepairGrace: time.Second})
	if err != nil {
		return exitError, err
	}
	defer g.Close()
	var results []demoResult
	for _, ex := range examples.All() {
		fmt.Fprintf(m.Stdout, "\n== %s: %s\n", ex.Name, ex.Description)
		r := m.demoExample(ctx, g.Client(), ex.Name, filepath.Join(work, "jobs", ex.Name), *out)
		if r.err != nil {
			fmt.Fprintf(m.Stdout, "   FAILED: %v\n", r.err)
		}
		results = append(results, r)
		if ctx.Err() != nil {
			break
		}
	}
	if ctx.Err() == nil {
		fmt.Fprintf(m.Stdout, "\n== storage: an erasure-coded blob survives losing storage peers\n")
		r := m.demoStorage(ctx, g)
		if r.err != nil {
			fmt.Fprintf(m.Stdout, "   FAILED: %v\n", r.err)
		}
		results = append(results, r)
	}
	return m.demoSummary(results), nil
}

func demoDir(dataDir string) (string, func(), error) {
	if dataDir != "" {
		return dataDir, func() {}, os.MkdirAll(dataDir, 0o700)
	}
	dir, err := os.MkdirTemp("", "peergrid-demo-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// demoExample runs one example job through the API and checks every result
// against values computed natively, not by the grid.
func (m *Main) demoExample(ctx context.Context, c *client.Client, name, dir, outDir string) demoResult {
	start := time.Now()
	r := demoResult{name: name}
	jobPath, err := examples.Materialize(ctx, name, dir, "")
	if err != nil {
		r.err = err
		return r
	}
	jf, err := tasks.ParseFile(jobPath)
	if err != nil {
		r.err = err
		return r
	}
	r.tasks = jf.Tasks
	id, err := c.SubmitJobFile(ctx, jf)
	if err != nil {
		r.err = err
		return r
	}
	if code, err := m.waitJob(ctx, c, id, false); err != nil || code != exitOK {
		r.err = errors.Join(err, fmt.Errorf("job %s did not complete", id))
		return r
	}
	r.err = m.checkDemoResults(ctx, c, name, id, outDir)
	r.elapsed = time.Since(start)
	return r
}

func (m *Main) checkDemoResults(ctx context.Context, c *client.Client, name, id, outDir string) error {
	st, err := c.Job(ctx, id)
	if err != nil {
		return err
	}
	results, err := c.Results(ctx, id)
	if err != nil {
		return err
	}
	stdouts := make([][]byte, len(results))
	for i, res := range results {
		stdouts[i] = res.Stdout
	}
	if err := examples.Verify(name, &st.Spec, stdouts); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "   all %d results match values computed natively\n", len(results))
	if line, err := examples.Summary(name, &st.Spec, stdouts); err == nil {
		fmt.Fprintf(m.Stdout, "   %s\n", line)
	}
	if name == "mandelbrot" {
		return m.writeMandelbrot(&st.Spec, stdouts, outDir)
	}
	return nil
}

func (m *Main) writeMandelbrot(spec *tasks.JobSpec, tiles [][]byte, outDir string) error {
	img, err := examples.StitchMandelbrot(spec, tiles)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(outDir, "mandelbrot.png")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "   stitched %d tiles into %s\n", len(tiles), path)
	return nil
}

func (m *Main) demoSummary(results []demoResult) int {
	fmt.Fprintln(m.Stdout)
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EXAMPLE\tTASKS\tTIME\tRESULT")
	code := exitOK
	for _, r := range results {
		verdict := "ok"
		if r.err != nil {
			verdict, code = "FAILED", exitJobFailed
		}
		tasks := "-" // the storage demo runs no tasks
		if r.tasks > 0 {
			tasks = fmt.Sprint(r.tasks)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.name, tasks, r.elapsed.Round(time.Millisecond), verdict)
	}
	tw.Flush()
	if code == exitOK {
		fmt.Fprintln(m.Stdout, "demo passed: every result checked")
	}
	return code
}
