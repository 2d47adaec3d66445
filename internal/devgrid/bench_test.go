package devgrid

import (
	"context"
	"testing"
	"time"

	"github.com/peergrid/peergrid/tasks"
)

// BenchmarkDevGrid_TinyJob measures end-to-end throughput in dev mode: a
// 20,000-task job of the tiny module, from submit to the last result
// committed, on one server and one worker with all cores.
func BenchmarkDevGrid_TinyJob(b *testing.B) {
	const n = 20_000
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	g, err := Start(ctx, Config{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	c := g.Client()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		id := submitTinyB(b, c, n)
		sum, err := c.WaitJob(ctx, id, 10*time.Millisecond, nil)
		if err != nil || sum.State != tasks.JobComplete {
			b.Fatalf("job %s: %+v %v", id, sum, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "tasks/s")
}
