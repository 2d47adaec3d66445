package ledger

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/peergrid/peergrid/api"
)

// The compact (binary) shapes of the two commands a busy grid proposes most:
// a lease and a completion, each a few per task. They carry the same Go
// structs as cmdLeaseTasks and cmdCompleteTasks and apply the same way; only
// the payload differs: fields in a fixed order, integers as varints, strings
// and bytes length-prefixed, instead of JSON that Apply must parse (7.5% of
// a busy leader's CPU) and the leader must marshal on every proposal.
//
// A server proposes them only when every voter applies them (the leader's
// command gate, scheduler/server): an older server would stop at them. To
// add a field to LeaseTasksCommand or CompleteTasksCommand (or api.Report,
// api.TaskRef, tasks.Result), append it at the end of both the append and
// the read function below; TestCompactCodec_RoundTripsEveryField fails until
// both do. Once a release has written them, the layout is frozen like any
// command type: a new field then needs a new type.
const (
	cmdLeaseTasksCompact    CommandType = 34
	cmdCompleteTasksCompact CommandType = 35
)

// compactDecoders decode the payload (after the type byte) of each compact type.
var compactDecoders = map[CommandType]func([]byte) (Command, error){
	cmdLeaseTasksCompact:    decodeLeaseTasksCompact,
	cmdCompleteTasksCompact: decodeCompleteTasksCompact,
}

// CompactCommandTypes are the types EncodeCompact may write: a leader may
// use it only when every voter's KnownCommandTypes holds all of them.
func CompactCommandTypes() []int {
	return []int{int(cmdLeaseTasksCompact), int(cmdCompleteTasksCompact)}
}

// KnownCommandTypes lists, sorted, every command type this server's Apply
// applies: what a server advertises to the leader, so the leader never
// proposes a type a voter would stop at.
func KnownCommandTypes() []int {
	out := []int{int(cmdBatch)}
	for t := range commandTypes {
		out = append(out, int(t))
	}
	for t := range compactDecoders {
		out = append(out, int(t))
	}
	slices.Sort(out)
	return out
}

// AppliesAll reports whether known (a server's KnownCommandTypes) holds
// every type in want.
func AppliesAll(known, want []int) bool {
	for _, t := range want {
		if !slices.Contains(known, t) {
			return false
		}
	}
	return true
}

// EncodeCompact encodes c in its compact shape where it has one (leases and
// completions) and as Encode does otherwise.
func EncodeCompact(c Command) ([]byte, error) {
	switch c := c.(type) {
	case *LeaseTasksCommand:
		return appendLeaseTasks(append(make([]byte, 0, 64), byte(cmdLeaseTasksCompact)), c), nil
	case *CompleteTasksCommand:
		return appendCompleteTasks(append(make([]byte, 0, 64+completeSizeHint(c)), byte(cmdCompleteTasksCompact)), c), nil
	}
	return Encode(c)
}

func completeSizeHint(c *CompleteTasksCommand) int {
	n := len(c.Worker)
	for i := range c.Reports {
		r := &c.Reports[i]
		n += 48 + len(r.Job) + len(r.Stdout) + len(r.Stderr) + len(r.StdoutBlob) + len(r.ErrorKind) + len(r.Error) + len(r.Engine)
	}
	return n
}

func appendLeaseTasks(b []byte, c *LeaseTasksCommand) []byte {
	b = appendString(b, c.Worker)
	b = binary.AppendVarint(b, int64(c.Max))
	b = binary.AppendVarint(b, c.Now)
	b = binary.AppendVarint(b, c.Slack)
	b = appendStrings(b, c.Engines)
	b = binary.AppendUvarint(b, c.Draw) // the replicas' random draw (main's LeaseTasksCommand.Draw)
	return b
}

