package examples

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/peergrid/peergrid/internal/gowasm"
	"github.com/peergrid/peergrid/tasks"
)

// files holds every example: src/<name>/ has main.go, job.toml and any
// inputs; tiny/ has the committed module and its job file.
//
//go:embed src tiny/tiny.wasm tiny/job.toml
var files embed.FS

// ErrUnknownExample is returned for a name All does not list.
var ErrUnknownExample = errors.New("unknown example")

// Example names and describes one example job.
type Example struct {
	Name        string
	Description string
}

// example is an Example with where its files are and how to check it.
type example struct {
	Example
	dir     string // in files
	goMain  bool   // dir holds a Go program to build; otherwise <dir>/<name>.wasm is the module
	verify  func(spec *tasks.JobSpec, results [][]byte) error
	summary func(spec *tasks.JobSpec, results [][]byte) (string, error)
}

var registry = []example{
	{
		Example: Example{"primes", "counts the primes below 20 million in 50 slices (Go)"},
		dir:     "src/primes", goMain: true, verify: verifyPrimes, summary: summarizePrimes,
	},
	{
		Example: Example{"mandelbrot", "renders a 512x512 Mandelbrot image as 16 tiles (Go)"},
		dir:     "src/mandelbrot", goMain: true, verify: verifyMandelbrot, summary: summarizeMandelbrot,
	},
	{
		Example: Example{"wordcount", "counts the words of 5 texts, one task per input file (Go)"},
		dir:     "src/wordcount", goMain: true, verify: verifyWordcount, summary: summarizeWordcount,
	},
	{
		Example: Example{"pi", "estimates pi from 4 million seeded random points in 20 tasks (Go)"},
		dir:     "src/pi", goMain: true, verify: verifyPi, summary: summarizePi,
	},
	{
		Example: Example{"tiny", "1000 tasks of a 1 KiB C module that echoes its index: grid overhead"},
		dir:     "tiny", verify: verifyTiny, summary: summarizeTiny,
	},
}

// All lists the examples, in the order a demo runs them. tiny is last: it
// is the cheapest to run and to check, and the one benchmarks use.
func All() []Example {
	out := make([]Example, len(registry))
	for i, e := range registry {
		out[i] = e.Example
	}
	return out
}

func lookup(name string) (*example, error) {
	for i := range registry {
		if registry[i].Name == name {
			return &registry[i], nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownExample, name)
}

// Tiny returns the committed tiny.wasm: a module of under a KiB, written in
// C without libc, that echoes its arguments like echo(1).
func Tiny() []byte {
	b, err := files.ReadFile("tiny/tiny.wasm")
	if err != nil {
		panic("examples: tiny.wasm is not embedded: " + err.Error())
	}
	return b
}

// Module returns the built WebAssembly module of an example. A Go example is
// built with the local Go toolchain on first use and cached in cacheDir (""
// means gowasm.DefaultCacheDir), so later calls cost a file read.
func Module(ctx context.Context, name, cacheDir string) ([]byte, error) {
	ex, err := lookup(name)
	if err != nil {
		return nil, err
	}
	if !ex.goMain {
		return Tiny(), nil
	}
	src, err := fs.Sub(files, ex.dir)
	if err != nil {
		return nil, err
	}
	mod, err := gowasm.Build(ctx, src, cacheDir)
	if err != nil {
		return nil, fmt.Errorf("example %s: %w", name, err)
	}
	return mod, nil
}

// Materialize writes an example's job file (as <dir>/<name>.toml), its
// module (named as the job file's module key says) and its input files into
// dir, creating dir if needed and building the module on first use (cacheDir
// "" means gowasm.DefaultCacheDir). It returns the job file's path, which
// tasks.ParseFile accepts. Examples' files do not collide, so one dir may
// hold them all.
func Materialize(ctx context.Context, name, dir, cacheDir string) (jobPath string, err error) {
	if _, err := lookup(name); err != nil {
		return "", err
	}
	mod, err := Module(ctx, name, cacheDir)
	if err != nil {
		return "", err
	}
	return materialize(name, dir, mod)
}

// materialize is Materialize with the module given.
func materialize(name, dir string, module []byte) (string, error) {
	ex, err := lookup(name)
	if err != nil {
		return "", err
	}
	job, err := files.ReadFile(path.Join(ex.dir, "job.toml"))
	if err != nil {
		return "", err
	}
	modName, err := moduleKey(job)
	if err != nil {
		return "", fmt.Errorf("example %s: job.toml: %w", name, err)
	}
	out := map[string][]byte{name + ".toml": withoutBuild(job), modName: module}
	if err := addInputs(ex.dir, out); err != nil {
		return "", err
	}
	for rel, b := range out {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, name+".toml"), nil
}

// withoutBuild drops a job file's build and source lines: a materialized
// example comes with its module built, and without its sources (examples'
// main.go files would collide in one dir), so there is nothing to build.
func withoutBuild(job []byte) []byte {
	var out []byte
	for line := range bytes.Lines(job) {
		key, _, ok := bytes.Cut(line, []byte("="))
		if k := string(bytes.TrimSpace(key)); ok && (k == "build" || k == "source") {
			continue
		}
		out = append(out, line...)
	}
	return out
}

// moduleKey reads the module key of a job file.
func moduleKey(job []byte) (string, error) {
	var f struct {
		Module string `toml:"module"`
	}
	if err := toml.NewDecoder(bytes.NewReader(job)).Decode(&f); err != nil {
		return "", err
	}
	if f.Module == "" || path.IsAbs(f.Module) || strings.Contains(f.Module, "..") {
		return "", fmt.Errorf("module = %q, want a file name next to the job file", f.Module)
	}
	return f.Module, nil
}

// addInputs adds the example's other files (inputs: not sources, not the job
// file, not a committed module) under their paths relative to the example.
func addInputs(dir string, out map[string][]byte) error {
	return fs.WalkDir(files, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimPrefix(p, dir+"/")
		switch path.Ext(rel) {
		case ".go", ".wasm", ".c", ".sh":
			return nil
		}
		if rel == "job.toml" {
			return nil
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = b
		return nil
	})
}

// inputFile returns an embedded input of an example by base name.
func inputFile(exampleDir, name string) ([]byte, error) {
	var found []byte
	err := fs.WalkDir(files, exampleDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && path.Base(p) == name && found == nil {
			found, err = files.ReadFile(p)
		}
		return err
	})
	if err == nil && found == nil {
		err = fmt.Errorf("no input named %q is shipped with the example", name)
	}
	return found, err
}
