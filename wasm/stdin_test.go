package wasm

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

func writeStdinFile(t testing.TB, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A stdin given as a file gives the task exactly what the same bytes given
// as Stdin do, on every engine, in-process and through executors: a
// multi-MiB input through cat, its length through a counter, and an empty
// file.
func TestSandbox_StdinPathGivesTheSameAsStdinBytes(t *testing.T) {
	cat, count := put(t, wasmtest.Cat()), put(t, wasmtest.CountStdin())
	in := make([]byte, 6<<20+12345) // not a whole number of cat's 32 KiB reads
	rand.Read(in)
	path, empty := writeStdinFile(t, in), writeStdinFile(t, nil)
	eachRunner(t, func(t *testing.T, r runner) {
		fromFile, err := r.run(testCtx(t), &Request{ModuleHash: cat, StdinPath: path})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fromFile.Stdout, in) {
			t.Fatalf("stdout is %d bytes, differs from the %d bytes of the stdin file", len(fromFile.Stdout), len(in))
		}
		fromBytes, err := r.run(testCtx(t), &Request{ModuleHash: cat, Stdin: in})
		if err != nil || !bytes.Equal(fromBytes.Stdout, fromFile.Stdout) || !bytes.Equal(fromBytes.Stderr, fromFile.Stderr) {
			t.Fatalf("with the same bytes as Stdin: %d bytes out, %v", len(stdout(fromBytes)), err)
		}
		res, err := r.run(testCtx(t), &Request{ModuleHash: count, StdinPath: path})
		if err != nil || len(res.Stdout) != 4 || binary.LittleEndian.Uint32(res.Stdout) != uint32(len(in)) {
			t.Fatalf("count: got %x, %v, want %d", stdout(res), err, len(in))
		}
		res, err = r.run(testCtx(t), &Request{ModuleHash: cat, StdinPath: empty})
		if err != nil || len(res.Stdout) != 0 {
			t.Fatalf("empty file: got %q, %v", stdout(res), err)
		}
	})
}

