package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/internal/testcluster"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// liveData is the part of GET /ui/live this test reads.
type liveData struct {
	Series []struct {
		Rate    float64 `json:"rate"`
		Queued  int     `json:"queued"`
		Running int     `json:"running"`
	} `json:"series"`
	Workers []struct {
		ID       string  `json:"id"`
		Cores    int     `json:"cores"`
		Busy     int     `json:"busy"`
		BusyFrom string  `json:"busy_from"`
		Util     float64 `json:"util"`
	} `json:"workers"`
	Job *struct {
		State    string   `json:"state"`
		Strip    [][4]int `json:"strip"`
		Failures []struct {
			Index  int    `json:"index"`
			Kind   string `json:"kind"`
			Stderr string `json:"stderr"`
		} `json:"failures"`
	} `json:"job"`
}

func getLive(t *testing.T, base, query string, cookie *http.Cookie) (liveData, int) {
	t.Helper()
	r := uiGet(t, base, "/ui/live"+query, cookie)
	var d liveData
	if r.code == http.StatusOK {
		if err := json.Unmarshal([]byte(r.body), &d); err != nil {
			t.Fatalf("/ui/live%s: %v\n%s", query, err, r.body)
		}
	}
	return d, r.code
}

// TestDashboard_LiveData: what live.js draws, without a browser: the
// throughput and queue series, each worker's utilisation from its
// heartbeats, a job's task strip and failures with stderr; a submitter
// sees only its own job's; the image route only for a job with an image.
func TestDashboard_LiveData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), Cores: 4, Worker: browserRunner{release: release}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	c := g.Client()
	mod := examples.Tiny()
	if err := c.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	spec := func(mode string, n int) *tasks.JobSpec {
		return &tasks.JobSpec{Name: mode, ModuleHash: storage.Hash(mod), Args: []string{"{index}", mode}, Tasks: n,
			Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 1 << 20}
	}
	cookie := uiLogin(t, noRedirects, g.Addr, g.Token, true)

	// Two tasks held on the 4-core worker: its heartbeats say 2 running.
	held, err := c.Submit(ctx, spec("hold", 4))
	if err != nil {
		t.Fatal(err)
	}
	var d liveData
	testcluster.Eventually(t, 20*time.Second, "the worker's heartbeat reports its 2 running tasks", func() bool {
		d, _ = getLive(t, g.Addr, "?job="+held, cookie)
		return len(d.Workers) == 1 && d.Workers[0].BusyFrom == "heartbeat" && d.Workers[0].Busy == 2
	})
	if w := d.Workers[0]; w.ID != "dev-worker" || w.Cores != 4 || w.Util != 0.5 {
		t.Errorf("worker %+v, want dev-worker, 4 cores, utilisation 0.5", w)
	}
	if got := stripStates(d.Job.Strip); got != "ddll" {
		t.Errorf("strip %q, want ddll", got)
	}
	peak := 0.0
	for _, p := range d.Series {
		peak = max(peak, p.Rate)
	}
	if last := d.Series[len(d.Series)-1]; last.Running != 2 || peak <= 0 {
		t.Errorf("the series' latest point %+v and peak rate %v, want 2 running and a peak above 0 (two results since the first sample)", last, peak)
	}
	once.Do(func() { close(release) })

	// A failure with its stderr.
	failed, err := c.Submit(ctx, spec("fail", 3))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitJob(ctx, failed, 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	d, _ = getLive(t, g.Addr, "?job="+failed, cookie)
	if d.Job == nil || stripStates(d.Job.Strip) != "dfd" || len(d.Job.Failures) != 1 {
		t.Fatalf("failed job's live data: %+v", d.Job)
	}
	if f := d.Job.Failures[0]; f.Index != 1 || f.Kind != "exit" || f.Stderr != browserStderr {
		t.Errorf("failure %+v, want task 1, exit, with its stderr", f)
	}
	page := uiGet(t, g.Addr, "/ui/jobs/"+failed, cookie)
	wantPage(t, "failed job page", page, http.StatusOK, `id="failure-1"`, "reading input: &lt;b&gt;unexpected&lt;/b&gt; end of data")

	// A job without an image has no image; an unknown job no live data.
	if r := uiGet(t, g.Addr, "/ui/jobs/"+failed+"/image.png", cookie); r.code != http.StatusNotFound {
		t.Errorf("image of a job without one: %d, want 404", r.code)
	}
	if _, code := getLive(t, g.Addr, "?job=j-000000000000", cookie); code != http.StatusNotFound {
		t.Errorf("live data of an unknown job: %d, want 404", code)
	}

	// A submitter sees the grid's workers but not another's job.
	tok, err := c.CreateToken(ctx, &api.CreateTokenRequest{Role: api.CredSubmitter, Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	alice := uiLogin(t, noRedirects, g.Addr, tok.Secret, true)
	if _, code := getLive(t, g.Addr, "?job="+failed, alice); code != http.StatusNotFound {
		t.Errorf("another's job's live data for a submitter: %d, want 404", code)
	}
	if r := uiGet(t, g.Addr, "/ui/live", alice); r.code != http.StatusOK || strings.Contains(r.body, failed) {
		t.Errorf("a submitter's live data: %d, lists another's job: %v", r.code, strings.Contains(r.body, failed))
	}
	if r := uiGet(t, g.Addr, "/ui/live", nil); r.code != http.StatusSeeOther {
		t.Errorf("live data without a session: %d, want a redirect to sign in", r.code)
	}
}

// stripStates is a strip as live.js colours it: per cell its worst state.
func stripStates(cells [][4]int) string {
	var b strings.Builder
	for _, c := range cells {
		switch {
		case c[3] > 0:
			b.WriteByte('f')
		case c[1] > 0:
			b.WriteByte('l')
		case c[0] > 0:
			b.WriteByte('q')
		default:
			b.WriteByte('d')
		}
	}
	return b.String()
}
