package wasm

import (
	"encoding/binary"
	"errors"
	"io"

	"github.com/tetratelabs/wazero/sys"
)

// peergrid's own WASI preview 1: every function a task may import, written
// once and bound into every engine (wazero.go, wasmer_wasi.go,
// wasmtime.go), so a module sees the same answers, to the errno, whichever
// engine runs it. The answers are those of the reference implementation
// (wasmtime's preview 1, with no preopened directories, stdin, stdout and
// stderr as streams), which TestWASI_ReferenceAnswers checks where this
// binary has wasmtime. The task's world is three streams and nothing else:
//
//   - fds 0, 1, 2 are stdin (readable), stdout and stderr (writable): no
//     files, no directories (so no preopens), no sockets. They can be
//     closed and renumbered; nothing else can ever be opened.
//   - the clocks are the task's deterministic clock (sandbox.go); a sleep
//     (poll_oneoff on clocks only) moves it instead of waiting.
//   - random_get reads the task's seeded random source.
//
// Where this differs from an engine's own WASI (wazero's or wasmer's), the
// reference wins: poll_oneoff on stdout and stderr is ready for writing (not
// ENOTSUP), on a closed fd EBADF; sock_* on stdio is ENOTSOCK; path_open
// and fd_prestat_get with no preopens are EBADF. One deliberate difference:
// fd_write writes every iovec (the reference writes only the first), which
// a guest cannot tell from a full write.

// WASI errno values (witx order).
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoFault   = 21
	errnoInval   = 28
	errnoIO      = 29
	errnoNotdir  = 54
	errnoNotsock = 57
	errnoNotsup  = 58
	errnoSpipe   = 70
)

// WASI rights a stream has (fd_fdstat_get).
const (
	rightFdRead  = 1 << 1
	rightFdWrite = 1 << 6
)

// wasiType is a parameter's value type.
type wasiType byte

const (
	wasiI32 wasiType = iota
	wasiI64
)

// wasiFunc is one WASI function: its signature and what it does. call
// reads its arguments from a (each widened to 64 bits) and the guest's
// memory now, and returns the errno; to stop the module it sets the run's
// stop, which the engine's binding then acts on.
type wasiFunc struct {
	name     string
	params   []wasiType
	noResult bool // proc_exit
	call     func(r *wasiRun, mem []byte, a []uint64) uint32
}

// stopKind says why a host call wants the module stopped.
type stopKind byte

const (
	stopNone   stopKind = iota
	stopExit            // proc_exit: wasiRun.exitCode
	stopOutput          // the output cap was reached (sandbox.outputError)
	stopTrap            // an argument the reference traps on: wasiRun.trapMsg
)

// fdKind is what one of the task's three descriptors is now.
type fdKind byte

const (
	fdClosed fdKind = iota
	fdStdin
	fdStdout
	fdStderr
)

// wasiRun is the state of one run that the WASI functions see.
type wasiRun struct {
	box   *sandbox
	stdin io.Reader // the task's input (bytes.Reader or stdinFile: full reads until its end)
	args  []string  // argv, argv[0] included
	env   []string  // KEY=value, sorted by key
	fds   [3]fdKind

	stop     stopKind
	exitCode uint32
	trapMsg  string
}

func newWASIRun(req *Request, box *sandbox, stdin io.Reader) *wasiRun {
	r := &wasiRun{box: box, stdin: stdin, fds: [3]fdKind{fdStdin, fdStdout, fdStderr}}
	r.args = append([]string{req.argv0()}, req.Args...)
	for _, k := range sortedEnv(req.Env) {
		r.env = append(r.env, k+"="+req.Env[k])
	}
	return r
}

// stopped reports whether the module must stop, and why, as an error an
// engine can return (classify reads the box and the exit code itself).
func (r *wasiRun) stopErr() error {
	switch r.stop {
	case stopExit:
		return exitErr(r.exitCode)
	case stopOutput:
		return errOutputLimit
	case stopTrap:
		return errors.New("wasm error: " + r.trapMsg)
	}
	return nil
}

func exitErr(code uint32) error { return sys.NewExitError(code) }

