package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// seedCommands are valid encodings of every command type, and a batch.
func seedCommands(t testing.TB) [][]byte {
	spec := tasks.JobSpec{Name: "j", ModuleHash: storage.Hash(testModule), Tasks: 2, Timeout: time.Second, Memory: 1 << 20, MaxOutput: 1 << 10}
	ref := api.TaskRef{Job: "j", Index: 1, Attempt: 1}
	replicated := spec
	replicated.Replicas, replicated.Quorum, replicated.MaxReplicas = 3, 2, 5
	var out [][]byte
	for _, c := range []Command{
		&PutBlobCommand{Hash: storage.Hash(testModule), Data: testModule, Now: 1, Pin: true},
		&SubmitJobCommand{ID: "j", Spec: spec, Now: 2},
		&LeaseTasksCommand{Worker: "w", Max: 2, Now: 3, Slack: 4, Engines: []string{"wazero"}},
		&CompleteTasksCommand{Worker: "w", Now: 5, Reports: []api.Report{{TaskRef: ref, Result: tasks.Result{ExitCode: 3, Stdout: []byte("x"), Duration: 7}}}},
		&ExpireLeasesCommand{Now: 6, Reason: "r", Tasks: []api.TaskRef{ref}},
		&ReleaseTasksCommand{Worker: "w", Now: 7, Tasks: []api.TaskRef{ref}},
		&CancelJobCommand{ID: "j", Now: 8},
		&UpsertPeerCommand{ID: "p", Address: "a", Roles: []string{"worker"}, Cores: 2, State: "alive", Now: 9},
		&PurgeJobCommand{ID: "j"},
		&UnpinBlobCommand{Hash: storage.Hash(testModule)},
		&DeleteBlobsCommand{Hashes: []string{storage.Hash(testModule)}},
		&RenewLeasesCommand{Worker: "w", Now: 10, Slack: 4, Tasks: []api.TaskRef{ref}},
		&SubmitJobCommand{ID: "r", Spec: replicated, Now: 11},
		&LeaseTasksCommand{Worker: "w", Max: 2, Now: 12, Slack: 4, Draw: 0x1234},
		&TrustPeerCommand{ID: "w", Now: 13},
	} {
		data, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
	out = append(out, EncodeBatch(out[:3]), []byte(`\x05{"worker":"w","reports":[{"job":"j","duration":5}]}`))
	// the shapes old logs hold: a submit and a put from before quotas
	out = append(out, append([]byte{byte(cmdSubmitJobV1)}, out[1][1:]...), append([]byte{byte(cmdPutBlobV1)}, out[0][1:]...))
	return out
}

// FuzzDecodeCommand: any bytes decode to a command or an error, never a
// panic; a decoded command encodes to bytes that decode to the same.
func FuzzDecodeCommand(f *testing.F) {
	for _, s := range seedCommands(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCommand(data)
		if err != nil {
			if !errors.Is(err, ErrCorruptCommand) {
				t.Fatalf("error %v is not ErrCorruptCommand", err)
			}
			return
		}
		if c == nil {
			return // an ignorable type
		}
		once, err := Encode(c)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		c2, err := DecodeCommand(once)
		if err != nil {
			t.Fatalf("a re-encoded %s does not decode: %v", c.Type(), err)
		}
		twice, _ := Encode(c2)
		if !bytes.Equal(once, twice) {
			t.Fatalf("%s does not round-trip:\n%s\n%s", c.Type(), once, twice)
		}
	})
}

// FuzzDecodeBatch: any bytes decode to commands or an error, never a panic;
// decoded commands re-batch to the same bytes' commands.
func FuzzDecodeBatch(f *testing.F) {
	seeds := seedCommands(f)
	f.Add(EncodeBatch(seeds)[1:])
	f.Add([]byte{0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		cmds, err := decodeBatch(data)
		if err != nil {
			return
		}
		again, err := decodeBatch(EncodeBatch(cmds)[1:])
		if err != nil || len(again) != len(cmds) {
			t.Fatalf("re-batched %d commands decode as %d: %v", len(cmds), len(again), err)
		}
		for i := range cmds {
			if !bytes.Equal(cmds[i], again[i]) {
				t.Fatalf("command %d changed", i)
			}
		}
	})
}

// FuzzReadSnapshot: any stream restores a ledger or fails with
// ErrBadSnapshot, never panics; a restored ledger snapshots and restores
// to the same state.
func FuzzReadSnapshot(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	a := &applier{t: &testing.T{}, fsm: NewFSM()}
	for _, c := range randomCommands(rng, 200) {
		a.fsm.Apply(c)
	}
	var buf bytes.Buffer
	if err := a.fsm.Snapshot().Write(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(replicaSnapshot(f))
	var empty bytes.Buffer
	_ = NewFSM().Snapshot().Write(&empty)
	f.Add(empty.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ReadSnapshot(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("error %v is not ErrBadSnapshot", err)
			}
			return
		}
		f1 := &FSM{ledger: l, applied: func() {}}
		f2 := &FSM{applied: func() {}}
		var out bytes.Buffer
		if err := f1.Snapshot().Write(&out); err != nil {
			t.Fatal(err)
		}
		if err := f2.Restore(&out); err != nil {
			t.Fatalf("a restored ledger's snapshot does not restore: %v", err)
		}
		if f1.StateHash() != f2.StateHash() {
			t.Fatal("a restored ledger's snapshot restores to another state")
		}
	})
}

// TestLedger_OldCompleteTasksShapeStillApplies: a report committed in the
// first CompleteTasks shape (duration spelled "duration") applies from an
// old log with its duration and output.
func TestLedger_OldCompleteTasksShapeStillApplies(t *testing.T) {
	a := newApplier(t)
	a.submit("j1", 1, 0, 0)
	g := a.lease("w1", 1)[0]
	old, err := json.Marshal(completeTasksV1{Worker: "w1", Now: a.now, Reports: []taskReportV1{{
		Job: g.Job, Index: g.Index, Attempt: g.Attempt, Duration: int64(3 * time.Second), Stdout: []byte("out"), Engine: "wazero"}}})
	if err != nil {
		t.Fatal(err)
	}
	resp := a.fsm.Apply(append([]byte{byte(cmdCompleteTasksV1)}, old...))
	if acc, _ := resp.([]bool); len(acc) != 1 || !acc[0] {
		t.Fatalf("old-shape report: %v", resp)
	}
	var res *api.ResultsPage
	a.fsm.View(func(l *Ledger) { res, _ = l.Results("j1", 0, 10, 1<<20) })
	if r := res.Results[0]; r.State != tasks.TaskDone || r.Duration != 3*time.Second || string(r.Stdout) != "out" || r.Engine != "wazero" {
		t.Fatalf("task after the old-shape report: %+v", r)
	}
}

// replicaSnapshot is a snapshot of a ledger with replicated tasks mid-vote,
// decided and failed, and workers' records.
func replicaSnapshot(f *testing.F) []byte {
	t := &testing.T{}
	a := newApplier(t)
	a.workers("w1", "w2", "w3")
	a.submitSpec("j", replicaSpec(3, 2, 2, 2))
	g1, g2 := a.mustLease("w1"), a.mustLease("w2")
	a.vote("w1", g1, "x")
	a.vote("w2", g2, "y")
	h1, h2 := a.mustLease("w1"), a.mustLease("w2")
	a.vote("w1", h1, "x")
	a.vote("w2", h2, "x")
	a.mustLease("w3")
	var buf bytes.Buffer
	if err := a.fsm.Snapshot().Write(&buf); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}
