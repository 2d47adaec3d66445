package ledger

import (
	"testing"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
)

// TestLedger_AnOwnerUnpinsOnlyItsOwnPin: two submitters pin the same blob
// (anyone who knows a hash can put it again and own it); one's unpin
// leaves the other's pin, so the blob is not collected; the other's unpin
// then frees it. An operator's unpin (the old command) takes every pin
// off, and its pinned bytes go back to each owner's quota.
func TestLedger_AnOwnerUnpinsOnlyItsOwnPin(t *testing.T) {
	a := newApplier(t)
	a.credentialWith("t-a", api.CredSubmitter, nil)
	a.credentialWith("t-b", api.CredSubmitter, nil)
	data := []byte("a blob two owners pin")
	hash := storage.Hash(data)
	for _, owner := range []string{"t-a", "t-b"} {
		if resp := a.apply(&PutBlobCommand{Hash: hash, Data: data, Pin: true, Owner: owner, Now: 1}); resp != nil {
			t.Fatal(resp)
		}
	}
	pinned := func() (bool, []string) {
		var m BlobMeta
		a.fsm.View(func(l *Ledger) { m = l.BlobMeta(hash) })
		return m.Pinned, m.PinnedBy
	}
	collect := func() bool {
		deleted, _ := a.apply(&DeleteBlobsCommand{Hashes: []string{hash}}).([]string)
		return len(deleted) == 1
	}
	a.apply(&UnpinOwnCommand{Hash: hash, Owner: "t-b"})
	if p, by := pinned(); !p || len(by) != 1 || by[0] != "t-a" {
		t.Fatalf("after t-b's unpin: pinned %v by %v, want t-a's pin kept", p, by)
	}
	a.apply(&UnpinOwnCommand{Hash: hash, Owner: "t-c"}) // not a pinner: nothing changes
	if p, _ := pinned(); !p || collect() {
		t.Fatal("an unpin by one who never pinned freed the blob")
	}
	var use api.QuotaUsage
	a.fsm.View(func(l *Ledger) { use = l.Usage("t-b") })
	if use.PinnedBytes != 0 {
		t.Fatalf("t-b still charged %d pinned bytes after its unpin", use.PinnedBytes)
	}
	a.apply(&UnpinOwnCommand{Hash: hash, Owner: "t-a"})
	if p, by := pinned(); p || by != nil {
		t.Fatalf("after both unpins: pinned %v by %v", p, by)
	}
	if !collect() {
		t.Fatal("an unpinned, unused blob was not collected")
	}

	// The operator's unpin takes every pin off.
	for _, owner := range []string{"t-a", "t-b"} {
		a.apply(&PutBlobCommand{Hash: hash, Data: data, Pin: true, Owner: owner, Now: 2})
	}
	a.apply(&UnpinBlobCommand{Hash: hash})
	if p, by := pinned(); p || len(by) != 0 || !collect() {
		t.Fatalf("after the operator's unpin: pinned %v by %v", p, by)
	}
}

// A blob pinned before pins were kept per owner (Pinned, no PinnedBy: a
// ledger restored from a snapshot of then) is unpinned whole by an owner's
// unpin, as it was then.
func TestLedger_UnpinOwnOfABlobPinnedBeforePinsHadOwners(t *testing.T) {
	a := newApplier(t)
	data := []byte("an old pinned blob")
	hash := storage.Hash(data)
	a.apply(&PutBlobCommand{Hash: hash, Data: data, Pin: true, Owner: "t-a", Now: 1})
	m := a.fsm.ledger.meta[hash]
	m.PinnedBy = nil // as a snapshot from before per-owner pins restores it
	a.fsm.ledger.meta[hash] = m
	a.apply(&UnpinOwnCommand{Hash: hash, Owner: "t-a"})
	if m := a.fsm.ledger.meta[hash]; m.Pinned {
		t.Fatal("an owner's unpin left a blob pinned before pins had owners")
	}
}
