//go:build !(cgo && (linux || darwin) && (amd64 || arm64))

package wasm

import (
	"context"
	"fmt"
)

// wasmtimeBuilt: this binary has no wasmtime engine (built without cgo, or
// for a platform wasmtime-go ships no library for).
const wasmtimeBuilt = false

func newWasmtime(context.Context, EngineConfig) (Engine, error) {
	return nil, fmt.Errorf("%w: wasmtime (this binary was built without cgo or for a platform wasmtime-go has no library for)", ErrEngineUnavailable)
}
