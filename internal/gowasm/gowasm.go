// Package gowasm builds Go programs for GOOS=wasip1 GOARCH=wasm with the
// local Go toolchain and caches the result by the hash of the sources, so a
// machine with only Go can produce the example and test modules. It is used by
// examples (on first use) and by tests that need a Go-built guest.
package gowasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
)

// ErrBuild is wrapped by every failure of the Go toolchain.
var ErrBuild = errors.New("go build for wasip1 failed")

var buildMu sync.Mutex // one go build at a time per process: they share GOCACHE anyway

// DefaultCacheDir is where built modules are kept between runs.
func DefaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "peergrid", "gowasm")
	}
	return filepath.Join(os.TempDir(), "peergrid-gowasm")
}

// Build compiles the single-package Go program in src (a file system holding
// *.go files at its root, standard library imports only) to a wasip1 module
// and returns the module's bytes. Results are cached in cacheDir ("" means
// DefaultCacheDir) under the hash of the sources and the Go version, so a
// second call costs a file read.
func Build(ctx context.Context, src fs.FS, cacheDir string) ([]byte, error) {
	files, key, err := readSources(src)
	if err != nil {
		return nil, err
	}
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	out := filepath.Join(cacheDir, key+".wasm")
	if b, err := os.ReadFile(out); err == nil {
		return b, nil
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, err := os.ReadFile(out); err == nil { // built while we waited
		return b, nil
	}
	return compile(ctx, files, cacheDir, out)
}

// BuildDir is Build for a directory on disk.
func BuildDir(ctx context.Context, dir, cacheDir string) ([]byte, error) {
	return Build(ctx, os.DirFS(dir), cacheDir)
}

// BuildPackage builds the Go program in dir for wasip1 and writes the
// module to out (through a temporary file renamed into place). A dir with
// its own go.mod is built where it is, as `GOOS=wasip1 GOARCH=wasm go build
// -o out .` would, so it may use its module's dependencies; one without is
// built with Build (standard library only, cached by source hash), so a Go
// example in a checkout needs no go.mod of its own.
func BuildPackage(ctx context.Context, dir, out string) error {
	if fileExists(filepath.Join(dir, "go.mod")) {
		return buildInPlace(ctx, dir, out)
	}
	mod, err := BuildDir(ctx, dir, "")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.part")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	_, werr := tmp.Write(mod)
	if err := errors.Join(werr, tmp.Chmod(0o644), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// buildInPlace runs go build in dir, the user's own module.
func buildInPlace(ctx context.Context, dir, out string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", abs, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: %v: %s", ErrBuild, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

func readSources(src fs.FS) (map[string][]byte, string, error) {
	names, err := fs.Glob(src, "*.go")
	if err != nil {
		return nil, "", err
	}
	if len(names) == 0 {
		return nil, "", fmt.Errorf("%w: no .go files in source", ErrBuild)
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", runtime.Version())
	files := make(map[string][]byte, len(names))
	for _, n := range names {
		b, err := fs.ReadFile(src, n)
		if err != nil {
			return nil, "", err
		}
		files[n] = b
		fmt.Fprintf(h, "%s %d\n", n, len(b))
		h.Write(b)
	}
	return files, hex.EncodeToString(h.Sum(nil))[:32], nil
}

func compile(ctx context.Context, files map[string][]byte, cacheDir, out string) ([]byte, error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(cacheDir, "build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	files["go.mod"] = []byte("module guest\n\ngo 1.21\n")
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(work, n), b, 0o644); err != nil {
			return nil, err
		}
	}
	tmp := filepath.Join(work, "guest.wasm")
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-o", tmp, ".")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w: %v: %s", ErrBuild, err, bytes.TrimSpace(stderr.Bytes()))
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

// goTool finds the go command: the toolchain running us (go run, go test) or PATH.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
