package worker

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
)

// execute runs one assignment on a worker of the fake grid, as a runner
// goroutine would, and returns the report.
func execute(t *testing.T, g *fakeGrid, runner Runner, a api.Assignment) (api.Report, *Worker) {
	t.Helper()
	w := testWorker(t, g, Config{Cores: 1, Pool: runner})
	return newRun(w).execute(context.Background(), a), w
}

// TestExecute_ReportCarriesTheRunsOutcome: the sandbox is asked to run the
// assignment as the job said (args, env, seed, engine, memory, timeout,
// output cap, inline stdin), and what it gives back (exit code, output,
// duration, engine, failure kind) is what the report says.
func TestExecute_ReportCarriesTheRunsOutcome(t *testing.T) {
	g := newFakeGrid()
	a := api.Assignment{Job: "j", Index: 4, Attempt: 2, ModuleHash: testModuleHash, Name: "prog", Args: []string{"-n", "3"},
		Env: map[string]string{"K": "v"}, Stdin: []byte("in"), Seed: 99, Timeout: 3 * time.Second, Memory: 1 << 20,
		MaxOutput: 1234, Engine: "wazero"}
	runner := &fakeRunner{run: func(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
		return &wasm.Result{ExitCode: 3, Stdout: []byte("out"), Stderr: []byte("err"), Duration: 7 * time.Millisecond, Engine: "wazero"},
			&wasm.TaskError{Kind: wasm.KindExit, Msg: "exit code 3"}
	}}
	rep, w := execute(t, g, runner, a)

	wantReq := wasm.Request{ModuleHash: testModuleHash, Name: "prog", Args: []string{"-n", "3"}, Env: map[string]string{"K": "v"},
		Stdin: []byte("in"), Seed: 99, Engine: "wazero", Limits: wasm.Limits{MemoryBytes: 1 << 20, Timeout: 3 * time.Second, MaxOutput: 1234},
		StdoutSpill: storage.DefaultInlineThreshold} // stdout over the inline threshold spills to a file
	if len(runner.reqs) == 1 && filepath.Dir(runner.reqs[0].StdoutPath) == w.outputsDir() {
		wantReq.StdoutPath = runner.reqs[0].StdoutPath
	}
	if len(runner.reqs) != 1 || !reflect.DeepEqual(*runner.reqs[0], wantReq) {
		t.Fatalf("sandbox asked %+v, want %+v", runner.reqs, wantReq)
	}
	wantRep := api.Report{TaskRef: api.TaskRef{Job: "j", Index: 4, Attempt: 2}, Result: tasks.Result{ExitCode: 3, Stdout: []byte("out"), Stderr: []byte("err"),
		ErrorKind: "exit", Error: "exit: exit code 3", Duration: 7 * time.Millisecond, Engine: "wazero"}}
	if !reflect.DeepEqual(rep, wantRep) {
		t.Fatalf("report %+v, want %+v", rep, wantRep)
	}
}

// TestExecute_FailureKinds: a task failure reports its kind; any other
// error from the sandbox is the worker's; success reports none.
func TestExecute_FailureKinds(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"success", nil, ""},
		{"timeout", &wasm.TaskError{Kind: wasm.KindTimeout, Msg: "ran past 1s"}, "timeout"},
		{"output cap", &wasm.TaskError{Kind: wasm.KindOutput, Msg: "over 64 bytes"}, "output"},
		{"wrapped crash", errors.Join(errors.New("executor"), &wasm.TaskError{Kind: wasm.KindCrash, Msg: "died"}), "crash"},
		{"not a task failure", wasm.ErrExecutor, "worker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runner := &fakeRunner{run: func(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
				return &wasm.Result{ExitCode: -1}, tc.err
			}}
			rep, _ := execute(t, newFakeGrid(), runner, task("j", 0))
			if rep.ErrorKind != tc.want {
				t.Fatalf("error kind %q, want %q", rep.ErrorKind, tc.want)
			}
			if (rep.Error == "") != (tc.err == nil) {
				t.Fatalf("error %q for %v", rep.Error, tc.err)
			}
		})
	}
}

