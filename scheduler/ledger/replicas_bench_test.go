package ledger

import (
	"fmt"
	"testing"
	"time"

	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// BenchmarkLeaseCompleteReplicas is BenchmarkLeaseComplete for jobs with
// replicas: R=2 and R=3 with a majority quorum, every replica agreeing
// (tasks/s counts tasks, not replicas).
func BenchmarkLeaseCompleteReplicas(b *testing.B) {
	for _, r := range []int{2, 3} {
		b.Run(fmt.Sprintf("R=%d", r), func(b *testing.B) {
			spec := tasks.JobSpec{Name: "bench", ModuleHash: storage.Hash(testModule), Tasks: benchTasks, Timeout: time.Minute,
				Memory: 1 << 20, MaxOutput: 1 << 10, NoCache: true, Replicas: r}
			benchLeaseComplete(b, spec, []string{"w1", "w2", "w3"})
		})
	}
}
