package server_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/internal/devgrid"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
	"github.com/peergrid/peergrid/wasm"
)

// The dashboard in a real browser: headless Chromium, driven by chromedp,
// signs in, watches the overview's live charts and a running job's page
// update without a reload, reads a failed task's stderr, sees an image
// job's stitched tiles and a blob's shards. Screenshots of each page go to
// $PEERGRID_SCREENSHOTS (default: the test's temp dir, logged).
//
// Chromium: $PEERGRID_CHROMIUM, else chromium, chromium-browser or
// google-chrome on PATH (Debian: apt-get install chromium). Without one
// the test skips, unless PEERGRID_REQUIRE_CHROMIUM=1 (set by .ci/run),
// when it fails.

// browserRunner is the dev worker's executor for the browser test; a
// task's second argument says what it does:
//   - hold: tasks 0 and 1 finish at once, the others when release closes;
//   - fail: task 1 exits with code 3 and writes to stderr, the others succeed;
//   - tile: writes a 160x120 binary PGM, a shade per task (18.8 KiB, over
//     the inline threshold: the worker stores it on the storage peers).
type browserRunner struct{ release chan struct{} }

const browserStderr = "reading input: <b>unexpected</b> end of data\npanic: boom at task 1\n"

func (b browserRunner) Run(ctx context.Context, req *wasm.Request) (*wasm.Result, error) {
	i, _ := strconv.Atoi(req.Args[0])
	ok := &wasm.Result{Stdout: []byte("ok\n"), Duration: time.Millisecond}
	switch req.Args[1] {
	case "hold":
		if i >= 2 {
			select {
			case <-b.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	case "fail":
		if i == 1 {
			return &wasm.Result{ExitCode: 3, Stderr: []byte(browserStderr), Duration: time.Millisecond},
				&wasm.TaskError{Kind: wasm.KindExit, Msg: "task exited with code 3"}
		}
	case "tile":
		tile := fmt.Appendf(nil, "P5\n160 120\n255\n")
		tile = append(tile, bytes.Repeat([]byte{byte(40 + 60*i)}, 160*120)...)
		return &wasm.Result{Stdout: tile, Duration: time.Millisecond}, nil
	}
	return ok, nil
}

func chromiumPath(t *testing.T) string {
	if p := os.Getenv("PEERGRID_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found (set PEERGRID_CHROMIUM, or apt-get install chromium): the dashboard's browser test did not run"
	if os.Getenv("PEERGRID_REQUIRE_CHROMIUM") == "1" {
		t.Fatal(msg + ", and PEERGRID_REQUIRE_CHROMIUM=1 requires it")
	}
	t.Skip(msg)
	return ""
}

// browser is a headless Chromium tab for one test, with its screenshots.
type browser struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	base string
}

func newBrowser(t *testing.T, ctx context.Context, base string) *browser {
	bin := chromiumPath(t)
	dir := os.Getenv("PEERGRID_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The machine's network may be closed: without these flags Chromium
	// waits on refused connections of its own (updates, sync, QUIC).
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.IgnoreCertErrors, // the dev grid's certificate, from its own CA
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	t.Logf("screenshots in %s", dir)
	return &browser{t: t, ctx: bctx, dir: dir, base: base}
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// until polls a JavaScript predicate in the page until it is true, for
// up to 30 s (generous: CI runs it beside other packages on 2 cores). A
// poll that a navigation cut short (its document gone) is
// started again in the new one.
func (b *browser) until(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(time.Until(deadline))))
		if err == nil {
			return
		}
		if time.Now().After(deadline) || !strings.Contains(err.Error(), "context") || b.ctx.Err() != nil {
			body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
			b.t.Fatalf("%s: %s never held: %v\npage:\n%s", what, expr, err, body)
		}
	}
}

func (b *browser) eval(expr string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func TestDashboard_InABrowser(t *testing.T) {
	chromiumPath(t) // skip before starting a grid
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	g, err := devgrid.Start(ctx, devgrid.Config{DataDir: t.TempDir(), Cores: 4, Worker: browserRunner{release: release}, StoragePeers: 5, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	c := g.Client()
	mod := examples.Tiny()
	if err := c.PutBlob(ctx, storage.Hash(mod), mod); err != nil {
		t.Fatal(err)
	}
	submit := func(name, mode string, n int, image *tasks.ImageTiles) string {
		id, err := c.Submit(ctx, &tasks.JobSpec{Name: name, ModuleHash: storage.Hash(mod), Args: []string{"{index}", mode},
			Tasks: n, Timeout: time.Minute, Memory: 1 << 20, MaxOutput: 1 << 20, Image: image})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	b := newBrowser(t, ctx, g.Addr)

	// Sign in: the form, then the overview with its live parts drawn.
	b.do("sign in", chromedp.Navigate(g.Addr+"/ui/"), chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", g.Token), chromedp.Submit("#token"), chromedp.WaitVisible("#live"))
	b.until("overview", `document.querySelector("#chart-rate svg") !== null && document.querySelector("#worker-dev-worker") !== null`)
	if got := b.eval(`document.querySelector("#worker-dev-worker").innerText`); !strings.Contains(got, "/ 4") {
		t.Errorf("dev-worker's utilisation row %q, want its 4 cores", got)
	}
	b.screenshot("overview")

	// A running job's page follows the job without a reload: two tasks
	// done and two running, then all four done once the runner lets go.
	held := submit("held", "hold", 4, nil)
	b.do("job page", chromedp.Navigate(g.Addr+"/ui/jobs/"+held))
	b.until("two done, two running", `document.querySelector("#strip").dataset.states === "ddll"`)
	b.until("running counts", `document.querySelector("#counts").innerText.startsWith("2 done, 0 failed, 2 running")`)
	b.until("the task table follows", `document.querySelector("#task-1").innerText.includes("done") && document.querySelector("#task-2").innerText.includes("leased")`)
	b.eval(`String(window.stillThisPage = true)`)
	b.screenshot("job-running")
	once.Do(func() { close(release) })
	b.until("complete without a reload", `window.stillThisPage === true && document.querySelector("#job-state").innerText === "complete" && document.querySelector("#strip").dataset.states === "dddd" && document.querySelector("#task-3").innerText.includes("done")`)
	b.screenshot("job-complete")

	// The overview's throughput chart counts the results the worker gave.
	b.do("overview again", chromedp.Navigate(g.Addr+"/ui/"))
	b.until("results on the throughput chart", `Number(document.querySelector("#chart-rate").dataset.peak) > 0`)
	b.until("the job listed", `document.querySelector("#jobs").innerText.includes("held")`)

	// A failed task's stderr, shown as text.
	failed := submit("fails", "fail", 3, nil)
	b.do("failed job page", chromedp.Navigate(g.Addr+"/ui/jobs/"+failed))
	b.until("the failure with its stderr", `document.querySelector("#failure-1 pre.stderr") !== null && document.querySelector("#strip").dataset.states === "dfd"`)
	if got := b.eval(`document.querySelector("#failure-1 pre.stderr").textContent`); got != browserStderr {
		t.Errorf("failed task's stderr shows %q, want %q", got, browserStderr)
	}
	if n := b.eval(`String(document.querySelectorAll("#failures b").length)`); n != "0" {
		t.Errorf("the stderr's <b> became markup (%s elements)", n)
	}
	if got := b.eval(`document.querySelector("#failure-1 h3").innerText`); !strings.Contains(got, "exit") || !strings.Contains(got, "exit code 3") {
		t.Errorf("failure heading %q, want the kind and exit code 3", got)
	}
	b.screenshot("job-failed")

	// An image job: its 2x2 tiles, read from the storage peers, stitched
	// into one 320x240 picture.
	img := submit("tiles", "tile", 4, &tasks.ImageTiles{Cols: 2, Rows: 2})
	if sum, err := c.WaitJob(ctx, img, 20*time.Millisecond, nil); err != nil || sum.State != tasks.JobComplete {
		t.Fatalf("image job: %+v %v", sum, err)
	}
	b.do("image job page", chromedp.Navigate(g.Addr+"/ui/jobs/"+img))
	b.until("the stitched image", `(() => { const i = document.querySelector("#job-image"); return i && i.complete && i.naturalWidth === 320 && i.naturalHeight === 240 })()`)
	if got := b.eval(`String(document.querySelectorAll("#tasks a[href^='/ui/blobs/']").length)`); got != "4" {
		t.Errorf("%s of the 4 tiles are coded blobs, want all (the stitch reads them from the storage peers)", got)
	}
	// Tile i at column i%2, row i/2, each its own shade, read back from
	// the image as the browser decoded it.
	b.until("the tiles' shades", `(() => { const i = document.querySelector("#job-image");
		if (!i.complete || i.naturalWidth !== 320) return false;
		const c = document.createElement("canvas"); c.width = 320; c.height = 240;
		const g = c.getContext("2d"); g.drawImage(i, 0, 0);
		return [[80, 60], [240, 60], [80, 180], [240, 180]].map(([x, y]) => g.getImageData(x, y, 1, 1).data[0]).join(",") === "40,100,160,220" })()`)
	b.screenshot("job-image")

	// A blob page: an erasure-coded blob's shards, each proved by its peer.
	data := bytes.Repeat([]byte("browser blob "), 4000) // ~52 KiB: coded, not inline
	hash, _, err := c.PutBlobFrom(ctx, bytes.NewReader(data), int64(len(data)), client.BlobOptions{Pin: true})
	if err != nil {
		t.Fatal(err)
	}
	b.do("blob page", chromedp.Navigate(g.Addr+"/ui/blobs/"+hash))
	b.until("shards healthy", `document.body.innerText.includes("6 of 6 shards healthy")`)
	b.screenshot("blob")
}