// TestExecute_StoredInputIsAFileRemovedAfterTheRun: an input stored on the
// storage peers reaches the task as a file under DataDir/inputs holding
// exactly its bytes, never as memory, and the file is gone as soon as the
// run ends, before a large result is stored.
func TestExecute_StoredInputIsAFileRemovedAfterTheRun(t *testing.T) {
	g := newFakeGrid()
	g.storageCfg.InlineThreshold = 16
	input := make([]byte, 100<<10)
	rand.Read(input)
	a := task("j", 0)
	a.InputHash = g.putBlob(input)
	var seen []byte
	var seenPath string
	runner := &fakeRunner{run: func(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
		seenPath = req.StdinPath
		var err error
		seen, err = os.ReadFile(req.StdinPath)
		if req.Stdin != nil {
			return nil, errors.New("stdin given in memory too")
		}
		return &wasm.Result{Stdout: bytes.Repeat([]byte("x"), 17)}, err
	}}
	w := testWorker(t, g, Config{Cores: 1, Pool: runner})
	inputsWhenStoring := []os.DirEntry{}
	g.onPut = func() { inputsWhenStoring, _ = os.ReadDir(w.inputsDir()) }
	rep := newRun(w).execute(context.Background(), a)
	if rep.ErrorKind != "" || rep.StdoutBlob == "" {
		t.Fatalf("report: %+v, want success with a stored stdout", rep)
	}
	if !bytes.Equal(seen, input) {
		t.Fatalf("the task read %d bytes, not the %d of its input", len(seen), len(input))
	}
	if filepath.Dir(seenPath) != w.inputsDir() || strings.HasSuffix(seenPath, partialSuffix) {
		t.Fatalf("stdin file %s, want a complete file in %s", seenPath, w.inputsDir())
	}
	if len(inputsWhenStoring) != 0 {
		t.Fatalf("input files %v still there while the result was stored", inputsWhenStoring)
	}
	assertEmptyDir(t, w.inputsDir())
}

// TestExecute_UnreadableInputIsAWorkerFailureAndLeavesNoFile: when the
// input cannot be read the task is not run, the attempt fails as the
// worker's, and no partial file is left.
func TestExecute_UnreadableInputIsAWorkerFailureAndLeavesNoFile(t *testing.T) {
	g := newFakeGrid()
	a := task("j", 0)
	a.InputHash = g.putBlob([]byte("some input"))
	g.readErr = func(hash string, n int) error {
		if hash == a.InputHash {
			return storage.ErrNotEnoughPeers
		}
		return nil
	}
	runner := &fakeRunner{}
	rep, w := execute(t, g, runner, a)
	if rep.ErrorKind != "worker" || !strings.Contains(rep.Error, "read input") {
		t.Fatalf("report %+v, want a worker failure reading the input", rep)
	}
	if len(runner.started()) != 0 {
		t.Fatal("the task ran without its input")
	}
	assertEmptyDir(t, w.inputsDir())
}

// TestExecute_ModuleIsFetchedOnceAndCached: the first task of a module
// fetches it into DataDir/modules; later tasks use the cache.
func TestExecute_ModuleIsFetchedOnceAndCached(t *testing.T) {
	g := newFakeGrid()
	w := testWorker(t, g, Config{Cores: 1, Pool: &fakeRunner{}})
	r := newRun(w)
	for i := range 3 {
		if rep := r.execute(context.Background(), task("j", i)); rep.ErrorKind != "" {
			t.Fatalf("task %d: %+v", i, rep)
		}
	}
	if n := len(g.callsOf("ReadBlob")); n != 1 {
		t.Fatalf("the module was read %d times, want once", n)
	}
	if !w.modules.Has(testModuleHash) {
		t.Fatal("the module is not in the cache")
	}
}

