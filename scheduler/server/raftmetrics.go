package server

import (
	"strings"
	"unicode"

	compat "github.com/hashicorp/go-metrics/compat"
)

// promNames renames go-metrics keys the way Prometheus names metrics before
// handing them to the Prometheus sink: hashicorp/raft's camelCase keys
// ("raft.commitTime") and label names ("rpcType") become snake_case
// ("raft.commit_time", exported as peergrid_raft_commit_time; "rpc_type"),
// and counters get the _total suffix.
type promNames struct{ sink compat.MetricSink }

var _ compat.MetricSink = promNames{}

func (p promNames) SetGauge(key []string, val float32) { p.sink.SetGauge(snakeKey(key), val) }
func (p promNames) SetGaugeWithLabels(key []string, val float32, labels []compat.Label) {
	p.sink.SetGaugeWithLabels(snakeKey(key), val, snakeLabels(labels))
}
func (p promNames) EmitKey(key []string, val float32) { p.sink.EmitKey(snakeKey(key), val) }
func (p promNames) IncrCounter(key []string, val float32) {
	p.sink.IncrCounter(counterKey(key), val)
}
func (p promNames) IncrCounterWithLabels(key []string, val float32, labels []compat.Label) {
	p.sink.IncrCounterWithLabels(counterKey(key), val, snakeLabels(labels))
}
func (p promNames) AddSample(key []string, val float32) { p.sink.AddSample(snakeKey(key), val) }
func (p promNames) AddSampleWithLabels(key []string, val float32, labels []compat.Label) {
	p.sink.AddSampleWithLabels(snakeKey(key), val, snakeLabels(labels))
}

// snakeLabels is labels with snake_case names (values are left alone).
func snakeLabels(labels []compat.Label) []compat.Label {
	out := make([]compat.Label, len(labels))
	for i, l := range labels {
		out[i] = compat.Label{Name: snakeCase(l.Name), Value: l.Value}
	}
	return out
}

func counterKey(key []string) []string {
	out := snakeKey(key)
	if len(out) > 0 && !strings.HasSuffix(out[len(out)-1], "total") {
		out = append(out, "total")
	}
	return out
}

// snakeKey is key with every part in snake_case.
func snakeKey(key []string) []string {
	out := make([]string, len(key))
	for i, k := range key {
		out[i] = snakeCase(k)
	}
	return out
}

// snakeCase turns "commitTime" and "appendEntriesRPC" into "commit_time" and
// "append_entries_rpc".
func snakeCase(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			nextLower := i > 0 && i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1])
			if prevLower || nextLower {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
