package worker

import (
	"testing"
	"time"
)

func TestWorker_PrefetchAdaptsToTaskDuration(t *testing.T) {
	w := &Worker{cfg: Config{Cores: 2}}
	r := newRun(w)
	if got := r.target(); got != 4 {
		t.Fatalf("before any task: target %d, want 2 per core", got)
	}
	for i := 0; i < 50; i++ {
		r.observe(time.Millisecond)
	}
	if got := r.target(); got < 400 {
		t.Fatalf("1 ms tasks: target %d, want a deep queue (>= 400)", got)
	}
	for i := 0; i < 100; i++ {
		r.observe(10 * time.Second)
	}
	if got := r.target(); got != 4 {
		t.Fatalf("10 s tasks: target %d, want cores + cores", got)
	}
	w.cfg.Prefetch = -1
	if got := r.target(); got != 2 {
		t.Fatalf("prefetch off: target %d, want cores", got)
	}
	w.cfg.Prefetch = 7
	if got := r.target(); got != 9 {
		t.Fatalf("fixed prefetch: target %d, want 9", got)
	}
}
