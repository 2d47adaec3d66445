//go:build cgo && ((linux && amd64) || darwin)

package wasm

import (
	"encoding/binary"
	"io"

	"github.com/wasmerio/wasmer-go/wasmer"
)

// peergrid's own WASI functions for wasmer: the ones through which a task
// reads its input, writes its output, sees time and randomness, and exits.
// They follow wazero's implementation (imports/wasi_snapshot_preview1) to
// the errno, so a task sees the same on both engines. They never panic (a
// panic would unwind through wasmer's C frames) and never return an error
// (wasmer-go then frees the trap twice and crashes later): to stop the
// module they set the rewritten module's stop global, or rely on the
// unreachable placed after proc_exit (memcap.go).

// WASI errno values.
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoFault   = 21
	errnoInval   = 28
	errnoIO      = 29
	errnoNotsup  = 58
)

// wasmerRun is the state of one run that the host functions see.
type wasmerRun struct {
	box      *sandbox
	stdin    io.Reader // the task's input (bytes.Reader or stdinFile: full reads until its end)
	mem      *wasmer.Memory
	stop     *wasmer.Global // the rewritten module's stop global
	exited   bool
	exitCode uint32
}

// halt makes the module trap as soon as the host call returns.
func (r *wasmerRun) halt() {
	if r.stop != nil {
		_ = r.stop.Set(int32(1), wasmer.I32)
	}
}

// memory is the instance's linear memory now (it moves when it grows).
func (r *wasmerRun) memory() []byte {
	if r.mem == nil {
		return nil
	}
	return r.mem.Data()
}

// wasmerHost is one set of host functions, bound to a run while in use.
type wasmerHost struct {
	run   *wasmerRun
	funcs map[string]wasmer.IntoExtern
}

func newWasmerHost(store *wasmer.Store) *wasmerHost {
	h := &wasmerHost{}
	i32, i64 := wasmer.I32, wasmer.I64
	fn := func(params []wasmer.ValueKind, results []wasmer.ValueKind, f func(r *wasmerRun, a []wasmer.Value) ([]wasmer.Value, error)) *wasmer.Function {
		ty := wasmer.NewFunctionType(wasmer.NewValueTypes(params...), wasmer.NewValueTypes(results...))
		return wasmer.NewFunction(store, ty, func(a []wasmer.Value) ([]wasmer.Value, error) { return f(h.run, a) })
	}
	errno := func(f func(r *wasmerRun, a []wasmer.Value) uint32) func(*wasmerRun, []wasmer.Value) ([]wasmer.Value, error) {
		return func(r *wasmerRun, a []wasmer.Value) ([]wasmer.Value, error) {
			if r == nil || r.exited {
				return []wasmer.Value{wasmer.NewI32(errnoIO)}, nil
			}
			return []wasmer.Value{wasmer.NewI32(int32(f(r, a)))}, nil
		}
	}
	ri32 := []wasmer.ValueKind{i32}
	h.funcs = map[string]wasmer.IntoExtern{
		"fd_write":       fn([]wasmer.ValueKind{i32, i32, i32, i32}, ri32, fdWrite),
		"fd_read":        fn([]wasmer.ValueKind{i32, i32, i32, i32}, ri32, errno(fdRead)),
		"clock_time_get": fn([]wasmer.ValueKind{i32, i64, i32}, ri32, errno(clockTimeGet)),
		"clock_res_get":  fn([]wasmer.ValueKind{i32, i32}, ri32, errno(clockResGet)),
		"random_get":     fn([]wasmer.ValueKind{i32, i32}, ri32, errno(randomGet)),
		"poll_oneoff":    fn([]wasmer.ValueKind{i32, i32, i32, i32}, ri32, errno(pollOneoff)),
		"proc_exit":      fn([]wasmer.ValueKind{i32}, nil, procExit),
	}
	return h
}

func u32(v wasmer.Value) uint32 { return uint32(v.I32()) }

// span returns mem[off:off+n], or nil if it is out of bounds.
func span(mem []byte, off, n uint32) ([]byte, bool) {
	end := uint64(off) + uint64(n)
	if end > uint64(len(mem)) {
		return nil, false
	}
	return mem[off:end:end], true
}

func putU32(mem []byte, off, v uint32) bool {
	b, ok := span(mem, off, 4)
	if ok {
		binary.LittleEndian.PutUint32(b, v)
	}
	return ok
}

func putU64(mem []byte, off uint32, v uint64) bool {
	b, ok := span(mem, off, 8)
	if ok {
		binary.LittleEndian.PutUint64(b, v)
	}
	return ok
}

