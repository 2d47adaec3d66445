package client

import (
	"encoding/json"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/internal/plainjson"
)

// decodeLeaseAnswer decodes a lease's answer into out. The server writes
// it by hand in one plain shape (compact, plain strings, integers, RFC
// 3339 times), and a worker of tiny tasks reads one every few
// milliseconds: encoding/json's reflection on it was 14-17% of a dev
// grid's CPU in the 100,000-task job (BENCHMARKS.md). So that shape takes
// a hand-written path, and anything else (escapes, non-ASCII, floats,
// nulls where a value is, unknown or repeated keys) falls back to
// encoding/json on the same bytes: what is accepted and the result stay
// what json.Unmarshal gives (FuzzLeaseAnswerFastPath).
func decodeLeaseAnswer(body []byte, out *api.LeaseResponse) error {
	if fastDecodeLeaseAnswer(body, out) {
		return nil
	}
	*out = api.LeaseResponse{}
	return json.Unmarshal(body, out)
}

func fastDecodeLeaseAnswer(body []byte, out *api.LeaseResponse) bool {
	p := plainjson.New(body)
	var seen uint32
	ok := p.Object(func(key []byte) bool {
		switch string(key) {
		case "tasks":
			if !p.Once(&seen, 1) {
				return false
			}
			if p.Null() {
				return true
			}
			out.Tasks = make([]api.Assignment, 0, 8)
			return p.Array(func() bool {
				out.Tasks = append(out.Tasks, api.Assignment{})
				return assignment(&p, &out.Tasks[len(out.Tasks)-1])
			})
		case "accepted":
			if !p.Once(&seen, 2) {
				return false
			}
			out.Accepted = make([]bool, 0, 8)
			return p.Array(func() bool {
				b, ok := p.Bool()
				out.Accepted = append(out.Accepted, b)
				return ok
			})
		}
		return false
	})
	p.Space()
	return ok && p.Done()
}

// assignment reads one task of a lease's answer, in any order of its keys.
func assignment(p *plainjson.Reader, a *api.Assignment) bool {
	var seen uint32
	once := func(bit uint32) bool { return p.Once(&seen, bit) }
	var ok bool
	return p.Object(func(key []byte) bool {
		switch string(key) {
		case "job":
			a.Job, ok = p.String()
			return ok && once(1<<0)
		case "index":
			a.Index, ok = p.Int()
			return ok && once(1<<1)
		case "attempt":
			a.Attempt, ok = p.Int()
			return ok && once(1<<2)
		case "module":
			a.ModuleHash, ok = p.String()
			return ok && once(1<<3)
		case "name":
			a.Name, ok = p.String()
			return ok && once(1<<4)
		case "args":
			a.Args, ok = p.Strings()
			return ok && once(1<<5)
		case "env":
			return env(p, a) && once(1<<6)
		case "stdin":
			a.Stdin, ok = p.Base64()
			return ok && once(1<<7)
		case "input":
			a.InputHash, ok = p.String()
			return ok && once(1<<8)
		case "seed":
			a.Seed, ok = p.Uint64()
			return ok && once(1<<9)
		case "timeout_ns":
			var ns int
			ns, ok = p.Int()
			a.Timeout = time.Duration(ns)
			return ok && once(1<<10)
		case "memory":
			a.Memory, ok = p.Uint64()
			return ok && once(1<<11)
		case "max_output":
			a.MaxOutput, ok = p.Uint64()
			return ok && once(1<<12)
		case "engine":
			a.Engine, ok = p.String()
			return ok && once(1<<13)
		case "grid_engine":
			a.GridEngine, ok = p.String()
			return ok && once(1<<14)
		case "k":
			a.K, ok = p.Int()
			return ok && once(1<<15)
		case "m":
			a.M, ok = p.Int()
			return ok && once(1<<16)
		case "expiry":
			return expiry(p, a) && once(1<<17)
		}
		return false
	})
}

// env reads an assignment's environment: an object of plain strings.
func env(p *plainjson.Reader, a *api.Assignment) bool {
	if p.Null() {
		return false // encoding/json leaves the map as it was: not this path's
	}
	a.Env = map[string]string{}
	return p.Object(func(key []byte) bool {
		v, ok := p.String()
		if _, dup := a.Env[string(key)]; dup {
			return false
		}
		a.Env[string(key)] = v
		return ok
	})
}

// expiry reads a time as encoding/json does, by time.Time's own
// UnmarshalJSON on the quoted string.
func expiry(p *plainjson.Reader, a *api.Assignment) bool {
	p.Space()
	raw, ok := p.RawString()
	if !ok {
		return false
	}
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	return a.Expiry.UnmarshalJSON(quoted) == nil
}
