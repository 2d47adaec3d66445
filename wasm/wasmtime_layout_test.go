//go:build cgo && (linux || darwin) && (amd64 || arm64)

package wasm

import (
	"reflect"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// usePoolingAllocator reads a *wasmtime.Config as a pointer to its C
// config: it must be a struct of that one pointer. A new wasmtime-go that
// changes it fails here, not in a crash.
func TestWasmtime_ConfigIsItsCPointer(t *testing.T) {
	ty := reflect.TypeOf(wasmtime.Config{})
	if ty.NumField() != 1 || ty.Field(0).Type.Kind() != reflect.Pointer || ty.Field(0).Offset != 0 {
		t.Fatalf("wasmtime.Config is %v: want one C pointer", ty)
	}
}