// iovecs calls f with each buffer of the iovec array, stopping when f
// returns false.
func iovecs(mem []byte, iovs, count uint32, f func(b []byte) bool) uint32 {
	vec, ok := span(mem, iovs, count*8)
	if !ok || uint64(count)*8 > 1<<32 {
		return errnoFault
	}
	for i := uint32(0); i < count; i++ {
		off := binary.LittleEndian.Uint32(vec[i*8:])
		n := binary.LittleEndian.Uint32(vec[i*8+4:])
		b, ok := span(mem, off, n)
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
// past the cap stops the run, as the panicking writer does under wazero.
func fdWrite(r *wasmerRun, a []wasmer.Value) ([]wasmer.Value, error) {
	if r == nil || r.exited {
		return []wasmer.Value{wasmer.NewI32(errnoIO)}, nil
	}
	fd, iovs, count, resultN := u32(a[0]), u32(a[1]), u32(a[2]), u32(a[3])
	var w *cappedWriter
	switch fd {
	case 1:
		w = r.box.stdout
	case 2:
		w = r.box.stderr
	default:
		return []wasmer.Value{wasmer.NewI32(errnoBadf)}, nil
	}
	mem := r.memory()
	var n uint32
	hit := false
	errno := iovecs(mem, iovs, count, func(b []byte) bool {
		if w.write(b) {
			hit = true
			return false
		}
		n += uint32(len(b))
		return true
	})
	if hit {
		r.halt()
		return []wasmer.Value{wasmer.NewI32(errnoIO)}, nil
	}
	if errno == errnoSuccess && !putU32(mem, resultN, n) {
		errno = errnoFault
	}
	return []wasmer.Value{wasmer.NewI32(int32(errno))}, nil
}

// fdRead reads the task's input; other descriptors are not open.
func fdRead(r *wasmerRun, a []wasmer.Value) uint32 {
	fd, iovs, count, resultN := u32(a[0]), u32(a[1]), u32(a[2]), u32(a[3])
	if fd != 0 {
		return errnoBadf
	}
	mem := r.memory()
	var n uint32
	failed := false
	errno := iovecs(mem, iovs, count, func(b []byte) bool {
		if len(b) == 0 { // a zero-length iovec may come before others
			return true
		}
		c, err := r.stdin.Read(b)
		n += uint32(c)
		if err != nil && err != io.EOF {
			failed = true // as wazero: the call fails, what it read is lost
			return false
		}
		return c == len(b) // a short read ends the call, as read(2) does
	})
	if failed {
		return errnoIO
	}
	if errno == errnoSuccess && !putU32(mem, resultN, n) {
		return errnoFault
	}
	return errno
}

func clockTimeGet(r *wasmerRun, a []wasmer.Value) uint32 {
	id, result := u32(a[0]), u32(a[2])
	var v int64
	switch id {
	case 0:
		sec, nsec := r.box.clock.walltime()
		v = sec*1e9 + int64(nsec)
	case 1:
		v = r.box.clock.nanotime()
	default:
		return errnoInval
	}
	if !putU64(r.memory(), result, uint64(v)) {
		return errnoFault
	}
	return errnoSuccess
}

// clockResGet reports 1 ns for both clocks, the resolution wazero is given.
func clockResGet(r *wasmerRun, a []wasmer.Value) uint32 {
	id, result := u32(a[0]), u32(a[1])
	if id > 1 {
		return errnoInval
	}
	if !putU64(r.memory(), result, 1) {
		return errnoFault
	}
	return errnoSuccess
}

func randomGet(r *wasmerRun, a []wasmer.Value) uint32 {
	b, ok := span(r.memory(), u32(a[0]), u32(a[1]))
	if !ok {
		return errnoFault
	}
	if _, err := io.ReadFull(r.box.random, b); err != nil {
		return errnoIO
	}
	return errnoSuccess
}

// pollOneoff follows wazero's: clock subscriptions (relative only) sleep
// the shortest timeout on the task's clock, without waiting; reading the
// task's stdio is always ready (its input is all there), writing it is
// "not supported"; other descriptors are not open.
func pollOneoff(r *wasmerRun, a []wasmer.Value) uint32 {
	in, out, nsubs, resultN := u32(a[0]), u32(a[1]), u32(a[2]), u32(a[3])
	if nsubs == 0 {
		return errnoInval
	}
	mem := r.memory()
	inBuf, ok := span(mem, in, nsubs*48)
	if !ok {
		return errnoFault
	}
	outBuf, ok := span(mem, out, nsubs*32)
	if !ok {
		return errnoFault
	}
	clear(outBuf)
	if !putU32(mem, resultN, nsubs) {
		return errnoFault
	}
	timeout := int64(1<<63 - 1)
	var blocking [][]byte // fd_read subscriptions on stdio: answered last, as wazero does
	nevents := uint32(0)
	for i := uint32(0); i < nsubs; i++ {
		sub := inBuf[i*48:]
		evType, arg := sub[8], sub[16:]
		evt := func(errno byte) {
			o := outBuf[nevents*32:]
			copy(o, sub[:8])
			o[8], o[9] = errno, 0
			binary.LittleEndian.PutUint32(o[10:], uint32(evType))
			nevents++
		}
		switch evType {
		case 0: // clock
			switch binary.LittleEndian.Uint16(arg[24:]) {
			case 0:
			case 1:
				return errnoNotsup
			default:
				return errnoInval
			}
			timeout = min(timeout, int64(binary.LittleEndian.Uint64(arg[8:])))
			evt(errnoSuccess)
		case 1: // fd_read
			fd := int32(binary.LittleEndian.Uint32(arg))
			switch {
			case fd < 0:
				return errnoBadf
			case fd > 2:
				evt(errnoBadf)
			default:
				blocking = append(blocking, sub)
			}
		case 2: // fd_write
			fd := int32(binary.LittleEndian.Uint32(arg))
			switch {
			case fd < 0:
				return errnoBadf
			case fd > 2:
				evt(errnoBadf)
			default:
				evt(errnoNotsup)
			}
		default:
			return errnoInval
		}
	}
	if len(blocking) == 0 {
		if timeout > 0 {
			r.box.clock.sleep(timeout)
		}
		return errnoSuccess
	}
	for _, sub := range blocking {
		o := outBuf[nevents*32:]
		copy(o, sub[:8])
		binary.LittleEndian.PutUint32(o[10:], 1)
		nevents++
	}
	return errnoSuccess
}

// procExit records the code; the unreachable after the call stops the run.
func procExit(r *wasmerRun, a []wasmer.Value) ([]wasmer.Value, error) {
	if r != nil && !r.exited {
		r.exited, r.exitCode = true, u32(a[0])
		r.halt()
	}
	return nil, nil
}
