package worker

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
)

// lockedBuffer is a log sink the worker's goroutines may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestHeartbeat_DistrustIsLoggedWhenItStartsAndEnds: a worker whose
// heartbeat answers say the grid distrusts it logs why and what to do once
// (not on every heartbeat), and logs again when it is trusted.
func TestHeartbeat_DistrustIsLoggedWhenItStartsAndEnds(t *testing.T) {
	g := newFakeGrid()
	g.onHeartbeat = func(n int, _ *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
		return &api.HeartbeatResponse{Distrusted: n >= 1 && n < 5}, nil
	}
	w := testWorker(t, g, Config{Cores: 1, Heartbeat: 20 * time.Millisecond, Pool: &fakeRunner{}})
	var logs lockedBuffer
	w.log = slog.New(slog.NewTextHandler(&logs, nil))
	runWorker(t, w)
	eventually(t, "the distrust and the trust logged", func() bool {
		return strings.Contains(logs.String(), "trusts this worker again")
	})
	if n := strings.Count(logs.String(), "peergrid peers trust w1"); n != 1 {
		t.Fatalf("the distrust was logged %d times, want once:\n%s", n, logs.String())
	}
}
