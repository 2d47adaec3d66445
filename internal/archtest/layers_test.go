package archtest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/peergrid/peergrid"

type pkg struct {
	ImportPath string
	Imports    []string // direct, non-test
	Deps       []string // transitive, non-test
	GoFiles    []string
	Dir        string
}

// listPackages is `go list -json ./...` from the module root.
func listPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		p := &pkg{}
		if err := dec.Decode(p); err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

func mustPkg(t *testing.T, pkgs map[string]*pkg, path string) *pkg {
	t.Helper()
	p := pkgs[module+"/"+path]
	if p == nil {
		t.Fatalf("package %s not found", path)
	}
	return p
}

// forbidden lists the entries of have that match a rule: an exact import
// path, or a prefix ending in "/".
func forbidden(have []string, rules ...string) []string {
	var out []string
	for _, h := range have {
		for _, r := range rules {
			if h == r || strings.HasSuffix(r, "/") && strings.HasPrefix(h, r) || h == strings.TrimSuffix(r, "/") {
				out = append(out, h)
				break
			}
		}
	}
	return out
}

// TestLayers_LedgerImportsNoTransportOrClock: the replicated ledger is a
// pure function of the log. It imports no HTTP, network, disk, randomness or
// Raft, nothing of the scheduler's other layers or of the client, and its
// code never reads the clock.
func TestLayers_LedgerImportsNoTransportOrClock(t *testing.T) {
	pkgs := listPackages(t)
	l := mustPkg(t, pkgs, "scheduler/ledger")
	if bad := forbidden(l.Imports, "net", "net/http", "os", "math/rand", "math/rand/v2", "crypto/rand", "github.com/hashicorp/raft/"); len(bad) > 0 {
		t.Errorf("scheduler/ledger imports %v", bad)
	}
	if bad := forbidden(l.Deps, "github.com/hashicorp/raft/", "github.com/hashicorp/raft-boltdb/", module+"/scheduler/store", module+"/scheduler/server",
		module+"/scheduler/views", module+"/api/client", module+"/worker", module+"/wasm"); len(bad) > 0 {
		t.Errorf("scheduler/ledger depends on %v", bad)
	}
	for _, f := range l.GoFiles {
		src, err := os.ReadFile(filepath.Join(l.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, call := range []string{"time.Now(", "time.Since(", "time.Until(", "time.After(", "time.Tick", "time.NewTimer(", "time.Sleep("} {
			if strings.Contains(string(src), call) {
				t.Errorf("scheduler/ledger/%s calls %s): Apply must not read the clock", f, call)
			}
		}
	}
}

// TestLayers_StoreKnowsNoHTTP: the Raft store does not serve or call HTTP.
func TestLayers_StoreKnowsNoHTTP(t *testing.T) {
	pkgs := listPackages(t)
	s := mustPkg(t, pkgs, "scheduler/store")
	if bad := forbidden(s.Imports, "net/http", module+"/scheduler/server", module+"/scheduler/views", module+"/api/client"); len(bad) > 0 {
		t.Errorf("scheduler/store imports %v", bad)
	}
}

// TestLayers_ViewsOnlyRead: the views do not depend on the server.
func TestLayers_ViewsOnlyRead(t *testing.T) {
	pkgs := listPackages(t)
	v := mustPkg(t, pkgs, "scheduler/views")
	if bad := forbidden(v.Deps, module+"/scheduler/server"); len(bad) > 0 {
		t.Errorf("scheduler/views depends on %v", bad)
	}
}

// TestLayers_WorkerReachesTheLedgerOnlyThroughTheAPI: no package under
// worker/ imports any scheduler package, directly or not.
func TestLayers_WorkerReachesTheLedgerOnlyThroughTheAPI(t *testing.T) {
	pkgs := listPackages(t)
	for path, p := range pkgs {
		if path != module+"/worker" && !strings.HasPrefix(path, module+"/worker/") {
			continue
		}
		if bad := forbidden(p.Deps, module+"/scheduler/", "github.com/hashicorp/raft/"); len(bad) > 0 {
			t.Errorf("%s depends on %v", path, bad)
		}
	}
}

// TestLayers_SandboxAndModelKnowNothingOfTheGrid: wasm depends on nothing of
// ours; tasks on nothing of ours; internal/plainjson (shared by the server
// and the client) and internal/procstat (by the sandbox's tests and
// others) on nothing of ours; storage not on the ledger or scheduler.
func TestLayers_SandboxAndModelKnowNothingOfTheGrid(t *testing.T) {
	pkgs := listPackages(t)
	ours := func(deps []string) []string {
		return slices.DeleteFunc(slices.Clone(deps), func(d string) bool { return !strings.HasPrefix(d, module+"/") })
	}
	for _, path := range []string{"wasm", "tasks", "internal/plainjson", "internal/procstat"} {
		if deps := ours(mustPkg(t, pkgs, path).Deps); len(deps) > 0 {
			t.Errorf("%s depends on %v", path, deps)
		}
	}
	if bad := forbidden(mustPkg(t, pkgs, "storage").Deps, module+"/scheduler/", module+"/api", module+"/worker"); len(bad) > 0 {
		t.Errorf("storage depends on %v", bad)
	}
}
