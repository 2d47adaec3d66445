package proctest

import (
	"os"
	"path/filepath"
	"testing"
)

// TestModuleRoot_IsTheTreeThisPackageWasBuiltFrom: run from a directory
// outside any module (as a test binary of one tree is, when an A/B runs it
// beside another tree's), moduleRoot is still the tree the test binary was
// compiled from, so Binary builds that tree's peergrid and not the working
// directory's.
func TestModuleRoot_IsTheTreeThisPackageWasBuiltFrom(t *testing.T) {
	pkgDir, err := os.Getwd() // go test runs a package's tests in its directory
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Dir(filepath.Dir(pkgDir)) // internal/proctest -> the module's root
	if _, err := os.Stat(filepath.Join(want, "go.mod")); err != nil {
		t.Fatalf("no go.mod two levels above %s: %v", pkgDir, err)
	}
	t.Chdir(t.TempDir())
	got, err := moduleRoot()
	if err != nil || got != want {
		t.Fatalf("moduleRoot from a directory outside the module: %q, %v; want %q", got, err, want)
	}
}
