package scheduler

import (
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// ParseExposition is parseExposition for the cluster tests in package
// scheduler_test (metrics_grid_test.go).
var ParseExposition = parseExposition

// Exposition is a parsed scrape: every series by its canonical key.
type Exposition struct {
	Samples map[string]float64 // seriesKey(name, labels) -> value
	Types   map[string]string  // family -> type
	Help    map[string]string  // family -> help text, unescaped
}

// Value is the value of one series; labels are name, value pairs in any order.
func (e *Exposition) Value(name string, labels ...string) (float64, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		m[labels[i]] = labels[i+1]
	}
	v, ok := e.Samples[seriesKey(name, m)]
	return v, ok
}

func seriesKey(name string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(name)
	for _, k := range keys {
		fmt.Fprintf(&b, "|%s=%q", k, labels[k])
	}
	return b.String()
}

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parseExposition checks the text format 0.0.4 strictly, as far as this
// server uses it: every family has one HELP then one TYPE line before its
// samples; a family's samples form one group after them; names and label
// names match the grammar; label values use only the three escapes; values
// parse as floats; no series appears twice; no other lines (blank lines and
// other comments included) appear. It returns every sample.
func parseExposition(text string) (*Exposition, error) {
	e := &Exposition{Samples: map[string]float64{}, Types: map[string]string{}, Help: map[string]string{}}
	if text == "" || !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("output empty or not ending in a line feed")
	}
	var current string        // the family whose samples may follow
	done := map[string]bool{} // families whose group has ended
	for n, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		n++
		switch {
		case strings.HasPrefix(line, "# HELP "):
			name, help, ok := strings.Cut(strings.TrimPrefix(line, "# HELP "), " ")
			if !ok || !metricNameRE.MatchString(name) {
				return nil, fmt.Errorf("line %d: bad HELP line %q", n, line)
			}
			if _, dup := e.Help[name]; dup {
				return nil, fmt.Errorf("line %d: second HELP for %s", n, name)
			}
			u, err := unescape(help, false)
			if err != nil {
				return nil, fmt.Errorf("line %d: HELP %s: %v", n, name, err)
			}
			e.Help[name] = u
			if current != "" {
				done[current] = true
			}
			current = ""
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Split(strings.TrimPrefix(line, "# TYPE "), " ")
			if len(f) != 2 || !metricNameRE.MatchString(f[0]) {
				return nil, fmt.Errorf("line %d: bad TYPE line %q", n, line)
			}
			if _, ok := e.Help[f[0]]; !ok {
				return nil, fmt.Errorf("line %d: TYPE of %s before its HELP", n, f[0])
			}
			if _, dup := e.Types[f[0]]; dup || done[f[0]] {
				return nil, fmt.Errorf("line %d: second TYPE for %s", n, f[0])
			}
			switch f[1] {
			case "counter", "gauge", "untyped":
			default:
				return nil, fmt.Errorf("line %d: type %q (this server writes only counters and gauges)", n, f[1])
			}
			if f[1] == "counter" && !strings.HasSuffix(f[0], "_total") {
				return nil, fmt.Errorf("line %d: counter %s does not end in _total", n, f[0])
			}
			e.Types[f[0]] = f[1]
			current = f[0]
		case strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "":
			return nil, fmt.Errorf("line %d: unexpected line %q", n, line)
		default:
			name, labels, value, err := parseSample(line)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", n, err)
			}
			if name != current {
				return nil, fmt.Errorf("line %d: sample of %s outside its family's group (HELP and TYPE first, samples together)", n, name)
			}
			key := seriesKey(name, labels)
			if _, dup := e.Samples[key]; dup {
				return nil, fmt.Errorf("line %d: duplicate series %s", n, line)
			}
			e.Samples[key] = value
		}
	}
	for name := range e.Help {
		if _, ok := e.Types[name]; !ok {
			return nil, fmt.Errorf("family %s has HELP but no TYPE", name)
		}
	}
	return e, nil
}

