//go:build !(cgo && ((linux && amd64) || darwin))

package wasm

import (
	"context"
	"fmt"
)

// wasmerBuilt: this binary has no wasmer engine (built without cgo, or for
// a platform wasmer-go has no library for). wazero runs every task.
const wasmerBuilt = false

func newWasmer(context.Context, EngineConfig) (Engine, error) {
	return nil, fmt.Errorf("%w: wasmer (this binary was built without cgo or for a platform wasmer-go has no library for)", ErrEngineUnavailable)
}
