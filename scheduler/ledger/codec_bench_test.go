package ledger

import (
	"fmt"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/tasks"
)

// hotCommands are a lease and a completion of eight tiny tasks, as a busy
// grid proposes them.
func hotCommands() []Command {
	c := &CompleteTasksCommand{Worker: "worker-0001", Now: time.Now().UnixNano()}
	for i := range 8 {
		c.Reports = append(c.Reports, api.Report{TaskRef: api.TaskRef{Job: "job-0123456789abcdef", Index: 100_000 + i, Attempt: 1},
			Result: tasks.Result{Stdout: []byte(fmt.Sprintln(100_000 + i)), Duration: 40 * time.Microsecond, Engine: "wazero"}})
	}
	return []Command{&LeaseTasksCommand{Worker: "worker-0001", Max: 8, Now: time.Now().UnixNano(), Slack: 30e9, Engines: []string{"wazero", "wasmtime"}}, c}
}

// BenchmarkHotCommandCodec: encode (the leader, on propose) and decode
// (every server, in Apply) of the lease and complete commands, JSON
// against compact.
func BenchmarkHotCommandCodec(b *testing.B) {
	for _, codec := range []struct {
		name   string
		encode func(Command) ([]byte, error)
	}{{"json", Encode}, {"compact", EncodeCompact}} {
		for _, c := range hotCommands() {
			data, _ := codec.encode(c)
			b.Run(fmt.Sprintf("%s/%s/encode", codec.name, CommandType(c.Type())), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := codec.encode(c); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(data)), "bytes")
			})
			b.Run(fmt.Sprintf("%s/%s/decode", codec.name, CommandType(c.Type())), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := DecodeCommand(data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
