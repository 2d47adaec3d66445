package liar

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// TestLiar_TwoLiarsOnOneJoinTokenGetTheirWordTaken: two liars join with one
// join token (two peer credentials from it, as one volunteer's two
// machines), lease the tasks of an unreplicated job and report their chosen
// bytes; the grid, which takes one worker's word for R=1, completes the job
// with exactly those bytes and counts each liar's results as its own.
func TestLiar_TwoLiarsOnOneJoinTokenGetTheirWordTaken(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), NoWorker: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	op := g.Client()
	tok, err := op.CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredWorker, Name: "one volunteer"})
	if err != nil {
		t.Fatal(err)
	}
	lie := func(a *api.Assignment) []byte { return fmt.Appendf(nil, "lie %d\n", a.Index) }
	var liars []*Worker
	for _, name := range []string{"liar-a", "liar-b"} {
		c, err := Enroll(ctx, g.ClientWith(tok.Secret), g.ClientWith, filepath.Join(t.TempDir(), name), name)
		if err != nil {
			t.Fatal(err)
		}
		w, err := New(Config{ID: name, Client: c, Answer: lie})
		if err != nil {
			t.Fatal(err)
		}
		liars = append(liars, w)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); w.Run(runCtx) }()
		defer func() { stop(); <-done }()
	}

	mod := examples.Tiny()
	if err := op.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	const n = 30
	id, err := op.Submit(ctx, &tasks.JobSpec{Name: "lied", ModuleHash: storage.Hash(mod), Args: []string{"{index}"}, Tasks: n,
		Timeout: 10 * time.Second, Memory: 1 << 20, MaxOutput: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := op.WaitJob(ctx, id, 10*time.Millisecond, nil); err != nil || sum.State != tasks.JobComplete {
		t.Fatalf("job %s: %+v (%v)", id, sum, err)
	}
	rs, err := op.Results(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if want := fmt.Sprintf("lie %d\n", r.Index); string(r.Stdout) != want {
			t.Fatalf("task %d: stdout %q, want the liar's %q", r.Index, r.Stdout, want)
		}
	}
	peers, err := op.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := map[string]int{}
	for _, p := range peers {
		done[p.ID] = p.Done
	}
	accepted := liars[0].Stats().Accepted + liars[1].Stats().Accepted
	if done["liar-a"]+done["liar-b"] != n || accepted != n {
		t.Fatalf("liars' done %v and accepted reports %d, want %d in all", done, accepted, n)
	}
	creds, err := op.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := peerCredentials(creds); got["liar-a"] == "" || got["liar-b"] == "" || got["liar-a"] == got["liar-b"] {
		t.Fatalf("peer credentials %v: want one of its own for each liar", got)
	}
}

func peerCredentials(ts []api.TokenInfo) map[string]string {
	out := map[string]string{}
	for _, t := range ts {
		if t.Role == api.CredPeer {
			out[t.Peer] = t.ID
		}
	}
	return out
}