// kind is what fd is, or fdClosed for anything not open.
func (r *wasiRun) kind(fd uint64) fdKind {
	if uint32(fd) < 3 && fd>>32 == 0 {
		return r.fds[fd]
	}
	return fdClosed
}

func (r *wasiRun) trap(msg string) uint32 {
	r.stop, r.trapMsg = stopTrap, msg
	return errnoInval
}

// wasiFuncs is the whole of WASI preview 1, in witx order.
var wasiFuncs = func() []wasiFunc {
	i, l := wasiI32, wasiI64
	p := func(ts ...wasiType) []wasiType { return ts }
	badf := func(*wasiRun, []byte, []uint64) uint32 { return errnoBadf }
	return []wasiFunc{
		{"args_get", p(i, i), false, func(r *wasiRun, m []byte, a []uint64) uint32 { return putStrings(m, r.args, a[0], a[1]) }},
		{"args_sizes_get", p(i, i), false, func(r *wasiRun, m []byte, a []uint64) uint32 { return putSizes(m, r.args, a[0], a[1]) }},
		{"environ_get", p(i, i), false, func(r *wasiRun, m []byte, a []uint64) uint32 { return putStrings(m, r.env, a[0], a[1]) }},
		{"environ_sizes_get", p(i, i), false, func(r *wasiRun, m []byte, a []uint64) uint32 { return putSizes(m, r.env, a[0], a[1]) }},
		{"clock_res_get", p(i, i), false, clockResGet},
		{"clock_time_get", p(i, l, i), false, clockTimeGet},
		{"fd_advise", p(i, l, l, i), false, badf},
		{"fd_allocate", p(i, l, l), false, badf},
		{"fd_close", p(i), false, fdClose},
		{"fd_datasync", p(i), false, badf},
		{"fd_fdstat_get", p(i, i), false, fdFdstatGet},
		{"fd_fdstat_set_flags", p(i, i), false, badf},
		{"fd_fdstat_set_rights", p(i, l, l), false, badf},
		{"fd_filestat_get", p(i, i), false, fdFilestatGet},
		{"fd_filestat_set_size", p(i, l), false, badf},
		{"fd_filestat_set_times", p(i, l, l, i), false, badf},
		{"fd_pread", p(i, i, i, l, i), false, func(r *wasiRun, _ []byte, a []uint64) uint32 { return seekable(r, a[0], fdStdin) }},
		{"fd_prestat_get", p(i, i), false, badf},
		{"fd_prestat_dir_name", p(i, i, i), false, fdPrestatDirName},
		{"fd_pwrite", p(i, i, i, l, i), false, func(r *wasiRun, _ []byte, a []uint64) uint32 { return seekable(r, a[0], fdStdout, fdStderr) }},
		{"fd_read", p(i, i, i, i), false, fdRead},
		{"fd_readdir", p(i, i, i, l, i), false, badf},
		{"fd_renumber", p(i, i), false, fdRenumber},
		{"fd_seek", p(i, l, i, i), false, fdSeek},
		{"fd_sync", p(i), false, badf},
		{"fd_tell", p(i, i), false, func(r *wasiRun, _ []byte, a []uint64) uint32 { return seekable(r, a[0], fdStdin, fdStdout, fdStderr) }},
		{"fd_write", p(i, i, i, i), false, fdWrite},
		{"path_create_directory", p(i, i, i), false, badf},
		{"path_filestat_get", p(i, i, i, i, i), false, badf},
		{"path_filestat_set_times", p(i, i, i, i, l, l, i), false, badf},
		{"path_link", p(i, i, i, i, i, i, i), false, badf},
		{"path_open", p(i, i, i, i, i, l, l, i, i), false, badf},
		{"path_readlink", p(i, i, i, i, i, i), false, badf},
		{"path_remove_directory", p(i, i, i), false, badf},
		{"path_rename", p(i, i, i, i, i, i), false, badf},
		{"path_symlink", p(i, i, i, i, i), false, badf},
		{"path_unlink_file", p(i, i, i), false, badf},
		{"poll_oneoff", p(i, i, i, i), false, pollOneoff},
		{"proc_exit", p(i), true, procExit},
		{"proc_raise", p(i), false, func(*wasiRun, []byte, []uint64) uint32 { return errnoNotsup }},
		{"sched_yield", nil, false, func(*wasiRun, []byte, []uint64) uint32 { return errnoSuccess }},
		{"random_get", p(i, i), false, randomGet},
		{"sock_accept", p(i, i, i), false, notSocket},
		{"sock_recv", p(i, i, i, i, i, i), false, notSocket},
		{"sock_send", p(i, i, i, i, i), false, notSocket},
		{"sock_shutdown", p(i, i), false, notSocket},
	}
}()