// parseSample parses `name{l="v",...} value`.
func parseSample(line string) (string, map[string]string, float64, error) {
	end := strings.IndexAny(line, "{ ")
	if end < 0 {
		return "", nil, 0, fmt.Errorf("no value in %q", line)
	}
	name, rest := line[:end], line[end:]
	if !metricNameRE.MatchString(name) {
		return "", nil, 0, fmt.Errorf("bad metric name %q", name)
	}
	labels := map[string]string{}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for !strings.HasPrefix(rest, "}") {
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return "", nil, 0, fmt.Errorf("bad labels in %q", line)
			}
			ln := rest[:eq]
			if !labelNameRE.MatchString(ln) || strings.HasPrefix(ln, "__") {
				return "", nil, 0, fmt.Errorf("bad label name %q", ln)
			}
			rest = rest[eq+2:]
			var val strings.Builder
			closed := false
			for i := 0; i < len(rest); i++ {
				c := rest[i]
				if c == '"' {
					rest, closed = rest[i+1:], true
					break
				}
				if c == '\\' {
					if i+1 == len(rest) {
						break
					}
					i++
					switch rest[i] {
					case '\\':
						val.WriteByte('\\')
					case '"':
						val.WriteByte('"')
					case 'n':
						val.WriteByte('\n')
					default:
						return "", nil, 0, fmt.Errorf("bad escape \\%c in %q", rest[i], line)
					}
					continue
				}
				val.WriteByte(c)
			}
			if !closed {
				return "", nil, 0, fmt.Errorf("unterminated label value in %q", line)
			}
			if _, dup := labels[ln]; dup {
				return "", nil, 0, fmt.Errorf("label %s twice in %q", ln, line)
			}
			labels[ln] = val.String()
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
			} else if !strings.HasPrefix(rest, "}") {
				return "", nil, 0, fmt.Errorf("bad labels in %q", line)
			}
		}
		rest = rest[1:]
	}
	if !strings.HasPrefix(rest, " ") {
		return "", nil, 0, fmt.Errorf("no space before the value in %q", line)
	}
	f := strings.Split(rest[1:], " ")
	if len(f) > 2 || f[0] == "" {
		return "", nil, 0, fmt.Errorf("bad value in %q", line)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return "", nil, 0, fmt.Errorf("value of %q: %v", line, err)
	}
	if len(f) == 2 {
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			return "", nil, 0, fmt.Errorf("timestamp of %q: %v", line, err)
		}
	}
	return name, labels, v, nil
}

// unescape undoes HELP escaping (\\ and \n) or, with quotes, label escaping.
func unescape(s string, quotes bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("trailing backslash")
		}
		i++
		switch {
		case s[i] == '\\':
			b.WriteByte('\\')
		case s[i] == 'n':
			b.WriteByte('\n')
		case s[i] == '"' && quotes:
			b.WriteByte('"')
		default:
			return "", fmt.Errorf("bad escape \\%c", s[i])
		}
	}
	return b.String(), nil
}

