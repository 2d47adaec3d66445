// Package metricstest reads a server's /metrics the way Prometheus and
// promtool do, for the tests of the packages that serve it.
package metricstest

import (
	"bytes"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Exposition is a parsed scrape.
type Exposition struct {
	Families map[string]*dto.MetricFamily
}

// Parse parses a text-format scrape strictly (the parser Prometheus uses),
// failing t on any error or a series given twice.
func Parse(t testing.TB, body string) *Exposition {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics output does not parse: %v\n%s", err, body)
	}
	for name, mf := range mfs {
		seen := map[string]bool{}
		for _, m := range mf.Metric {
			k := labelKey(m.Label)
			if seen[k] {
				t.Fatalf("/metrics: %s{%s} given twice", name, k)
			}
			seen[k] = true
		}
	}
	return &Exposition{Families: mfs}
}

func labelKey(ls []*dto.LabelPair) string {
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// Value is the value of the series name{labels...} (labels as name, value
// pairs; exactly those labels): a gauge's or counter's value, a histogram's
// or summary's sample count.
func (e *Exposition) Value(name string, labels ...string) (float64, bool) {
	mf := e.Families[name]
	if mf == nil {
		return 0, false
	}
	var want []*dto.LabelPair
	for i := 0; i+1 < len(labels); i += 2 {
		want = append(want, &dto.LabelPair{Name: &labels[i], Value: &labels[i+1]})
	}
	key := labelKey(want)
	for _, m := range mf.Metric {
		if labelKey(m.Label) != key {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Summary != nil:
			return float64(m.Summary.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// Lint fails t on any problem promtool check metrics reports: it runs the
// same linter (promlint) in process, and promtool itself where it is
// installed (Debian's prometheus package ships it; skipped with a message
// where it is missing).
func Lint(t testing.TB, body string) {
	t.Helper()
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Logf("promtool not installed (Debian: apt-get install prometheus): checked with promlint only")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
}
