package ledger

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/tasks"
)

// TestTaskTable_StdoutArenaKeepsEveryTasksBytes: stdouts set, replaced
// (as retries do), cleared and too long for the arena, in random order,
// read back byte for byte, and the arena stays under twice its live bytes
// (plus the slack compaction allows) however often outputs are replaced.
func TestTaskTable_StdoutArenaKeepsEveryTasksBytes(t *testing.T) {
	var gen uint64
	tt := newTaskTable(2*chunkSize+5, &gen)
	want := make([][]byte, tt.len())
	rng := rand.New(rand.NewPCG(15, 250))
	for step := range 50_000 {
		i := rng.IntN(tt.len())
		var p []byte
		switch k := rng.IntN(100); {
		case k < 5: // none
		case k < 6:
			p = bytes.Repeat([]byte{byte(step)}, maxArenaOutput+1+rng.IntN(100))
		default:
			p = []byte(fmt.Sprint("out ", step, " ", bytes.Repeat([]byte("x"), rng.IntN(200))))
		}
		tt.setOutput(i, p, nil, "", "")
		want[i] = p
	}
	for i := range want {
		if got := tt.stdout(i); !bytes.Equal(got, want[i]) || (got == nil) != (len(want[i]) == 0) {
			t.Fatalf("task %d stdout %q, want %q", i, trim(got), trim(want[i]))
		}
		if long := len(want[i]) > maxArenaOutput; long != (tt.at(i).rare != nil) {
			t.Fatalf("task %d of %d stdout bytes: rare fields %v", i, len(want[i]), tt.at(i).rare != nil)
		}
	}
	for n, c := range tt.chunks {
		live := 0
		for i := range c.tasks {
			live += int(c.tasks[i].out.n)
		}
		if len(c.out)-c.dead != live || len(c.out) > 2*live+compactArenaFrom+maxArenaOutput {
			t.Fatalf("chunk %d: arena of %d bytes, %d dead, %d live", n, len(c.out), c.dead, live)
		}
	}
}

func trim(p []byte) []byte { return p[:min(len(p), 40)] }

// TestTaskTable_SnapshotKeepsItsStdouts: outputs replaced after a
// snapshot shared the chunks, enough to compact the arena, leave the
// snapshot's view of every stdout as it was.
func TestTaskTable_SnapshotKeepsItsStdouts(t *testing.T) {
	var gen uint64
	tt := newTaskTable(chunkSize, &gen)
	for i := range chunkSize {
		tt.setOutput(i, []byte(fmt.Sprint("first ", i)), nil, "", "")
	}
	frozen := tt.share()
	gen++ // as FSM.Snapshot does
	for round := range 20 {
		for i := range chunkSize {
			tt.setOutput(i, []byte(fmt.Sprint("round ", round, " ", i)), nil, "", "")
		}
	}
	for i := range chunkSize {
		if got, want := string(frozen.stdout(i)), fmt.Sprint("first ", i); got != want {
			t.Fatalf("the snapshot's task %d stdout %q, want %q", i, got, want)
		}
		if got, want := string(tt.stdout(i)), fmt.Sprint("round 19 ", i); got != want {
			t.Fatalf("task %d stdout %q, want %q", i, got, want)
		}
	}
}

// TestSnapshot_LongAndShortStdoutsRoundTrip: a stdout too long for the
// arena and short ones come back from a snapshot, and the state hashes
// agree.
func TestSnapshot_LongAndShortStdoutsRoundTrip(t *testing.T) {
	a := newApplier(t)
	a.apply(&UpsertPeerCommand{ID: "w1", Roles: []string{api.RoleWorker}, State: api.PeerAlive, Now: a.now})
	a.submit("j", 3, 0, 0)
	outs := [][]byte{bytes.Repeat([]byte("long "), maxArenaOutput/4), []byte("short\n"), nil}
	for _, g := range a.lease("w1", 3) {
		a.apply(&CompleteTasksCommand{Worker: "w1", Now: a.now, Reports: []api.Report{{TaskRef: g.Ref(),
			Result: tasks.Result{Stdout: outs[g.Index]}}}})
	}
	restored := snapshotInto(t, a.fsm)
	if restored.StateHash() != a.fsm.StateHash() {
		t.Fatal("state hashes differ after a restore")
	}
	restored.View(func(l *Ledger) {
		for i, want := range outs {
			if got := l.jobs["j"].Tasks.stdout(i); !bytes.Equal(got, want) {
				t.Fatalf("restored task %d stdout %q, want %q", i, trim(got), trim(want))
			}
		}
	})
}
