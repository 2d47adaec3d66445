package store

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/peergrid/peergrid/scheduler/ledger"
)

// Batching bounds: one Raft entry holds at most this many commands or bytes.
const (
	maxBatchCommands = 512
	maxBatchBytes    = 4 << 20
	applyTimeout     = 10 * time.Second
)

// proposer coalesces concurrent proposals into one Raft entry: a single fsync
// then commits many lease grants or completions, which is what makes the
// ledger fast (one entry per change tops out near a thousand changes/s).
type proposer struct {
	raft    *raft.Raft
	pending chan *proposal
	stop    chan struct{}
	done    sync.WaitGroup
}

type proposal struct {
	data  []byte
	reply chan proposalResult
}

type proposalResult struct {
	resp any
	err  error
}

func newProposer(r *raft.Raft) *proposer {
	p := &proposer{raft: r, pending: make(chan *proposal, maxBatchCommands), stop: make(chan struct{})}
	p.done.Add(1)
	go p.loop()
	return p
}

func (p *proposer) propose(ctx context.Context, data []byte) (any, error) {
	pr := &proposal{data: data, reply: make(chan proposalResult, 1)}
	select {
	case p.pending <- pr:
	case <-p.stop:
		return nil, ErrNoLeader
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-pr.reply:
		return r.resp, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// proposeInOrder enqueues every command before it waits for any: the one
// loop takes them first in, first out, so they apply in the order given,
// in one entry when gather finds them together, else in entries that
// follow each other and are pipelined (other proposals may come between;
// none of these waits on the commit of the one before). It returns each
// one's result.
func (p *proposer) proposeInOrder(ctx context.Context, datas [][]byte) []proposalResult {
	out := make([]proposalResult, len(datas))
	sent := make([]*proposal, 0, len(datas))
	for i, data := range datas {
		pr := &proposal{data: data, reply: make(chan proposalResult, 1)}
		select {
		case p.pending <- pr:
			sent = append(sent, pr)
			continue
		case <-p.stop:
			out[i].err = ErrNoLeader
		case <-ctx.Done():
			out[i].err = ctx.Err()
		}
		for j := i + 1; j < len(datas); j++ { // not sent either, so they cannot apply out of order
			out[j].err = out[i].err
		}
		break
	}
	for i, pr := range sent {
		select {
		case out[i] = <-pr.reply:
		case <-ctx.Done():
			out[i].err = ctx.Err()
		}
	}
	return out
}

func (p *proposer) loop() {
	defer p.done.Done()
	for {
		var first *proposal
		select {
		case first = <-p.pending:
		case <-p.stop:
			return
		}
		batch := p.gather(first)
		p.apply(batch)
	}
}

// gather takes whatever else is already waiting, within the bounds.
func (p *proposer) gather(first *proposal) []*proposal {
	batch := []*proposal{first}
	size := len(first.data)
	for len(batch) < maxBatchCommands && size < maxBatchBytes {
		select {
		case pr := <-p.pending:
			batch = append(batch, pr)
			size += len(pr.data)
		default:
			return batch
		}
	}
	return batch
}

// apply enqueues the entry and waits for it in a goroutine, so the next batch
// can be gathered while this one commits (Raft pipelines them).
func (p *proposer) apply(batch []*proposal) {
	data := batch[0].data
	if len(batch) > 1 {
		cmds := make([][]byte, len(batch))
		for i, pr := range batch {
			cmds[i] = pr.data
		}
		data = ledger.EncodeBatch(cmds)
	}
	f := p.raft.Apply(data, applyTimeout)
	go deliver(f, batch)
}

func deliver(f raft.ApplyFuture, batch []*proposal) {
	if err := f.Error(); err != nil {
		err = MapRaftErr(err)
		for _, pr := range batch {
			pr.reply <- proposalResult{err: err}
		}
		return
	}
	if len(batch) == 1 {
		batch[0].reply <- proposalResult{resp: f.Response()}
		return
	}
	resps, _ := f.Response().([]any)
	for i, pr := range batch {
		var r any
		if i < len(resps) {
			r = resps[i]
		}
		pr.reply <- proposalResult{resp: r}
	}
}

func (p *proposer) close() {
	close(p.stop)
	p.done.Wait()
}
