package wasm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/gowasm"
)

// crashExecutorName, as a request's Name, makes the executor child panic
// before running the task (see executorTestHook in TestMain).
const crashExecutorName = "crash-executor"

// startedMarker + a path, as a request's Name, makes the executor create
// that file just before it runs the task.
const startedMarker = "started-marker:"

// ranMarker + a path, as a request's Name, makes the executor append a
// byte to that file just before it runs the task: how many times it ran.
const ranMarker = "ran-marker:"

// retainMarker + a number of MiB, as a request's Name, makes the executor
// allocate that much, touch it and keep it, before it runs the task: an
// executor whose memory grew and stays grown.
const retainMarker = "retain-mib:"

var retained [][]byte // what retainMarker made an executor keep

// checkedArg, an argument of an executor's command, makes it run every
// wasmtime task with bounds-checked code (modeChecked).
const checkedArg = "peergrid-test-memory-mode-checked"

// Shared by the whole package run: one compile cache (so each module is
// compiled once, also by executors), one module directory, the Go guest.
var (
	testCacheDir string
	testModules  ModuleDir
	goGuest      []byte

	sharedOnce    sync.Once
	sharedEngine  Engine            // wazero
	sharedEngines map[string]Engine // one per available engine
	sharedPool    *Pool             // offers every available engine
	sharedErr     error

	// wasmtime with bounds-checked code, where built: in process, and a
	// pool of executors running every task with it (checkedMarker).
	sharedChecked     Engine
	sharedCheckedPool *Pool
)

