package wasm

import (
	"context"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// wazero's binding of peergrid's WASI (wasi.go): a host module of the same
// name as WASI preview 1, whose functions find their run in the context the
// module was called with. A function that stops the module panics with the
// run's stop error; wazero recovers it into the error _start returns.

type wasiRunKey struct{}

func withWASIRun(ctx context.Context, r *wasiRun) context.Context {
	return context.WithValue(ctx, wasiRunKey{}, r)
}

func instantiateWASI(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(wasiModuleName)
	for _, f := range wasiFuncs {
		params := make([]api.ValueType, len(f.params))
		for i, t := range f.params {
			params[i] = api.ValueTypeI32
			if t == wasiI64 {
				params[i] = api.ValueTypeI64
			}
		}
		var results []api.ValueType
		if !f.noResult {
			results = []api.ValueType{api.ValueTypeI32}
		}
		call, noResult, types := f.call, f.noResult, f.params
		fn := api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			r, _ := ctx.Value(wasiRunKey{}).(*wasiRun)
			if r == nil {
				panic("peergrid WASI called outside a run")
			}
			var mem []byte
			if m := mod.Memory(); m != nil {
				mem, _ = m.Read(0, m.Size())
			}
			for i, t := range types { // an i32's upper bits are undefined on wazero's stack
				if t == wasiI32 {
					stack[i] = uint64(uint32(stack[i]))
				}
			}
			errno := call(r, mem, stack)
			if err := r.stopErr(); err != nil {
				panic(err)
			}
			if !noResult {
				stack[0] = uint64(errno)
			}
		})
		b.NewFunctionBuilder().WithGoModuleFunction(fn, params, results).Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}
