package ledger

import "testing"

// TestLedger_TaskStripAndFailedTasks: a job of 2500 tasks in 1000 cells
// (runs of 2 or 3 tasks, every task counted once, in order), and its
// failed tasks in index order, at most n.
func TestLedger_TaskStripAndFailedTasks(t *testing.T) {
	a := newApplier(t)
	a.submit("j1", 2500, 0, 0)
	grants := a.lease("w1", 10)
	for _, g := range grants[:4] { // tasks 0..3 finish, 1 and 3 fail; 4..9 stay leased
		kind := ""
		if g.Index%2 == 1 {
			kind = "trap"
		}
		a.complete("w1", g, kind)
	}
	var strip [][4]int
	var failed, firstOnly []int
	a.fsm.View(func(l *Ledger) {
		strip = l.TaskStrip("j1", 1000)
		for _, f := range l.FailedTasks("j1", 10) {
			failed = append(failed, f.Index)
		}
		for _, f := range l.FailedTasks("j1", 1) {
			firstOnly = append(firstOnly, f.Index)
		}
	})
	if len(strip) != 1000 {
		t.Fatalf("%d cells, want 1000", len(strip))
	}
	var total [4]int
	for i, c := range strip {
		if n := c[0] + c[1] + c[2] + c[3]; n < 2 || n > 3 {
			t.Fatalf("cell %d holds %d tasks, want 2 or 3", i, n)
		}
		for s := range total {
			total[s] += c[s]
		}
	}
	if total != [4]int{2490, 6, 2, 2} {
		t.Errorf("strip counts %v, want 2490 queued, 6 leased, 2 done, 2 failed", total)
	}
	// Tasks 0..2 are cell 0 (0 and 2 done, 1 failed), 3..4 cell 1 (3
	// failed, 4 leased).
	if strip[0] != [4]int{0, 0, 2, 1} || strip[1] != [4]int{0, 1, 0, 1} {
		t.Errorf("cells 0 and 1 = %v %v, want [0 0 2 1] [0 1 0 1]", strip[0], strip[1])
	}
	if len(failed) != 2 || failed[0] != 1 || failed[1] != 3 || len(firstOnly) != 1 || firstOnly[0] != 1 {
		t.Errorf("failed tasks %v (first only %v), want [1 3] ([1])", failed, firstOnly)
	}
	a.fsm.View(func(l *Ledger) {
		if l.TaskStrip("nope", 10) != nil || l.FailedTasks("nope", 10) != nil {
			t.Error("an unknown job has a strip or failures")
		}
		if got := len(l.TaskStrip("j1", 5000)); got != 2500 {
			t.Errorf("%d cells for 2500 tasks asked 5000, want one per task", got)
		}
	})
}