func decodeLeaseTasksCompact(data []byte) (Command, error) {
	r := compactReader{b: data}
	c := &LeaseTasksCommand{
		Worker:  r.string(),
		Max:     r.int(),
		Now:     r.int64(),
		Slack:   r.int64(),
		Engines: r.strings(),
		Draw:    r.uvarint(),
	}
	return c, r.finish(cmdLeaseTasksCompact)
}

func appendCompleteTasks(b []byte, c *CompleteTasksCommand) []byte {
	b = appendString(b, c.Worker)
	b = binary.AppendVarint(b, c.Now)
	b = binary.AppendUvarint(b, uint64(len(c.Reports)))
	for i := range c.Reports {
		b = appendReport(b, &c.Reports[i])
	}
	return b
}

func decodeCompleteTasksCompact(data []byte) (Command, error) {
	r := compactReader{b: data}
	c := &CompleteTasksCommand{Worker: r.string(), Now: r.int64()}
	// Reports is never nil, as JSON's "reports":[] decodes.
	c.Reports = make([]api.Report, r.count())
	var prev api.Report
	for i := range c.Reports {
		r.report(&c.Reports[i], &prev)
		prev = c.Reports[i]
	}
	return c, r.finish(cmdCompleteTasksCompact)
}

func appendReport(b []byte, p *api.Report) []byte {
	b = appendString(b, p.Job)
	b = binary.AppendVarint(b, int64(p.Index))
	b = binary.AppendVarint(b, int64(p.Attempt))
	b = binary.AppendVarint(b, int64(p.ExitCode))
	b = appendBytes(b, p.Stdout)
	b = appendBytes(b, p.Stderr)
	b = appendString(b, p.StdoutBlob)
	b = appendString(b, p.ErrorKind)
	b = appendString(b, p.Error)
	b = binary.AppendVarint(b, int64(p.Duration))
	b = appendString(b, p.Engine)
	return b
}

// report reads one report; prev is the one before it, whose job and engine
// strings it shares when equal (reports in one command mostly do), so they
// are not allocated again.
func (r *compactReader) report(p, prev *api.Report) {
	p.Job = r.stringLike(prev.Job)
	p.Index = r.int()
	p.Attempt = r.int()
	p.ExitCode = r.int()
	p.Stdout = r.bytes()
	p.Stderr = r.bytes()
	p.StdoutBlob = r.string()
	p.ErrorKind = r.string()
	p.Error = r.string()
	p.Duration = time.Duration(r.int64())
	p.Engine = r.stringLike(prev.Engine)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

// compactReader reads a compact payload; the first short or malformed field
// sets err, after which every read returns a zero value.
type compactReader struct {
	b   []byte
	err error
}

func (r *compactReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s at %d bytes from the end", what, len(r.b))
	}
	r.b = nil
}

func (r *compactReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad length")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *compactReader) int64() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad integer")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *compactReader) int() int { return int(r.int64()) }

// count reads a list's length, which cannot exceed the bytes left (every
// element takes at least one), so a corrupt count allocates nothing large.
func (r *compactReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("list longer than the payload")
		return 0
	}
	return int(n)
}

func (r *compactReader) take() []byte {
	n := r.count()
	if r.err != nil {
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *compactReader) string() string { return string(r.take()) }

// stringLike is string, but returns prev itself when equal.
func (r *compactReader) stringLike(prev string) string {
	p := r.take()
	if string(p) == prev {
		return prev
	}
	return string(p)
}

// bytes copies, so the command does not keep the Raft entry alive; an empty
// field is nil, as JSON's omitempty decodes it.
func (r *compactReader) bytes() []byte {
	p := r.take()
	if len(p) == 0 {
		return nil
	}
	return slices.Clone(p)
}

func (r *compactReader) strings() []string {
	n := r.count()
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.string()
	}
	return out
}

func (r *compactReader) finish(t CommandType) error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes past the end", len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("%w: decode %s: %v", ErrCorruptCommand, t, r.err)
	}
	return nil
}