// A StdinPath that cannot be opened fails the run at once with a plain
// error naming the file (not a task failure, not a hang, not a crash), and
// the engine or executor runs the next task normally.
func TestSandbox_MissingStdinPathIsAClearError(t *testing.T) {
	cat := put(t, wasmtest.Cat())
	missing := filepath.Join(t.TempDir(), "no-such-input")
	dir := t.TempDir()
	eachRunner(t, func(t *testing.T, r runner) {
		for _, path := range []string{missing, dir} {
			res, err := r.run(testCtx(t), &Request{ModuleHash: cat, StdinPath: path})
			if !errors.Is(err, ErrStdinFile) || KindOf(err) != "" || res != nil {
				t.Fatalf("%s: got %+v, %v: want a plain error wrapping ErrStdinFile", path, res, err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want it to name the file", err)
			}
		}
		_, err := r.run(testCtx(t), &Request{ModuleHash: cat, StdinPath: missing})
		if !strings.Contains(err.Error(), "no such file") {
			t.Fatalf("err = %v, want it to say the file does not exist", err)
		}
		res, err := r.run(testCtx(t), &Request{ModuleHash: cat, Stdin: []byte("next")})
		if err != nil || string(res.Stdout) != "next" {
			t.Fatalf("next task: got %q, %v", stdout(res), err)
		}
	})
}

func TestSandbox_StdinAndStdinPathTogetherAreRefused(t *testing.T) {
	cat := put(t, wasmtest.Cat())
	path := writeStdinFile(t, []byte("file"))
	eachRunner(t, func(t *testing.T, r runner) {
		res, err := r.run(testCtx(t), &Request{ModuleHash: cat, Stdin: []byte("bytes"), StdinPath: path})
		if !errors.Is(err, ErrInvalidRequest) || res != nil {
			t.Fatalf("got %+v, %v: want ErrInvalidRequest", res, err)
		}
	})
}

// A relative StdinPath given to a Pool means the same file to the executor
// as to the caller.
func TestPool_RelativeStdinPathIsTheCallersFile(t *testing.T) {
	cat := put(t, wasmtest.Cat())
	path := writeStdinFile(t, []byte("relative"))
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil {
		t.Skip(err)
	}
	_, pool := shared(t)
	res, err := pool.Run(testCtx(t), &Request{ModuleHash: cat, StdinPath: rel})
	if err != nil || string(res.Stdout) != "relative" {
		t.Fatalf("got %q, %v", stdout(res), err)
	}
}

// openFDs lists the descriptors of the given processes (0: this one) open
// on path, from /proc; ok is false where there is no /proc.
func openFDs(path string, pids ...int) (fds []string, ok bool) {
	for _, pid := range append([]int{0}, pids...) {
		dir := "/proc/self/fd"
		if pid != 0 {
			dir = "/proc/" + strconv.Itoa(pid) + "/fd"
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			if pid == 0 {
				return nil, false
			}
			continue // the child is gone
		}
		for _, e := range entries {
			if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(target, path) {
				fds = append(fds, dir+"/"+e.Name())
			}
		}
	}
	return fds, true
}

// The stdin file is closed once the run returns, whether the task
// succeeded, trapped, was stopped at its output limit or exited early
// without reading it, in-process and in the executors.
func TestSandbox_StdinFileIsClosedOnEveryPath(t *testing.T) {
	cat, trap, exit := put(t, wasmtest.Cat()), put(t, wasmtest.Trap()), put(t, wasmtest.Exit(4))
	in := make([]byte, 1<<20)
	eachRunner(t, func(t *testing.T, r runner) {
		path := writeStdinFile(t, in)
		_, pool := shared(t)
		if _, ok := openFDs(path); !ok {
			t.Skip("no /proc to list open files")
		}
		for _, req := range []*Request{
			{ModuleHash: cat, StdinPath: path},
			{ModuleHash: cat, StdinPath: path, Limits: Limits{MaxOutput: 1000}},
			{ModuleHash: trap, StdinPath: path},
			{ModuleHash: exit, StdinPath: path},
		} {
			_, err := r.run(testCtx(t), req)
			if errors.Is(err, ErrStdinFile) || errors.Is(err, ErrInvalidRequest) {
				t.Fatal(err)
			}
			if fds, _ := openFDs(path, pool.pids()...); len(fds) > 0 {
				t.Fatalf("after %+v (err %v): %s still open on the stdin file", req.Limits, err, fds)
			}
		}
	})
}

// stdinFile reads as a bytes.Reader does whatever its reader does: full
// reads until the end, then EOF; a failed read is EIO for good.
func TestStdinFile_FullReadsEOFAndStickyErrors(t *testing.T) {
	data := []byte("0123456789abcdefghij")
	s := &stdinFile{br: bufio.NewReaderSize(iotestOneByte{bytes.NewReader(data)}, 16)}
	var got []byte
	for _, n := range []int{0, 3, 8, 1, 16, 4} {
		p := make([]byte, n)
		c, err := s.Read(p)
		got = append(got, p[:c]...)
		want := min(n, len(data)-(len(got)-c))
		if c != want || (err != nil) != (n > 0 && want == 0) {
			t.Fatalf("read of %d: got %d, %v; want %d", n, c, err, want)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %q, want %q", got, data)
	}
	if c, err := s.Read(make([]byte, 5)); c != 0 || err != io.EOF {
		t.Fatalf("after the end: %d, %v", c, err)
	}
	bad := &stdinFile{br: bufio.NewReader(io.MultiReader(bytes.NewReader([]byte("ab")), failingReader{}))}
	for range 2 {
		if c, err := bad.Read(make([]byte, 4)); !errors.Is(err, errStdinRead) {
			t.Fatalf("failing reader: %d, %v", c, err)
		}
	}
}

type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), 1)]) }

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// A big stdin file costs an executor's parent nothing: the request frame
// carries the path. (The bytes path sends the whole input down the pipe.)
func TestProtocol_StdinPathRequestIsSmall(t *testing.T) {
	var e encoder
	encodeRequest(&e, &Request{ModuleHash: "h", StdinPath: "/data/inputs/x"})
	if n := e.payloadLen(); n > 64 {
		t.Fatalf("request with a stdin path is %d bytes", n)
	}
	if !slices.Contains(plainErrors, ErrStdinFile) || plainErrors[len(plainErrors)-1] != ErrExecutor {
		t.Fatalf("plainErrors = %v", plainErrors)
	}
}

// At a deadline the stdin file is released too: an interruptible engine
// closes it when it stops the module, and a pool's executor dies with it.
func TestSandbox_StdinFileIsClosedAtATimeout(t *testing.T) {
	loop := put(t, wasmtest.LoopForever())
	path := writeStdinFile(t, []byte("unread"))
	if _, ok := openFDs(path); !ok {
		t.Skip("no /proc to list open files")
	}
	eng := newEngine(t, EngineConfig{CacheDir: testCacheDir, Interruptible: true})
	_, err := eng.Run(testCtx(t), &Request{ModuleHash: loop, StdinPath: path, Limits: Limits{Timeout: 50 * time.Millisecond}})
	wantKind(t, err, KindTimeout)
	if fds, _ := openFDs(path); len(fds) > 0 {
		t.Fatalf("interruptible engine: %s still open", fds)
	}
	p := newPool(t, 1)
	_, err = p.Run(testCtx(t), &Request{ModuleHash: loop, StdinPath: path, Limits: Limits{Timeout: 50 * time.Millisecond}})
	wantKind(t, err, KindTimeout)
	p.Close() // reaps the killed executor
	if fds, _ := openFDs(path); len(fds) > 0 {
		t.Fatalf("pool: %s still open", fds)
	}
}