// wasiFunctionNames is the WASI preview 1 functions the sandbox provides,
// for every engine.
var wasiFunctionNames = func() map[string]bool {
	names := map[string]bool{}
	for _, f := range wasiFuncs {
		names[f.name] = true
	}
	return names
}()

// span returns mem[off:off+n], or nil if it is out of bounds.
func span(mem []byte, off, n uint64) ([]byte, bool) {
	end := off + n
	if off > 1<<32 || n > 1<<32 || end > uint64(len(mem)) {
		return nil, false
	}
	return mem[off:end:end], true
}

func putU32(mem []byte, off uint64, v uint32) bool {
	b, ok := span(mem, off, 4)
	if ok {
		binary.LittleEndian.PutUint32(b, v)
	}
	return ok
}

func putU64(mem []byte, off uint64, v uint64) bool {
	b, ok := span(mem, off, 8)
	if ok {
		binary.LittleEndian.PutUint64(b, v)
	}
	return ok
}

// putStrings writes strs NUL-terminated at buf and their addresses at ptrs
// (args_get, environ_get).
func putStrings(mem []byte, strs []string, ptrs, buf uint64) uint32 {
	for _, s := range strs {
		b, ok := span(mem, buf, uint64(len(s))+1)
		if !ok || !putU32(mem, ptrs, uint32(buf)) {
			return errnoFault
		}
		copy(b, s)
		b[len(s)] = 0
		ptrs, buf = ptrs+4, buf+uint64(len(s))+1
	}
	return errnoSuccess
}

func putSizes(mem []byte, strs []string, count, size uint64) uint32 {
	n := 0
	for _, s := range strs {
		n += len(s) + 1
	}
	if !putU32(mem, count, uint32(len(strs))) || !putU32(mem, size, uint32(n)) {
		return errnoFault
	}
	return errnoSuccess
}

// clockValue reads the task's clock id, or returns the errno (EBADF for the
// CPU-time clocks the reference does not offer); an id that is no clock at
// all traps, as the reference's argument decoding does.
func clockValue(r *wasiRun, id uint64) (int64, uint32) {
	switch id {
	case 0:
		sec, nsec := r.box.clock.walltime()
		return sec*1e9 + int64(nsec), errnoSuccess
	case 1:
		return r.box.clock.nanotime(), errnoSuccess
	case 2, 3:
		return 0, errnoBadf
	}
	return 0, r.trap("invalid clock id")
}

func clockTimeGet(r *wasiRun, mem []byte, a []uint64) uint32 {
	v, errno := clockValue(r, uint64(uint32(a[0])))
	if errno != errnoSuccess {
		return errno
	}
	if !putU64(mem, a[2], uint64(v)) {
		return errnoFault
	}
	return errnoSuccess
}

// clockResGet reports 1 ns for both clocks.
func clockResGet(r *wasiRun, mem []byte, a []uint64) uint32 {
	switch id := uint32(a[0]); {
	case id == 2 || id == 3:
		return errnoBadf
	case id > 3:
		return r.trap("invalid clock id")
	}
	if !putU64(mem, a[1], 1) {
		return errnoFault
	}
	return errnoSuccess
}

func fdClose(r *wasiRun, _ []byte, a []uint64) uint32 {
	if r.kind(a[0]) == fdClosed {
		return errnoBadf
	}
	r.fds[a[0]] = fdClosed
	return errnoSuccess
}

