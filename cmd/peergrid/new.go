package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"
)

// scaffolds holds one directory per language `peergrid new` knows: each
// file a text/template of the task's name.
//
//go:embed scaffold
var scaffolds embed.FS

// languages `peergrid new` scaffolds, with what the user needs to build one.
var languages = map[string]string{
	"go":   "Go 1.21 or later",
	"rust": "Rust with the wasm32-wasip1 target (rustup target add wasm32-wasip1)",
	"c":    "clang, lld and wasi-libc (Debian: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)",
}

// taskName is what a scaffolded task may be called: a Go module path, a
// Rust crate and a file name all at once.
var taskName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

func (m *Main) runNew(_ context.Context, args []string) (int, error) {
	fs := m.newFlagSet("new", "new go|rust|c DIR\n\nWrites a task that builds and runs on a grid into DIR (created; it must not exist):\nits source, its build, and job.toml. Then: peergrid job submit DIR/job.toml --wait")
	pos, err := parse(fs, args)
	if err != nil {
		return exitError, err
	}
	if len(pos) != 2 {
		fs.Usage()
		return exitError, errUsage
	}
	lang, dir := pos[0], pos[1]
	if _, ok := languages[lang]; !ok {
		return exitError, fmt.Errorf("%w: new %s: want go, rust or c", errUsage, lang)
	}
	name := filepath.Base(filepath.Clean(dir))
	if !taskName.MatchString(name) {
		return exitError, fmt.Errorf("%w: new %s %s: the task is named for its directory, %q; want lower-case letters, digits, - and _, starting with a letter", errUsage, lang, dir, name)
	}
	files, err := scaffold(lang, name)
	if err != nil {
		return exitError, err
	}
	if err := writeNewDir(dir, files); err != nil {
		return exitError, err
	}
	m.printNext(lang, dir, files)
	return exitOK, nil
}

// scaffold renders a language's templates for a task name: file path
// (slash-separated, relative to the task's directory) to contents.
func scaffold(lang, name string) (map[string][]byte, error) {
	root := "scaffold/" + lang
	out := map[string][]byte{}
	err := fs.WalkDir(scaffolds, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		text, err := scaffolds.ReadFile(p)
		if err != nil {
			return err
		}
		t, err := template.New(path.Base(p)).Delims("{{", "}}").Parse(string(text))
		if err != nil {
			return err
		}
		var b strings.Builder
		if err := t.Execute(&b, struct{ Name string }{name}); err != nil {
			return err
		}
		out[strings.TrimSuffix(strings.TrimPrefix(p, root+"/"), ".tmpl")] = []byte(b.String())
		return nil
	})
	return out, err
}

// writeNewDir creates dir (which must not exist: nothing of the user's is
// overwritten) and writes files into it.
func writeNewDir(dir string, files map[string][]byte) error {
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("new: %s already exists; choose a new directory (nothing was written)", dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for rel, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (m *Main) printNext(lang, dir string, files map[string][]byte) {
	names := slices.Sorted(mapKeys(files))
	fmt.Fprintf(m.Stdout, "wrote a %s task in %s: %s\n", lang, dir, strings.Join(names, ", "))
	fmt.Fprintf(m.Stdout, "building it needs %s.\n", languages[lang])
	fmt.Fprintf(m.Stdout, "next, with a grid running (peergrid dev) and its PEERGRID_* variables exported:\n")
	fmt.Fprintf(m.Stdout, "  peergrid job submit %s --wait      # builds, submits, shows progress; prints the job's id\n", filepath.Join(dir, "job.toml"))
	fmt.Fprintf(m.Stdout, "  peergrid job results ID --out results/   # results/<index>.out (stdout) and .err (stderr)\n")
}
