package wasm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

// Environment of an executor child.
const (
	executorEnv       = "PEERGRID_EXECUTOR" // "1" in an executor child
	executorCacheEnv  = "PEERGRID_EXECUTOR_CACHE_DIR"
	executorModuleEnv = "PEERGRID_EXECUTOR_MODULE_DIR"
)

// executorTestHook, if set (by tests, before MaybeRunExecutor), is called by
// the executor before each run; tests use it to crash an executor.
var executorTestHook func(*Request)

// MaybeRunExecutor turns this process into an executor if it was started as
// one (PEERGRID_EXECUTOR=1): it serves run requests on stdin/stdout until
// stdin ends, then exits. Otherwise it returns at once. Call it first in
// main, and in TestMain of every package whose tests use a Pool, because
// the Pool's children are the binary itself.
func MaybeRunExecutor() {
	if os.Getenv(executorEnv) != "1" {
		return
	}
	os.Exit(runExecutor())
}

func runExecutor() int {
	proto := os.Stdout
	os.Stdout = os.Stderr // a stray print must not corrupt the protocol
	// The watchdog must be able to run beside a task spinning on one thread.
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
	ctx := context.Background()
	eng, err := NewWazero(ctx, EngineConfig{
		CacheDir:  os.Getenv(executorCacheEnv),
		ModuleDir: ModuleDir(os.Getenv(executorModuleEnv)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "peergrid executor:", err)
		return 1
	}
	ex := &executorServer{engine: eng, out: &frameWriter{w: proto}}
	if err := ex.serve(bufio.NewReaderSize(os.Stdin, 64<<10)); err != nil {
		fmt.Fprintln(os.Stderr, "peergrid executor:", err)
		return 1
	}
	return 0
}

// executorServer runs one request at a time for its parent.
type executorServer struct {
	engine Engine
	out    *frameWriter
	enc    encoder
}

// serve answers requests until the parent closes stdin. It reads them on
// this goroutine: a reader goroutine would add a thread wake-up per task.
func (ex *executorServer) serve(in *bufio.Reader) error {
	encodeHello(&ex.enc, os.Getpid())
	if err := ex.out.write(&ex.enc); err != nil {
		return err
	}
	go exitWithParent(os.Getppid())
	for {
		f, err := readFrame(in)
		if errors.Is(err, io.EOF) {
			return nil // the parent is done with us
		}
		if err != nil {
			return err
		}
		req, err := decodeRequest(f)
		if err != nil {
			return err
		}
		if err := ex.handle(req); err != nil {
			return err
		}
	}
}

// exitWithParent ends an executor whose parent died without killing it
// (it would otherwise run its task to the end, possibly never).
func exitWithParent(ppid int) {
	for range time.Tick(time.Second) {
		if os.Getppid() != ppid {
			os.Exit(0)
		}
	}
}

// handle runs one request. With a timeout, a watchdog sends back what the
// task wrote so far when the deadline passes, since nothing can stop the
// running module; the parent then kills this process. Whichever of the two
// answers first answers alone.
func (ex *executorServer) handle(req *Request) error {
	if executorTestHook != nil {
		executorTestHook(req)
	}
	var answered atomic.Bool
	probe := &runProbe{}
	if req.Limits.Timeout > 0 {
		t := time.AfterFunc(req.Limits.Timeout, func() {
			if answered.CompareAndSwap(false, true) {
				var e encoder
				out, errOut := encodeResponse(&e, probe.partial(), timeoutError(req.Limits.Timeout), true)
				_ = ex.out.write(&e, out, errOut)
			}
		})
		defer t.Stop()
	}
	res, err := ex.engine.Run(withProbe(context.Background(), probe), req)
	if !answered.CompareAndSwap(false, true) {
		select {} // the watchdog answered; the parent kills us
	}
	out, errOut := encodeResponse(&ex.enc, res, err, false)
	return ex.out.write(&ex.enc, out, errOut)
}