// fdFdstatGet: a stream has no file type, no flags, and the right to read
// (stdin) or write (stdout, stderr).
func fdFdstatGet(r *wasiRun, mem []byte, a []uint64) uint32 {
	var rights uint64
	switch r.kind(a[0]) {
	case fdClosed:
		return errnoBadf
	case fdStdin:
		rights = rightFdRead
	default:
		rights = rightFdWrite
	}
	b, ok := span(mem, a[1], 24)
	if !ok {
		return errnoFault
	}
	clear(b)
	binary.LittleEndian.PutUint64(b[8:], rights)
	binary.LittleEndian.PutUint64(b[16:], rights)
	return errnoSuccess
}

// fdFilestatGet: a stream's filestat is all zero.
func fdFilestatGet(r *wasiRun, mem []byte, a []uint64) uint32 {
	if r.kind(a[0]) == fdClosed {
		return errnoBadf
	}
	b, ok := span(mem, a[1], 64)
	if !ok {
		return errnoFault
	}
	clear(b)
	return errnoSuccess
}

func fdPrestatDirName(r *wasiRun, _ []byte, a []uint64) uint32 {
	if r.kind(a[0]) == fdClosed {
		return errnoBadf
	}
	return errnoNotdir
}

// seekable answers a positioned or seeking call on a stream: ESPIPE if fd
// is one of the kinds the call applies to, else EBADF.
func seekable(r *wasiRun, fd uint64, kinds ...fdKind) uint32 {
	k := r.kind(fd)
	for _, want := range kinds {
		if k == want {
			return errnoSpipe
		}
	}
	return errnoBadf
}

func fdSeek(r *wasiRun, _ []byte, a []uint64) uint32 {
	if uint32(a[2]) > 2 {
		return r.trap("invalid whence")
	}
	return seekable(r, a[0], fdStdin, fdStdout, fdStderr)
}

// fdRenumber moves from onto to (closing what to was); both must be open.
func fdRenumber(r *wasiRun, _ []byte, a []uint64) uint32 {
	from, to := r.kind(a[0]), r.kind(a[1])
	if from == fdClosed || to == fdClosed {
		return errnoBadf
	}
	if a[0] != a[1] {
		r.fds[a[1]], r.fds[a[0]] = from, fdClosed
	}
	return errnoSuccess
}

func notSocket(r *wasiRun, _ []byte, a []uint64) uint32 {
	if r.kind(a[0]) == fdClosed {
		return errnoBadf
	}
	return errnoNotsock
}

// iovecs calls f with each buffer of the iovec array, stopping when f
// returns false.
func iovecs(mem []byte, iovs, count uint64, f func(b []byte) bool) uint32 {
	vec, ok := span(mem, iovs, count*8)
	if !ok {
		return errnoFault
	}
	for i := uint64(0); i < count; i++ {
		off := binary.LittleEndian.Uint32(vec[i*8:])
		n := binary.LittleEndian.Uint32(vec[i*8+4:])
		b, ok := span(mem, uint64(off), uint64(n))
		if !ok {
			return errnoFault
		}
		if !f(b) {
			break
		}
	}
	return errnoSuccess
}

// fdWrite writes to stdout or stderr, under the output cap: the first byte
// past the cap stops the run.
func fdWrite(r *wasiRun, mem []byte, a []uint64) uint32 {
	var w *cappedWriter
	switch r.kind(a[0]) {
	case fdStdout:
		w = r.box.stdout
	case fdStderr:
		w = r.box.stderr
	default:
		return errnoBadf
	}
	var n uint32
	errno := iovecs(mem, a[1], a[2], func(b []byte) bool {
		if w.write(b) {
			r.stop = stopOutput
			return false
		}
		n += uint32(len(b))
		return true
	})
	if r.stop == stopOutput {
		return errnoIO
	}
	if errno == errnoSuccess && !putU32(mem, a[3], n) {
		errno = errnoFault
	}
	return errno
}

// fdRead reads the task's input: a short read ends the call, as read(2)
// does, and a failed read fails it (what it read is lost).
func fdRead(r *wasiRun, mem []byte, a []uint64) uint32 {
	if r.kind(a[0]) != fdStdin {
		return errnoBadf
	}
	var n uint32
	failed := false
	errno := iovecs(mem, a[1], a[2], func(b []byte) bool {
		if len(b) == 0 { // a zero-length iovec may come before others
			return true
		}
		c, err := r.stdin.Read(b)
		n += uint32(c)
		if err != nil && err != io.EOF {
			failed = true
			return false
		}
		return c == len(b)
	})
	if failed {
		return errnoIO
	}
	if errno == errnoSuccess && !putU32(mem, a[3], n) {
		return errnoFault
	}
	return errno
}

