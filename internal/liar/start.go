package liar

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
)

// Grid is what a test's liar needs of a grid (a dev grid, a test cluster):
// an operator's client, and a client with any other token.
type Grid interface {
	Client() *client.Client
	ClientWith(token string) *client.Client
}

// JoinToken creates a worker join token named name: workers joined with one
// token share a credential, as one volunteer's machines do.
func JoinToken(t testing.TB, g Grid, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		tok, err := g.Client().CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredWorker, Name: name})
		if err == nil {
			return tok.Secret
		}
		// A leader lost mid-commit leaves the outcome unknown; asking again
		// at worst leaves one unused token behind, harmless in a test.
		if !errors.Is(err, client.ErrOutcomeUnknown) || ctx.Err() != nil {
			t.Fatalf("join token %s: %v", name, err)
		}
	}
}

// Start enrolls worker name with joinToken (empty: a token of its own) and
// runs it until the test ends. answer chooses its stdouts: a liar with the
// right answers is a cheap honest worker for statistical tests.
func Start(t testing.TB, g Grid, joinToken, name string, answer Answer) *Worker {
	t.Helper()
	return StartConfig(t, g, joinToken, Config{ID: name, Answer: answer})
}

// StartConfig is Start with more of the liar's Config (its Client is made
// by enrolling cfg.ID with joinToken).
func StartConfig(t testing.TB, g Grid, joinToken string, cfg Config) *Worker {
	t.Helper()
	w := enrolled(t, g, joinToken, cfg)
	w.start(t, w.Run)
	return w
}

// StartDriven is Start for a liar that only heartbeats: it leases when the
// test calls Step.
func StartDriven(t testing.TB, g Grid, joinToken, name string, answer Answer) *Worker {
	t.Helper()
	w := enrolled(t, g, joinToken, Config{ID: name, Answer: answer})
	w.start(t, w.RunHeartbeats)
	return w
}

func enrolled(t testing.TB, g Grid, joinToken string, cfg Config) *Worker {
	t.Helper()
	name := cfg.ID
	if joinToken == "" {
		joinToken = JoinToken(t, g, name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Enroll(ctx, g.ClientWith(joinToken), g.ClientWith, filepath.Join(t.TempDir(), name), name)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Client = c
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *Worker) start(t testing.TB, run func(context.Context) error) {
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); run(runCtx) }()
	w.stop = func() { stop(); <-done }
	t.Cleanup(w.Stop)
}

// Stop stops a liar Start started, as if its machine went away: it stops
// heartbeating and leasing (the leader marks it down after its TTL).
func (w *Worker) Stop() { w.stopOnce.Do(w.stop) }
