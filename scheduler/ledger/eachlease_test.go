package ledger

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
)

// TestEachLease_SeesEveryLeaseWithItsHolderAndExpiry: over plain and
// replicated tasks, EachLease visits each lease once, naming the worker
// LeasesOf gives it to and the expiry and timeout LeaseExpiry gives.
func TestEachLease_SeesEveryLeaseWithItsHolderAndExpiry(t *testing.T) {
	a := newApplier(t)
	a.workers("w1", "w2", "w3")
	a.submit("plain", 3, 0, 0)
	a.submitSpec("rep", replicaSpec(1, 2, 2, 0))
	for _, w := range []string{"w1", "w2", "w3", "w1"} {
		a.mustLease(w)
	}
	byWorker := map[string][]api.TaskRef{}
	seen := 0
	a.fsm.View(func(l *Ledger) {
		l.EachLease(func(ref api.TaskRef, worker string, expiry int64, timeout time.Duration) {
			seen++
			byWorker[worker] = append(byWorker[worker], ref)
			if e, to, ok := l.LeaseExpiry(ref); !ok || e != expiry || to != timeout {
				t.Errorf("%+v: EachLease says expiry %d timeout %v, LeaseExpiry %d %v %v", ref, expiry, timeout, e, to, ok)
			}
		})
		for _, w := range []string{"w1", "w2", "w3"} {
			got := byWorker[w]
			slices.SortFunc(got, compareRefsForTest)
			if want := l.LeasesOf(w); !slices.Equal(got, want) {
				t.Errorf("%s: EachLease gives %v, LeasesOf %v", w, got, want)
			}
		}
	})
	if seen != 4 {
		t.Fatalf("EachLease saw %d leases, want 4", seen)
	}
}

func compareRefsForTest(x, y api.TaskRef) int {
	return cmp.Or(cmp.Compare(x.Job, y.Job), cmp.Compare(x.Index, y.Index), cmp.Compare(x.Attempt, y.Attempt))
}