// TestExecute_ModuleFailures: bytes that are not WebAssembly are an
// invalid_module failure (the job's fault); bytes of another hash, or no
// module at all, are the worker's. The task is not run.
func TestExecute_ModuleFailures(t *testing.T) {
	notWasm := []byte("#!/bin/sh\necho hi\n")
	other := append([]byte("\x00asm\x01\x00\x00\x00"), 0)
	for _, tc := range []struct {
		name    string
		hash    string
		serve   []byte
		want    string
		message string
	}{
		{"not webassembly", wasm.HashModule(notWasm), notWasm, "invalid_module", "not a WebAssembly module"},
		{"wrong bytes", testModuleHash, other, "worker", "hash to " + wasm.HashModule(other)},
		{"missing", wasm.HashModule([]byte("nowhere")), nil, "worker", "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGrid()
			delete(g.blobs, testModuleHash)
			if tc.serve != nil {
				g.blobs[tc.hash] = tc.serve
			}
			a := task("j", 0)
			a.ModuleHash = tc.hash
			runner := &fakeRunner{}
			rep, _ := execute(t, g, runner, a)
			if rep.ErrorKind != tc.want || !strings.Contains(rep.Error, tc.message) {
				t.Fatalf("report %q %q, want %q mentioning %q", rep.ErrorKind, rep.Error, tc.want, tc.message)
			}
			if len(runner.started()) != 0 {
				t.Fatal("the task ran without its module")
			}
		})
	}
}

// TestExecute_ModuleFetchWaitsOutAnElection: a module read that fails
// because the grid has no leader is retried (after a backoff), not charged
// to the task.
func TestExecute_ModuleFetchWaitsOutAnElection(t *testing.T) {
	g := newFakeGrid()
	g.readErr = func(hash string, n int) error {
		if n < 2 {
			return client.ErrUnavailable
		}
		return nil
	}
	rep, _ := execute(t, g, &fakeRunner{}, task("j", 0))
	if rep.ErrorKind != "" {
		t.Fatalf("report %+v, want success after the election", rep)
	}
	if n := len(g.callsOf("ReadBlob")); n != 3 {
		t.Fatalf("%d module reads, want 3 (two unavailable)", n)
	}
}

// TestExecute_ModuleAndInputFetchesWaitOutAServerThatIsGone: a server that
// cannot be dialled or does not answer is the grid's trouble, not the
// task's: the worker tries again and the task runs; a definite refusal
// fails the attempt at once.
func TestExecute_ModuleAndInputFetchesWaitOutAServerThatIsGone(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		name  string
		err   error
		reads int
		ok    bool
	}{
		{"connection refused", refused, 3, true},
		{"no answer", fmt.Errorf("GET x: %w", client.ErrNoAnswer), 3, true},
		{"forbidden", &client.StatusError{Code: http.StatusForbidden, Message: "no"}, 1, false},
	} {
		g := newFakeGrid()
		g.readErr = func(hash string, n int) error {
			if n < 2 {
				return tc.err
			}
			return nil
		}
		rep, _ := execute(t, g, &fakeRunner{}, task("j", 0))
		if (rep.ErrorKind == "") != tc.ok || len(g.callsOf("ReadBlob")) != tc.reads {
			t.Errorf("%s: report %+v after %d reads, want ok %v after %d", tc.name, rep, len(g.callsOf("ReadBlob")), tc.ok, tc.reads)
		}
	}
}

