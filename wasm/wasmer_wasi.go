//go:build cgo && ((linux && amd64) || darwin)

package wasm

import (
	"github.com/wasmerio/wasmer-go/wasmer"
)

// wasmer's binding of peergrid's WASI (wasi.go). The functions never panic
// (a panic would unwind through wasmer's C frames) and never return an
// error (wasmer-go then frees the trap twice and crashes later): to stop
// the module they set the rewritten module's stop global, which the module
// checks after every host call, or rely on the unreachable placed after
// proc_exit (memcap.go).

// wasmerRun is the state of one run that the host functions see.
type wasmerRun struct {
	*wasiRun
	mem        *wasmer.Memory
	stopGlobal *wasmer.Global // the rewritten module's stop global
}

// memorySize is the size of the run's linear memory now, 0 if it has none.
func (r *wasmerRun) memorySize() uint64 {
	if r.mem == nil {
		return 0
	}
	return uint64(r.mem.DataSize())
}

// halt makes the module trap as soon as the host call returns.
func (r *wasmerRun) halt() {
	if r.stopGlobal != nil {
		_ = r.stopGlobal.Set(int32(1), wasmer.I32)
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
	h := &wasmerHost{funcs: map[string]wasmer.IntoExtern{}}
	for _, f := range wasiFuncs {
		params := make([]wasmer.ValueKind, len(f.params))
		for i, t := range f.params {
			params[i] = wasmer.I32
			if t == wasiI64 {
				params[i] = wasmer.I64
			}
		}
		var results []wasmer.ValueKind
		if !f.noResult {
			results = []wasmer.ValueKind{wasmer.I32}
		}
		ty := wasmer.NewFunctionType(wasmer.NewValueTypes(params...), wasmer.NewValueTypes(results...))
		call, noResult := f.call, f.noResult
		h.funcs[f.name] = wasmer.NewFunction(store, ty, func(a []wasmer.Value) ([]wasmer.Value, error) {
			r := h.run
			errno := uint32(errnoIO)
			if r != nil && r.stop == stopNone {
				args := make([]uint64, len(a))
				for i, v := range a {
					if v.Kind() == wasmer.I64 {
						args[i] = uint64(v.I64())
					} else {
						args[i] = uint64(uint32(v.I32()))
					}
				}
				errno = call(r.wasiRun, r.memory(), args)
				if r.stop != stopNone {
					r.halt()
				}
			}
			if noResult {
				return nil, nil
			}
			return []wasmer.Value{wasmer.NewI32(int32(errno))}, nil
		})
	}
	return h
}
