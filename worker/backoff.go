package worker

import (
	"context"
	"time"
)

// backoff waits 50ms, 100ms, ... up to 5s between failed calls (leases,
// reports, module fetches), so a grid without a leader is not hammered.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 50 * time.Millisecond} }

func (b *backoff) reset() { b.d = 50 * time.Millisecond }

func (b *backoff) wait(ctx context.Context) {
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	b.d = min(2*b.d, 5*time.Second)
}