// TestExecute_LargeStdoutGoesToTheStoragePeers: a stdout over the
// cluster's inline threshold is stored as a blob with the job's coding and
// reported by hash; one at the threshold, or one the storage peers cannot
// take, stays inline. A failed run's stdout is treated the same.
func TestExecute_LargeStdoutGoesToTheStoragePeers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size      int
		threshold int64 // the cluster's (0: the servers cannot be asked)
		putErr    error
		runErr    error
		stored    bool
	}{
		{"over the threshold", 17, 16, nil, nil, true},
		{"failed run over the threshold", 17, 16, nil, &wasm.TaskError{Kind: wasm.KindExit, Msg: "1"}, true},
		{"at the threshold", 16, 16, nil, nil, false},
		{"too few storage peers", 17, 16, storage.ErrNotEnoughPeers, nil, false},
		{"store failed", 17, 16, errors.New("peer gone"), nil, false},
		{"default threshold", storage.DefaultInlineThreshold + 1, 0, nil, nil, true},
		{"at the default threshold", storage.DefaultInlineThreshold, 0, nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGrid()
			g.storageCfg.InlineThreshold, g.putErr = tc.threshold, tc.putErr
			if tc.threshold == 0 {
				g.storageErr = client.ErrUnavailable
			}
			stdout := bytes.Repeat([]byte("x"), tc.size)
			runner := &fakeRunner{run: func(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
				return &wasm.Result{Stdout: stdout}, tc.runErr
			}}
			a := task("j", 0)
			a.K, a.M = 3, 2
			rep, _ := execute(t, g, runner, a)
			if tc.stored {
				if rep.Stdout != nil || rep.StdoutBlob != storage.Hash(stdout) {
					t.Fatalf("stdout %d bytes inline, blob %q; want only the blob %s", len(rep.Stdout), rep.StdoutBlob, storage.Hash(stdout))
				}
				puts := g.callsOf("PutBlobFrom")
				wantThreshold := cmp.Or(tc.threshold, storage.DefaultInlineThreshold)
				if len(puts) != 1 || puts[0].opts.K != 3 || puts[0].opts.M != 2 || puts[0].opts.InlineThreshold != wantThreshold {
					t.Fatalf("puts %+v, want one with k=3 m=2 and threshold %d", puts, wantThreshold)
				}
				return
			}
			if !bytes.Equal(rep.Stdout, stdout) || rep.StdoutBlob != "" {
				t.Fatalf("stdout %d bytes inline, blob %q; want all %d inline", len(rep.Stdout), rep.StdoutBlob, len(stdout))
			}
		})
	}
}

// TestExecute_SpilledStdoutIsStreamedFromItsFile: a stdout the task wrote
// to its file (over the inline threshold) is put on the storage peers from
// the file, only as many bytes as the result says, and the file is gone
// after; with too few storage peers a small one goes inline, and one over
// what the ledger keeps inline fails the attempt as the worker's.
func TestExecute_SpilledStdoutIsStreamedFromItsFile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int64
		putErr error
		stored bool
		fails  bool
	}{
		{"stored", 100, nil, true, false},
		{"too few peers, inline", 100, storage.ErrNotEnoughPeers, false, false},
		{"too few peers, too large", storage.MaxInline + 1, storage.ErrNotEnoughPeers, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGrid()
			g.storageCfg.InlineThreshold, g.putErr = 16, tc.putErr
			var path string
			want := bytes.Repeat([]byte("y"), 100)
			runner := &fakeRunner{run: func(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
				path = req.StdoutPath
				if req.StdoutSpill != 16 {
					t.Errorf("spill at %d bytes, want the cluster's inline threshold 16", req.StdoutSpill)
				}
				// What a task writes, plus what it wrote after its result was taken.
				f, err := os.Create(path)
				if err != nil {
					return nil, err
				}
				if tc.size == 100 {
					f.Write(append(want, "late"...))
				} else {
					f.Truncate(tc.size) // sparse: no disk, no memory
				}
				f.Close()
				return &wasm.Result{StdoutSize: tc.size, StdoutSpilled: true}, nil
			}}
			rep, w := execute(t, g, runner, task("j", 0))
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) || filepath.Dir(path) != w.outputsDir() {
				t.Fatalf("stdout file %s: %v, want it gone from %s", path, err, w.outputsDir())
			}
			switch {
			case tc.stored:
				if rep.StdoutBlob != storage.Hash(want) || rep.Stdout != nil || rep.ErrorKind != "" {
					t.Fatalf("report %+v, want the blob of the first 100 bytes", rep)
				}
			case tc.fails:
				if rep.ErrorKind != "worker" || !strings.Contains(rep.Error, "could not be stored") || rep.Stdout != nil {
					t.Fatalf("report kind %q error %q, %d bytes inline", rep.ErrorKind, rep.Error, len(rep.Stdout))
				}
			default:
				if !bytes.Equal(rep.Stdout, want) || rep.StdoutBlob != "" {
					t.Fatalf("inline stdout %q, blob %q", rep.Stdout, rep.StdoutBlob)
				}
			}
		})
	}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("%s still holds %v", dir, left)
	}
}
