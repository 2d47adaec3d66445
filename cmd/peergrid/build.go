package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/peergrid/peergrid/internal/gowasm"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
)

// buildModule runs the job file's build, if it names one, and checks that
// the module it made is WebAssembly. build = "go" builds the Go package in
// the job's source directory for wasip1; any other build is a shell command
// run in the job file's directory, its output shown on Stderr. Building is
// the submitter's own command on the submitter's own files, as make is.
func (m *Main) buildModule(ctx context.Context, jf *tasks.JobFile) error {
	switch jf.Build {
	case "":
		return nil
	case tasks.BuildGo:
		fmt.Fprintf(m.Stderr, "building %s from %s (GOOS=wasip1 GOARCH=wasm go build)\n", jf.Module, jf.SourceDir)
		if err := gowasm.BuildPackage(ctx, jf.SourceDir, jf.ModulePath); err != nil {
			return fmt.Errorf("%s: build = \"go\": %w", jf.Path, err)
		}
	default:
		fmt.Fprintf(m.Stderr, "building %s: %s\n", jf.Module, jf.Build)
		cmd := exec.CommandContext(ctx, "sh", "-c", jf.Build)
		cmd.Dir = jf.Dir
		cmd.Stdout, cmd.Stderr = m.Stderr, m.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: build = %q failed (%v); its output is above", jf.Path, jf.Build, err)
		}
	}
	return jf.CheckModule()
}

// checkModuleFile runs the checks every worker makes before compiling a
// module (wasm.Check: structural limits, no threads, no relaxed SIMD), so a
// module no worker would run is refused at submit, before anything is
// uploaded. A missing file is left to the submit, which names it.
func checkModuleFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	if err := wasm.Check(data); err != nil {
		return fmt.Errorf("module %s: %w", path, err)
	}
	return nil
}
