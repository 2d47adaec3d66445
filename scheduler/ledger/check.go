package ledger

import (
	"fmt"
	"maps"
	"reflect"
)

// CheckIndexes rebuilds the derived indexes (shards by peer, blobs by peer,
// requests by id, references by blob and by owner, credentials by hash,
// the result cache) from the ledger's records and reports the first that
// differs from the one Apply kept. Tests call it after every step of a
// random walk; it costs a full scan, so nothing else should.
func (l *Ledger) CheckIndexes() error {
	placed, byPeer := shardIndex{}, newBlobIndex()
	for _, m := range l.manifests {
		placed.add(m, +1)
		byPeer.add(m)
	}
	if !maps.Equal(l.placed, placed) {
		return fmt.Errorf("shard index %v differs from the manifests' %v", l.placed, placed)
	}
	if !reflect.DeepEqual(l.byPeer, byPeer) {
		return fmt.Errorf("blob index %v differs from the manifests' %v", l.byPeer, byPeer)
	}
	requests := map[string]string{}
	for _, j := range l.order {
		if j.RequestID != "" {
			requests[j.RequestID] = j.ID
		}
	}
	if !maps.Equal(l.requests, requests) {
		return fmt.Errorf("request index %v differs from the jobs' %v", l.requests, requests)
	}
	if refs := l.scanRefs(); !maps.Equal(map[string]int(l.refs), refs) {
		return fmt.Errorf("reference counts %v differ from a scan of every job's %v", l.refs, refs)
	}
	if owned := l.scanOwnerRefs(); !reflect.DeepEqual(l.ownerRefs, owned) {
		return fmt.Errorf("owners' reference counts %v differ from a scan of every job's %v", l.ownerRefs, owned)
	}
	if cache := l.scanCache(); !reflect.DeepEqual(l.cache.sorted(), cache) {
		return fmt.Errorf("result cache index (%d keys) differs from a scan of the done tasks (%d keys)", len(l.cache.first), len(cache))
	}
	byHash := map[string]string{}
	for id, cr := range l.creds {
		byHash[cr.Hash] = id
	}
	if !maps.Equal(l.credByHash, byHash) {
		return fmt.Errorf("credential hash index %v differs from the credentials' %v", l.credByHash, byHash)
	}
	return nil
}

// scanOwnerRefs counts each owner's references by walking its jobs.
func (l *Ledger) scanOwnerRefs() map[string]blobRefs {
	out := map[string]blobRefs{}
	for _, j := range l.order {
		if j.Owner == "" {
			continue
		}
		r := out[j.Owner]
		if r == nil {
			r = blobRefs{}
		}
		r.add(j.Spec.ModuleHash, 1)
		for _, in := range j.Spec.Inputs {
			r.add(in.Hash, 1)
		}
		for i := 0; i < j.Tasks.len(); i++ {
			r.add(j.Tasks.at(i).StdoutRef, 1)
		}
		if len(r) > 0 {
			out[j.Owner] = r
		}
	}
	return out
}

// scanRefs counts the references to each blob by walking every task of
// every job: the oracle for blobRefs.
func (l *Ledger) scanRefs() map[string]int {
	refs := map[string]int{}
	count := func(h string) {
		if h != "" {
			refs[h]++
		}
	}
	for _, j := range l.order {
		count(j.Spec.ModuleHash)
		for _, in := range j.Spec.Inputs {
			count(in.Hash)
		}
		for i := 0; i < j.Tasks.len(); i++ {
			count(j.Tasks.at(i).StdoutRef)
		}
	}
	return refs
}
