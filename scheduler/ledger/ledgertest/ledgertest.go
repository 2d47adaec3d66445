// Package ledgertest builds ledgers for the tests and benchmarks of the
// packages that read one (the server's loops, the views), through Apply as
// Raft would, using only the ledger's exported API.
package ledgertest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/storagetest"
	"github.com/peergrid/peergrid/scheduler/ledger"
)

// Apply encodes c and applies it to f, failing tb if it cannot be encoded.
// It returns the command's response.
func Apply(tb testing.TB, f *ledger.FSM, c ledger.Command) any {
	tb.Helper()
	data, err := ledger.Encode(c)
	if err != nil {
		tb.Fatal(err)
	}
	return f.Apply(data)
}

// Restored is a new FSM restored from a snapshot of f.
func Restored(tb testing.TB, f *ledger.FSM) *ledger.FSM {
	tb.Helper()
	var buf bytes.Buffer
	if err := f.Snapshot().Write(&buf); err != nil {
		tb.Fatal(err)
	}
	g := ledger.NewFSM()
	if err := g.Restore(&buf); err != nil {
		tb.Fatal(err)
	}
	return g
}

// BenchLedger is a large ledger for benchmarks: peers storage peers
// (storagetest.PeerID), alive since time 1, and blobs erasure-coded blobs
// (storagetest.RandomManifest, nothing unplaced) put at time 10.
func BenchLedger(tb testing.TB, peers, blobs int) *ledger.FSM {
	f := ledger.NewFSM()
	for i := range peers {
		Apply(tb, f, &ledger.UpsertPeerCommand{ID: storagetest.PeerID(i), Roles: []string{api.RoleStorage},
			StorageAddress: fmt.Sprintf("10.0.0.%d:7000", i), State: api.PeerAlive, Now: 1})
	}
	r := rand.New(rand.NewPCG(1, 2))
	for n := range blobs {
		man := storagetest.RandomManifest(r, n, peers, 0)
		if resp := Apply(tb, f, &ledger.CommitManifestCommand{Manifest: man, Now: 10}); resp != nil {
			tb.Fatalf("put manifest: %v", resp)
		}
	}
	return f
}
