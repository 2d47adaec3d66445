package wasm

import (
	"bytes"
	"strings"
	"testing"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// An executor runs task after task: none may see what an earlier one left
// in its memory, its args or its environment, on any engine.
func TestPool_ReusedExecutorIsolatesTasks(t *testing.T) {
	residue := put(t, wasmtest.Residue(1))
	args := put(t, wasmtest.EchoArgs())
	env := put(t, wasmtest.EchoEnv())
	p := newPool(t, 1) // one executor: every task runs in the same process
	variants := map[string]*Pool{}
	for _, engine := range AvailableEngines() {
		variants[engine] = p
	}
	if wasmtimeBuilt { // and wasmtime's bounds-checked code, in an executor of its own
		checked, err := newCheckedPool(testCtx(t), 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { checked.Close() })
		variants["wasmtime-checked"] = checked
	}
	for variant, p := range variants {
		engine := strings.TrimSuffix(variant, "-checked")
		t.Run(variant, func(t *testing.T) {
			for i := range 3 {
				res, err := p.Run(testCtx(t), &Request{ModuleHash: residue, Engine: engine})
				if err != nil || string(res.Stdout) != "clean\n" {
					t.Fatalf("run %d: %q, %v; want a fresh memory (clean)", i, stdout(res), err)
				}
			}
			secret := &Request{ModuleHash: args, Engine: engine, Args: []string{"secret-arg"}}
			if res, err := p.Run(testCtx(t), secret); err != nil || string(res.Stdout) != "secret-arg\n" {
				t.Fatalf("args: %q, %v", stdout(res), err)
			}
			if res, err := p.Run(testCtx(t), &Request{ModuleHash: args, Engine: engine}); err != nil || bytes.Contains(res.Stdout, []byte("secret")) {
				t.Fatalf("args after a task with args: %q, %v; want none", stdout(res), err)
			}
			withEnv := &Request{ModuleHash: env, Engine: engine, Env: map[string]string{"SECRET": "s3"}}
			if res, err := p.Run(testCtx(t), withEnv); err != nil || string(res.Stdout) != "SECRET=s3\n" {
				t.Fatalf("env: %q, %v", stdout(res), err)
			}
			if res, err := p.Run(testCtx(t), &Request{ModuleHash: env, Engine: engine}); err != nil || len(res.Stdout) != 0 {
				t.Fatalf("env after a task with env: %q, %v; want none", stdout(res), err)
			}
		})
	}
}
