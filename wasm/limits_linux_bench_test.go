//go:build linux

package wasm

import (
	"context"
	"strconv"
	"testing"

	"github.com/peergrid/peergrid/internal/wasmtest"
)

// What compiling and running a module adds to an executor's VmData (what
// the memory box counts) and its peak RSS, per engine, which is what
// engineAllowance must cover: the Go guest and the largest function body
// the structural limits allow. No compile cache, a new executor each time.
//
//	go test -run '^$' -bench 'ExecutorMemory' -benchtime 1x ./wasm/
func BenchmarkExecutorMemory(b *testing.B) {
	hello := put(b, wasmtest.Hello("", "", 0))
	for name, module := range map[string][]byte{"go-guest": goGuest, "body-7654321": bigFunction(MaxFunctionSize - 16)} {
		hash := put(b, module)
		for _, engine := range AvailableEngines() {
			b.Run(name+"/"+engine, func(b *testing.B) {
				for b.Loop() {
					p, err := NewPool(context.Background(), PoolConfig{Size: 1, ModuleDir: testModules, Engines: []string{engine}})
					if err != nil {
						b.Fatal(err)
					}
					run := func(h string) {
						if _, err := p.Run(context.Background(), &Request{ModuleHash: h, Name: "guest", Args: []string{"a"}}); err != nil {
							b.Fatal(err)
						}
					}
					run(hello) // the engine is made: not the module's doing
					status := "/proc/" + strconv.Itoa(p.pids()[0]) + "/status"
					before, _ := statusField(status, "VmData:")
					run(hash)
					after, _ := statusField(status, "VmData:")
					peak, _ := statusField(status, "VmHWM:")
					p.Close()
					b.ReportMetric(float64(after-before)/(1<<20), "data-MiB")
					b.ReportMetric(float64(peak)/(1<<20), "peak-rss-MiB")
					b.ReportMetric(float64(after-before)/float64(len(module)), "data/module-byte")
				}
			})
		}
	}
}