func randomGet(r *wasiRun, mem []byte, a []uint64) uint32 {
	b, ok := span(mem, a[0], a[1])
	if !ok {
		return errnoFault
	}
	if _, err := io.ReadFull(r.box.random, b); err != nil {
		return errnoIO
	}
	return errnoSuccess
}

func procExit(r *wasiRun, _ []byte, a []uint64) uint32 {
	r.stop, r.exitCode = stopExit, uint32(a[0])
	return errnoSuccess
}

// Subscription and event layout (witx): a subscription is 48 bytes
// (userdata u64, tag u8 at 8, its body at 16), an event 32 (userdata,
// errno u16 at 8, type u8 at 10, fd_readwrite nbytes u64 at 16, flags u16
// at 24).
const (
	subSize   = 48
	eventSize = 32
)

// pollOneoff answers as the reference does on three streams: stdin is
// always ready to read and stdout and stderr to write (1 byte, as the
// reference says of streams); a subscription on a closed fd, or on the
// wrong direction of a stream, fails the call with EBADF; if any stream is
// subscribed, only the streams' events are returned; otherwise the task's
// clock jumps to the earliest clock deadline (relative or absolute) and
// the clocks due by then fire, in subscription order.
func pollOneoff(r *wasiRun, mem []byte, a []uint64) uint32 {
	in, out, nsubs := a[0], a[1], a[2]
	if nsubs == 0 {
		return errnoInval
	}
	subs, ok := span(mem, in, nsubs*subSize)
	if !ok {
		return errnoFault
	}
	if _, ok := span(mem, out, nsubs*eventSize); !ok {
		return errnoFault
	}
	deadlines := make([]int64, nsubs)
	streams := false
	for i := range nsubs {
		sub := subs[i*subSize:]
		switch sub[8] {
		case 0: // clock: id u32 at 16, timeout u64 at 24, flags u16 at 40
			now, errno := pollClock(r, sub)
			if errno != errnoSuccess {
				return errno
			}
			deadlines[i] = now
		case 1, 2: // fd_read, fd_write: fd u32 at 16
			k := r.kind(uint64(binary.LittleEndian.Uint32(sub[16:])))
			if k == fdClosed || (sub[8] == 1) != (k == fdStdin) {
				return errnoBadf
			}
			streams = true
		default:
			return errnoInval
		}
	}
	var due int64
	if !streams {
		due = deadlines[0]
		for i := range nsubs {
			if subs[i*subSize+8] == 0 {
				due = min(due, deadlines[i])
			}
		}
		r.box.clock.sleep(due)
	}
	n := uint64(0)
	for i := range nsubs {
		sub := subs[i*subSize:]
		if (sub[8] == 0) == streams || (sub[8] == 0 && deadlines[i] > due) {
			continue
		}
		ev, _ := span(mem, out+n*eventSize, eventSize)
		clear(ev)
		copy(ev, sub[:8])
		ev[10] = sub[8]
		if sub[8] != 0 {
			ev[16] = 1
		}
		n++
	}
	if !putU32(mem, a[3], uint32(n)) {
		return errnoFault
	}
	return errnoSuccess
}

// pollClock returns how long from now a clock subscription is due (0 if
// already), or its errno.
func pollClock(r *wasiRun, sub []byte) (int64, uint32) {
	id := binary.LittleEndian.Uint32(sub[16:])
	timeout := int64(binary.LittleEndian.Uint64(sub[24:]))
	if id > 1 {
		return 0, errnoInval
	}
	if binary.LittleEndian.Uint16(sub[40:])&1 == 0 { // relative
		return max(timeout, 0), errnoSuccess
	}
	var now int64
	if id == 0 {
		sec, nsec := r.box.clock.peekWalltime()
		now = sec*1e9 + int64(nsec)
	} else {
		now = r.box.clock.peekNanotime()
	}
	return max(timeout-now, 0), errnoSuccess
}