func TestMetrics_EscapeLabelValue(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`plain`, `plain`},
		{`say "hi"`, `say \"hi\"`},
		{`C:\dir\`, `C:\\dir\\`},
		{"two\nlines", `two\nlines`},
		{"\\\"\n", `\\\"\n`},
		{`\n`, `\\n`}, // a backslash then n stays two characters
		{"tab\tand ünïcode", "tab\tand ünïcode"},
		{"", ""},
	} {
		if got := escapeLabelValue(c.in); got != c.want {
			t.Errorf("escapeLabelValue(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestMetrics_WriterRoundTrip writes awkward label values and help text and
// reads them back through the strict parser.
func TestMetrics_WriterRoundTrip(t *testing.T) {
	values := []string{`say "hi"`, `C:\dir\`, "two\nlines", `\n`, "\\\"\n\"\\", "", "ünïcode {} = ,"}
	var w metricWriter
	w.family("peergrid_test_info", "gauge", "Help with a backslash \\ and\na line feed and \"quotes\".")
	for i, v := range values {
		w.sample("peergrid_test_info", float64(i), "value", v, "i", strconv.Itoa(i))
	}
	w.counter("peergrid_test_total", "A counter.", 1<<40)
	w.gauge("peergrid_test_ratio", "A fraction.", 0.25)
	w.gauge("peergrid_test_nan", "Not a number.", math.NaN())
	e, err := parseExposition(w.buf.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, w.buf.String())
	}
	for i, v := range values {
		if got, ok := e.Value("peergrid_test_info", "value", v, "i", strconv.Itoa(i)); !ok || got != float64(i) {
			t.Errorf("label value %q: got %v, %v\n%s", v, got, ok, w.buf.String())
		}
	}
	if h := e.Help["peergrid_test_info"]; h != "Help with a backslash \\ and\na line feed and \"quotes\"." {
		t.Errorf("help read back as %q", h)
	}
	if v, _ := e.Value("peergrid_test_total"); v != 1<<40 || !strings.Contains(w.buf.String(), "peergrid_test_total 1099511627776\n") {
		t.Errorf("counter: %v\n%s", v, w.buf.String())
	}
	if v, _ := e.Value("peergrid_test_ratio"); v != 0.25 {
		t.Errorf("ratio: %v", v)
	}
	if v, ok := e.Value("peergrid_test_nan"); !ok || !math.IsNaN(v) {
		t.Errorf("NaN: %v %v", v, ok)
	}
}

// TestMetrics_ParserRefusesBadOutput makes sure the checks the cluster tests
// rely on do fail.
func TestMetrics_ParserRefusesBadOutput(t *testing.T) {
	head := "# HELP a_b A.\n# TYPE a_b gauge\n"
	for name, text := range map[string]string{
		"no HELP":         "# TYPE a_b gauge\na_b 1\n",
		"no TYPE":         "# HELP a_b A.\na_b 1\n",
		"sample first":    "a_b 1\n" + head,
		"duplicate":       head + "a_b{x=\"1\"} 1\na_b{x=\"1\"} 2\n",
		"dup labels":      head + "a_b{x=\"1\",x=\"2\"} 1\n",
		"bad name":        "# HELP 1a A.\n# TYPE 1a gauge\n1a 1\n",
		"bad label name":  head + "a_b{1x=\"1\"} 1\n",
		"bad escape":      head + "a_b{x=\"\\t\"} 1\n",
		"unterminated":    head + "a_b{x=\"1} 1\n",
		"bad value":       head + "a_b one\n",
		"split group":     head + "a_b 1\n# HELP c_d C.\n# TYPE c_d gauge\nc_d 1\na_b{x=\"2\"} 1\n",
		"counter name":    "# HELP a_b A.\n# TYPE a_b counter\na_b 1\n",
		"blank line":      head + "\na_b 1\n",
		"no final LF":     head + "a_b 1",
		"other family":    head + "c_d 1\n",
		"second TYPE":     head + "a_b 1\n# TYPE a_b gauge\n",
		"reserved label":  head + "a_b{__x=\"1\"} 1\n",
		"trailing comma?": head + "a_b{x=\"1\"x=\"2\"} 1\n",
	} {
		if _, err := parseExposition(text); err == nil {
			t.Errorf("%s: parsed without error:\n%s", name, text)
		}
	}
	if _, err := parseExposition(head + "a_b{x=\"1\",} 1\na_b 2\n"); err != nil {
		t.Errorf("a trailing comma in labels is allowed: %v", err)
	}
}

// TestMetrics_LedgerStatsFromCounters checks the ledger families against a
// ledger built through Apply: jobs and tasks by state from the job counters,
// peers by role and state, cores of alive workers, blobs.
func TestMetrics_LedgerStatsFromCounters(t *testing.T) {
	a := newApplier(t)
	a.apply(cmdUpsertPeer, &UpsertPeerCommand{ID: "w1", Roles: []string{api.RoleWorker, api.RoleStorage}, Cores: 4, State: api.PeerAlive, Now: 1})
	a.apply(cmdUpsertPeer, &UpsertPeerCommand{ID: "w2", Roles: []string{api.RoleWorker}, Cores: 8, State: api.PeerDown, Now: 1})
	a.submit("j1", 3, 0, 0)
	grants := a.lease("w1", 3)                                                                        // all of j1
	if len(grants) != 3 || !a.complete("w1", grants[0], "") || !a.complete("w1", grants[1], "trap") { // no retries: failed
		t.Fatalf("grants %v", grants)
	}
	a.submit("j2", 2, 0, 0)
	var ls ledgerStats
	a.fsm.View(ls.collect)
	var w metricWriter
	ls.write(&w)
	e, err := parseExposition(w.buf.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, w.buf.String())
	}
	want := map[string]float64{
		`peergrid_ledger_jobs|state="running"`:                  1,
		`peergrid_ledger_jobs|state="queued"`:                   1,
		`peergrid_ledger_jobs|state="complete"`:                 0,
		`peergrid_ledger_tasks|state="queued"`:                  2,
		`peergrid_ledger_tasks|state="leased"`:                  1,
		`peergrid_ledger_tasks|state="done"`:                    1,
		`peergrid_ledger_tasks|state="failed"`:                  1,
		`peergrid_ledger_leases`:                                1,
		`peergrid_ledger_peers|role="worker"|state="alive"`:     1,
		`peergrid_ledger_peers|role="worker"|state="down"`:      1,
		`peergrid_ledger_peers|role="storage"|state="alive"`:    1,
		`peergrid_ledger_peers|role="server"|state="alive"`:     0,
		`peergrid_ledger_worker_cores`:                          4,
		`peergrid_ledger_inline_blobs`:                          1,
		`peergrid_ledger_inline_blob_bytes`:                     float64(len(testModule)),
		`peergrid_ledger_coded_blobs`:                           0,
		`peergrid_ledger_blobs_with_unplaced_shards`:            0,
		`peergrid_ledger_peers|role="storage"|state="draining"`: 0,
	}
	for k, v := range want {
		if got, ok := e.Samples[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
}

// BenchmarkMetricsScrape measures what a scrape does with the ledger: the
// read-locked copy of its numbers (collect) and the whole render of the
// ledger families, on the repair benchmarks' 100k erasure-coded blobs over
// 50 peers plus 1,000 jobs of 200 tasks. collect visits no task, so the
// jobs' size does not matter, only their number.
//
//	go test -run '^$' -bench MetricsScrape -benchmem ./scheduler/
func BenchmarkMetricsScrape(b *testing.B) {
	f, _ := benchLedger(b)
	jobs := NewFSM() // the shared blob ledger is left as the other benchmarks expect
	var idx uint64
	mod := []byte("\x00asm\x01\x00\x00\x00")
	hash := storage.Hash(mod)
	fsmApply(b, jobs, &idx, cmdPutBlob, &PutBlobCommand{Hash: hash, Data: mod, Now: 1})
	r := rand.New(rand.NewPCG(3, 4))
	for j := range 1000 {
		spec := tasks.JobSpec{Name: "bench", ModuleHash: hash, Tasks: 200, Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 1 << 10}
		if resp := fsmApply(b, jobs, &idx, cmdSubmitJob, &SubmitJobCommand{ID: fmt.Sprintf("j-%04d", j), Spec: spec, Now: 2}); resp != nil {
			b.Fatalf("submit: %v", resp)
		}
		fsmApply(b, jobs, &idx, cmdLeaseTasks, &LeaseTasksCommand{Worker: "w", Max: r.IntN(200), Now: 3})
	}
	for _, c := range []struct {
		name string
		f    *FSM
	}{{"blobs-100k", f}, {"jobs-1k-tasks-200k", jobs}} {
		b.Run(c.name+"/collect", func(b *testing.B) {
			for b.Loop() {
				var ls ledgerStats
				c.f.View(ls.collect)
			}
		})
		b.Run(c.name+"/render", func(b *testing.B) {
			for b.Loop() {
				var ls ledgerStats
				c.f.View(ls.collect)
				var w metricWriter
				ls.write(&w)
			}
		})
	}
}
