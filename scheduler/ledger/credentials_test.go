package ledger

import (
	"errors"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

func (a *applier) credential(id, role string, uses int, expires int64) {
	a.t.Helper()
	if resp := a.apply(&CreateCredentialCommand{Credential: Credential{ID: id, Role: role, Hash: "h-" + id, Uses: uses, Expires: expires, MaxCores: 4}, Now: a.now}); resp != nil {
		a.t.Fatalf("create %s: %v", id, resp)
	}
}

func (a *applier) join(token, worker, cred string, now int64) any {
	return a.apply(&JoinWorkerCommand{Token: token, Peer: Credential{ID: cred, Role: api.CredPeer, Hash: "h-" + cred, Peer: worker}, Now: now})
}

// TestLedger_JoinTokenAdmitsWorkersWithinItsUsesAndLife: a join token with
// two uses admits two workers, each with a peer credential found by its
// hash and capped as the token says; a third join, a revoked token, an
// expired one, a submitter's, and an id already held are refused.
func TestLedger_JoinTokenAdmitsWorkersWithinItsUsesAndLife(t *testing.T) {
	a := newApplier(t)
	a.credential("t-join", api.CredWorker, 2, a.now+int64(time.Hour))
	a.credential("t-sub", api.CredSubmitter, -1, 0)
	if id := a.join("t-join", "w1", "p1", a.now); id != "w1" {
		t.Fatalf("first join: %v", id)
	}
	if err, _ := a.join("t-join", "w1", "p1b", a.now).(error); !errors.Is(err, ErrWorkerIDTaken) {
		t.Fatalf("a second worker claiming w1: %v", err)
	}
	if id := a.join("t-join", "w2", "p2", a.now); id != "w2" {
		t.Fatalf("second join: %v", id)
	}
	if err, _ := a.join("t-join", "w3", "p3", a.now).(error); !errors.Is(err, ErrJoinRefused) {
		t.Fatalf("a third join with a two-use token: %v", err)
	}
	if err, _ := a.join("t-sub", "w4", "p4", a.now).(error); !errors.Is(err, ErrJoinRefused) {
		t.Fatalf("a submitter's token admitted a worker: %v", err)
	}
	a.credential("t-join2", api.CredWorker, -1, a.now+1)
	if err, _ := a.join("t-join2", "w5", "p5", a.now+1).(error); !errors.Is(err, ErrJoinRefused) {
		t.Fatalf("an expired token admitted a worker: %v", err)
	}
	a.credential("t-join3", api.CredWorker, -1, 0)
	a.apply(&RevokeCredentialCommand{ID: "t-join3", Now: a.now})
	if err, _ := a.join("t-join3", "w6", "p6", a.now).(error); !errors.Is(err, ErrJoinRefused) {
		t.Fatalf("a revoked token admitted a worker: %v", err)
	}
	var p1 Credential
	var found bool
	a.fsm.View(func(l *Ledger) { p1, found = l.CredentialByHash("h-p1") })
	if !found || p1.Role != api.CredPeer || p1.Peer != "w1" || p1.MaxCores != 4 || p1.Issuer != "t-join" {
		t.Fatalf("peer credential %+v (found %v)", p1, found)
	}
	// Once w1's credential is revoked, the id may be claimed again.
	a.apply(&RevokeCredentialCommand{ID: "p1", Now: a.now})
	a.credential("t-op", api.CredOperator, -1, 0)
	if id := a.join("t-op", "w1", "p7", a.now); id != "w1" {
		t.Fatalf("rejoin after revocation: %v", id)
	}
	restored := snapshotInto(t, a.fsm)
	restored.View(func(l *Ledger) {
		checkIndexes(t, l)
		if cr, ok := l.CredentialByHash("h-t-join"); !ok || cr.Uses != 0 {
			t.Fatalf("restored join token %+v", cr)
		}
		if cr, _ := l.Credential("p1"); cr.Valid(a.now) == nil {
			t.Fatal("the revoked credential is valid after a restore")
		}
	})
}

// TestLedger_AServersIDCannotBeAWorkers: a join token cannot admit a worker
// under a server's id; an operator can (a server's own worker).
func TestLedger_AServersIDCannotBeAWorkers(t *testing.T) {
	a := newApplier(t)
	a.apply(&UpsertPeerCommand{ID: "s1", Roles: []string{api.RoleServer}, State: api.PeerAlive, Now: 1})
	a.credential("t-join", api.CredWorker, -1, 0)
	if err, _ := a.join("t-join", "s1", "p1", a.now).(error); !errors.Is(err, ErrWorkerIDTaken) {
		t.Fatalf("a worker joined as server s1: %v", err)
	}
	a.credential("t-op", api.CredOperator, -1, 0)
	if id := a.join("t-op", "s1", "p2", a.now); id != "s1" {
		t.Fatalf("an operator admitting server s1's own worker: %v", id)
	}
}

// TestLedger_SubmitterMayReadOnlyWhatItPutOrItsJobsUse: ownership of blobs
// follows puts and jobs (module, inputs, results), and ends with a purge.
func TestLedger_SubmitterMayReadOnlyWhatItPutOrItsJobsUse(t *testing.T) {
	a := newApplier(t)
	mod := storage.Hash(testModule)
	a.apply(&PutBlobCommand{Hash: storage.Hash([]byte("mine")), Data: []byte("mine"), Owner: "alice"})
	spec := tasks.JobSpec{Name: "j", ModuleHash: mod, Tasks: 1, Timeout: time.Second, Memory: 1 << 20, MaxOutput: 1 << 10}
	a.apply(&SubmitJobCommand{ID: "j1", Spec: spec, Owner: "bob"})
	g := a.lease("w", 1)[0]
	a.apply(&CompleteTasksCommand{Worker: "w", Now: a.now, Reports: []api.Report{{TaskRef: g.Ref(), Result: tasks.Result{StdoutBlob: mod}}}})
	check := func(who, hash string, want bool) {
		t.Helper()
		var got bool
		a.fsm.View(func(l *Ledger) { got = l.MayRead(who, hash); checkIndexes(t, l) })
		if got != want {
			t.Fatalf("%s may read %s: %v, want %v", who, hash[:8], got, want)
		}
	}
	check("alice", storage.Hash([]byte("mine")), true)
	check("bob", storage.Hash([]byte("mine")), false)
	check("bob", mod, true)
	check("alice", mod, false)
	if resp := a.apply(&PurgeJobCommand{ID: "j1"}); resp != nil {
		t.Fatalf("purge: %v", resp)
	}
	check("bob", mod, false)
}