func TestMain(m *testing.M) {
	executorTestHook = func(req *Request, liftBox func()) {
		if req.Name == crashExecutorName {
			panic("test hook: executor crashes on purpose")
		}
		if path, ok := strings.CutPrefix(req.Name, startedMarker); ok {
			liftBox()
			_ = os.WriteFile(path, nil, 0o644) // tell the test the task is here
		}
		if path, ok := strings.CutPrefix(req.Name, ranMarker); ok {
			liftBox()
			f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err == nil {
				_, _ = f.Write([]byte{1})
				_ = f.Close()
			}
		}
		if mib, ok := strings.CutPrefix(req.Name, retainMarker); ok {
			liftBox()
			n, _ := strconv.Atoi(mib)
			b := make([]byte, n<<20)
			for i := range b {
				b[i] = 1
			}
			retained = append(retained, b)
		}
	}
	if slices.Contains(os.Args[1:], checkedArg) {
		mode := modeChecked
		forcedMemoryMode.Store(&mode)
	}
	MaybeRunExecutor() // the pool's children are this test binary
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "peergrid-wasm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testCacheDir = filepath.Join(dir, "compiled")
	testModules = ModuleDir(filepath.Join(dir, "modules"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if goGuest, err = gowasm.Build(ctx, os.DirFS("testdata/guest"), ""); err != nil {
		fmt.Fprintln(os.Stderr, "build Go guest:", err)
		return 1
	}
	code := m.Run()
	for _, p := range []*Pool{sharedPool, sharedCheckedPool} {
		if p != nil {
			p.Close()
		}
	}
	for _, eng := range sharedEngines {
		eng.Close(context.Background())
	}
	if sharedChecked != nil {
		sharedChecked.Close(context.Background())
	}
	return code
}

// shared returns the package's wazero engine and pool (Size 2, every
// available engine), made on first use.
func shared(t testing.TB) (Engine, *Pool) {
	t.Helper()
	sharedOnce.Do(func() {
		ctx := context.Background()
		sharedEngines = map[string]Engine{}
		for _, name := range AvailableEngines() {
			var eng Engine
			if eng, sharedErr = NewEngine(ctx, name, EngineConfig{CacheDir: testCacheDir, ModuleDir: testModules}); sharedErr != nil {
				return
			}
			sharedEngines[name] = eng
		}
		sharedEngine = sharedEngines[EngineWazero]
		if sharedPool, sharedErr = NewPool(ctx, PoolConfig{Size: 2, CacheDir: testCacheDir, ModuleDir: testModules}); sharedErr != nil {
			return
		}
		sharedChecked, sharedCheckedPool, sharedErr = newCheckedWasmtime(ctx)
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedEngine, sharedPool
}

// sharedEngineNamed returns the package's in-process engine of that name.
func sharedEngineNamed(t testing.TB, name string) Engine {
	shared(t)
	return sharedEngines[name]
}

// runner is one way to run a request: an engine, in-process or through
// executors. Every test that goes through eachRunner is part of the
// contract suite: every engine must pass it.
type runner struct {
	name   string
	engine string
	run    func(context.Context, *Request) (*Result, error)
}

func runners(t *testing.T) []runner {
	_, pool := shared(t)
	var rs []runner
	for _, name := range AvailableEngines() {
		rs = append(rs,
			runner{name + "/engine", name, sharedEngines[name].Run},
			runner{name + "/pool", name, func(ctx context.Context, req *Request) (*Result, error) {
				r := *req
				r.Engine = name
				return pool.Run(ctx, &r)
			}})
	}
	if sharedChecked != nil {
		rs = append(rs,
			runner{"wasmtime-checked/engine", EngineWasmtime, sharedChecked.Run},
			runner{"wasmtime-checked/pool", EngineWasmtime, checkedPoolRun})
	}
	return rs
}

// newCheckedWasmtime returns, where wasmtime is built, an in-process
// wasmtime engine and a pool of wasmtime executors that run every task
// with bounds-checked code, so the contract suite covers both memory modes.
func newCheckedWasmtime(ctx context.Context) (Engine, *Pool, error) {
	if !wasmtimeBuilt {
		return nil, nil, nil
	}
	eng, err := NewEngine(ctx, EngineWasmtime, EngineConfig{CacheDir: testCacheDir, ModuleDir: testModules})
	if err != nil {
		return nil, nil, err
	}
	mode := modeChecked
	eng.(interface{ memoryModes() *memoryModes }).memoryModes().override = &mode
	pool, err := newCheckedPool(ctx, 2)
	return eng, pool, err
}

// newCheckedPool returns a pool of size wasmtime executors that run every
// task with bounds-checked code.
func newCheckedPool(ctx context.Context, size int) (*Pool, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return NewPool(ctx, PoolConfig{Size: size, CacheDir: testCacheDir, ModuleDir: testModules,
		Engines: []string{EngineWasmtime}, Command: []string{exe, checkedArg}})
}

// checkedPoolRun runs req on sharedCheckedPool's bounds-checked wasmtime.
func checkedPoolRun(ctx context.Context, req *Request) (*Result, error) {
	r := *req
	r.Engine = EngineWasmtime
	return sharedCheckedPool.Run(ctx, &r)
}

// eachRunner runs f as a parallel subtest per runner.
func eachRunner(t *testing.T, f func(t *testing.T, r runner)) {
	for _, r := range runners(t) {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			f(t, r)
		})
	}
}

func put(t testing.TB, module []byte) string {
	t.Helper()
	hash, err := testModules.Put(module)
	if err != nil {
		t.Fatal(err)
	}
	return hash
}

// testCtx bounds a test's runs, so a broken limit fails instead of hanging.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newEngine(t testing.TB, cfg EngineConfig) Engine {
	t.Helper()
	if cfg.ModuleDir == "" {
		cfg.ModuleDir = testModules
	}
	eng, err := NewWazero(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	return eng
}

// newTestPool starts a pool of cfg with the tests' module and cache
// directories, its executors started within testCtx's bound, closed when
// the test ends.
func newTestPool(t *testing.T, cfg PoolConfig) *Pool {
	t.Helper()
	cfg.CacheDir, cfg.ModuleDir = testCacheDir, testModules
	p, err := NewPool(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func newPool(t testing.TB, size int) *Pool {
	t.Helper()
	p, err := NewPool(context.Background(), PoolConfig{Size: size, CacheDir: testCacheDir, ModuleDir: testModules})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// wantKind fails unless err is a *TaskError of kind, matching its sentinel.
func wantKind(t *testing.T, err error, kind Kind) {
	t.Helper()
	if KindOf(err) != kind {
		t.Fatalf("err = %v (kind %q), want kind %q", err, KindOf(err), kind)
	}
	if !errors.Is(err, kindSentinels[kind]) {
		t.Fatalf("err = %v does not match sentinel %v", err, kindSentinels[kind])
	}
}
