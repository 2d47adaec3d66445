package views

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/scheduler/store"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// The web dashboard: read-only HTML pages under /ui/, rendered on the server
// with html/template (which escapes every value), nothing fetched from
// elsewhere. One plain script of its own, live.js (no framework, no build
// step), keeps the overview and job pages current from GET /ui/live
// (live.go) and puts every value in as text; without JavaScript those
// pages refresh themselves instead. Every server serves it and renders from its own
// applied copy of the ledger (as GET /metrics does; a follower may lag the
// leader by a few entries), so a page never waits on the leader.
//
// Authentication: a browser cannot send the token header on navigation, so
// POST /ui/login takes a credential's token from a form and starts a
// session (sessions.go): the cookie holds only a random session id,
// HttpOnly, SameSite=Strict, Secure over TLS, limited to Path=/ui/. The
// cookie is honoured only by the /ui/ pages: the server sends everything
// else through its authenticate, which reads headers only, so the JSON API
// and /metrics answer 401 to a request that carries the cookie but not the
// header. The pages accept the header too (curl, tests). The token never
// appears in a URL, a page or a cookie. Every POST must come from this
// server's own origin and carry its form's CSRF token (guard.go).

//go:embed dashboard/*.tmpl dashboard/static
var dashboardFS embed.FS

const (
	uiPath         = "/ui/" // the cookies' Path
	uiTasksPerPage = 200    // task rows on one job page
	uiSegsPerPage  = 64     // segments (each k+m shards) checked and shown on one blob page
	uiMaxJobs      = 500    // newest jobs on the overview
	uiRefresh      = 5      // seconds between automatic reloads
	uiHealthWait   = 3 * time.Second
	uiRaftWait     = 2 * time.Second // per server, asked in parallel
	// legacyCookie held the token itself before sessions; sign-in clears
	// it from browsers that still have it.
	legacyCookie = "peergrid_ui"
)

// IsDashboardPath reports whether a request belongs to the dashboard rather
// than the JSON API.
func IsDashboardPath(p string) bool { return p == "/ui" || strings.HasPrefix(p, "/ui/") }

var uiFuncs = template.FuncMap{
	"join": strings.Join,
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ago": func(t time.Time) string {
		if t.IsZero() || t.Unix() <= 0 {
			return "-"
		}
		d := time.Since(t).Round(time.Second)
		if d < 0 {
			d = 0
		}
		return d.String() + " ago"
	},
	"bytes": humanBytes,
	"cpu":   CPUTime,
	"int64": func(u uint64) int64 { return int64(min(u, 1<<62)) },
	"pct": func(part, total int) string { // a CSS width, 0..100
		if total <= 0 {
			return "0"
		}
		return strconv.FormatFloat(100*float64(part)/float64(total), 'f', 2, 64)
	},
	"exit": func(c *int) string {
		if c == nil {
			return "-"
		}
		return strconv.Itoa(*c)
	},
	"pathesc": url.PathEscape,
	"worker":  func(roles []string) bool { return slices.Contains(roles, api.RoleWorker) },
	"short": func(s string) string {
		if len(s) > 16 {
			return s[:16] + "…"
		}
		return s
	},
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// uiPages are the parsed templates, one set per page (each defines "content"
// inside layout.tmpl's "layout").
var uiPages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, p := range []string{"login", "overview", "job", "blob", "notfound"} {
		out[p] = template.Must(template.New(p).Funcs(uiFuncs).ParseFS(dashboardFS, "dashboard/layout.tmpl", "dashboard/"+p+".tmpl"))
	}
	return out
}()

// uiCommon is what every page shows in its header.
type uiCommon struct {
	Title string
	// CSRF is the token the page's forms carry (login: double-submitted
	// with a cookie; sign out: the session's).
	CSRF    string
	Authed  bool // show the status line, refresh and the logout button
	Refresh int
	// Live pages load live.js, which keeps them current from /ui/live;
	// they refresh only in a browser without JavaScript.
	Live     bool
	ServerID string
	State    string // this server's Raft state
	IsLeader bool
	LeaderID string
	Applied  uint64
	Rendered time.Time
	Viewer   Viewer
}

func (d *Dashboard) uiCommon(r *http.Request, title string) uiCommon {
	st := d.src.Store()
	_, leader := st.Leader()
	rf := st.Raft()
	return uiCommon{Title: title, Authed: true, Refresh: uiRefresh, ServerID: st.ID(), State: store.StateName(rf.State()),
		IsLeader: rf.State() == raft.Leader, LeaderID: leader, Applied: rf.AppliedIndex(), Rendered: time.Now().UTC(),
		CSRF: sessionOf(r).csrf, Viewer: viewerOf(r)}
}

// liveCommon is uiCommon for a page live.js keeps current.
func (d *Dashboard) liveCommon(r *http.Request, title string) uiCommon {
	c := d.uiCommon(r, title)
	c.Live = true // the refresh only without JavaScript
	return c
}

var liveJS = must(dashboardFS.ReadFile("dashboard/static/live.js"))

func serveLiveJS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	_, _ = w.Write(liveJS)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Source is what the dashboard reads: the server it runs in.
type Source interface {
	// Store is the server's ledger store: its Raft state and its applied
	// copy of the ledger.
	Store() *store.Store
	// Peers lists every peer, as `peergrid peers` shows them.
	Peers() []api.Peer
	// RaftPeers describes each server of the Raft group, asking the others
	// in parallel within ctx.
	RaftPeers(ctx context.Context) []api.RaftPeer
	// StorageDefaults are the cluster's erasure coding, k data and m parity.
	StorageDefaults() (k, m int)
	// ShardPeer is a client for the storage peer at addr.
	ShardPeer(addr string) storage.ShardPeer
	// Viewer is who a request's headers say it is, and ViewerOf who a token
	// (from the login form) is; false for no live credential. With
	// authentication disabled (tests) everyone is an operator.
	Viewer(r *http.Request) (Viewer, bool)
	ViewerOf(token string) (Viewer, bool)
	// LiveCredential is the credential id names as a Viewer, if it is
	// still live (not revoked, not expired): a session's, checked on
	// every request.
	LiveCredential(id string) (Viewer, bool)
	// ReportedRunning is how many tasks worker id said it was running in
	// its last heartbeat to this server; false when this server has not
	// heard (only the leader takes heartbeats).
	ReportedRunning(id string) (int, bool)
	Logger() *slog.Logger
}

// Viewer is who looks at the dashboard: a credential's id and role. An
// operator sees everything; a submitter its own jobs and blobs; a worker's
// or join credential the grid's state but no job or blob.
type Viewer struct {
	ID, Role string
}

func (v Viewer) seesAllJobs() bool { return v.Role == api.CredOperator }
func (v Viewer) seesJobs() bool    { return v.Role == api.CredOperator || v.Role == api.CredSubmitter }

type viewerKey struct{}

func viewerOf(r *http.Request) Viewer {
	v, _ := r.Context().Value(viewerKey{}).(Viewer)
	return v
}

type sessionKey struct{}

// sessionOf is the request's session; an empty one for a request signed
// in by its header.
func sessionOf(r *http.Request) *session {
	if s, ok := r.Context().Value(sessionKey{}).(*session); ok {
		return s
	}
	return &session{}
}

// Dashboard serves the web dashboard under /ui/.
type Dashboard struct {
	src      Source
	handler  http.Handler
	logins   *rateLimiter // login attempts per client address
	sessions *sessionStore
	now      func() time.Time // the sessions' and the limiter's clock (tests move it)
	history  samples          // throughput over the last hour (live.go)
}

// NewDashboard is the dashboard of the server src.
func NewDashboard(src Source) *Dashboard {
	d := &Dashboard{src: src, logins: newRateLimiter(loginBurst, loginEvery, maxLimited), sessions: newSessionStore(maxSessions, maxSessionsPerCredential), now: time.Now}
	d.handler = d.routes()
	return d
}

// ServeHTTP implements http.Handler.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.handler.ServeHTTP(w, r) }

func (d *Dashboard) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/login", d.uiLoginForm)
	mux.HandleFunc("POST /ui/login", d.uiLogin)
	mux.HandleFunc("POST /ui/logout", d.uiLogout)
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusSeeOther) })
	mux.Handle("GET /ui/{$}", d.uiAuthed(d.uiOverview))
	mux.Handle("GET /ui/jobs/{id}", d.uiAuthed(d.uiJob))
	mux.Handle("GET /ui/blobs/{hash}", d.uiAuthed(d.uiBlob))
	mux.Handle("GET /ui/go", d.uiAuthed(d.uiGo))
	mux.Handle("GET /ui/live", d.uiAuthed(d.uiLive))
	mux.Handle("GET /ui/jobs/{id}/image.png", d.uiAuthed(d.uiJobImage))
	mux.HandleFunc("GET /ui/static/live.js", serveLiveJS) // no secret in it: served before sign-in too
	mux.Handle("/ui/", d.uiAuthed(func(w http.ResponseWriter, r *http.Request) {
		d.uiNotFound(w, r, "Page not found", "There is no dashboard page at "+r.URL.Path+".")
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// same-origin, not no-referrer: with no-referrer a browser sends
		// "Origin: null" on the pages' own forms, which sameOrigin refuses.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		if r.Method == http.MethodPost {
			if err := sameOrigin(r); err != nil {
				http.Error(w, "dashboard: refused: "+err.Error(), http.StatusForbidden)
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// uiViewer is who a request is: a credential in the usual header, or the
// session its cookie names (nil for the header), whose credential must
// still be live; a session whose credential is not is ended.
func (d *Dashboard) uiViewer(r *http.Request) (Viewer, *session, bool) {
	if v, ok := d.src.Viewer(r); ok {
		return v, nil, true
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return Viewer{}, nil, false
	}
	s, ok := d.sessions.get(c.Value, d.now())
	if !ok {
		return Viewer{}, nil, false
	}
	v, ok := d.src.LiveCredential(s.viewer.ID)
	if !ok || v.Role != s.viewer.Role {
		d.sessions.drop(s.id)
		return Viewer{}, nil, false
	}
	return v, s, true
}

// uiAuthed sends a browser without a credential to the login form (not a
// 401 in JSON, which a person could do nothing with), and hands the page
// who is looking and its session.
func (d *Dashboard) uiAuthed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, s, ok := d.uiViewer(r)
		if !ok {
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		ctx := context.WithValue(r.Context(), viewerKey{}, v)
		if s != nil {
			ctx = context.WithValue(ctx, sessionKey{}, s)
		}
		h(w, r.WithContext(ctx))
	})
}

type uiLoginPage struct {
	uiCommon
	Message string
}

func (d *Dashboard) uiLoginForm(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := d.uiViewer(r); ok {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	d.renderLogin(w, r, http.StatusOK, "")
}

// renderLogin shows the login form with a fresh CSRF token, set in a cookie
// too: the form's POST must bring both, equal (a double-submit check a
// page on another site cannot pass).
func (d *Dashboard) renderLogin(w http.ResponseWriter, r *http.Request, code int, msg string) {
	tok := newCSRFToken()
	http.SetCookie(w, d.cookie(r, csrfCookie, tok, 0))
	c := uiCommon{Title: "Sign in", CSRF: tok}
	d.uiRender(w, code, "login", uiLoginPage{uiCommon: c, Message: msg})
}

// cookie is one of the dashboard's cookies: HttpOnly, SameSite=Strict,
// for /ui/ only, Secure over TLS. maxAge < 0 deletes it; 0 makes it last
// until the browser closes.
func (d *Dashboard) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: uiPath, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: overTLS(r)}
}

// uiLogin checks the token from the form body (never the URL query) and, if
// it is a live credential of the grid, starts a session. A wrong token
// starts nothing. Attempts are limited per client address, and the form
// must carry the CSRF token its page was given.
func (d *Dashboard) uiLogin(w http.ResponseWriter, r *http.Request) {
	if ok, wait := d.logins.allow(clientKey(r), d.now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		d.renderLogin(w, r, http.StatusTooManyRequests,
			fmt.Sprintf("Too many sign-in attempts from your address: try again in %s.", wait.Round(time.Second)))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		d.renderLogin(w, r, http.StatusBadRequest, "Could not read the form.")
		return
	}
	if err := loginCSRF(r); err != nil {
		d.renderLogin(w, r, http.StatusForbidden, "Refused: "+err.Error()+". Sign in again from this form.")
		return
	}
	tok := strings.TrimSpace(r.PostForm.Get("token")) // a pasted token often brings a newline along
	v, ok := d.src.ViewerOf(tok)
	if tok == "" || !ok {
		d.renderLogin(w, r, http.StatusUnauthorized,
			"That is not a live credential of this grid. Paste a token an operator gave you (PEERGRID_TOKEN), or the one peergrid dev printed.")
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		d.sessions.drop(c.Value) // a fresh id on every sign-in: no fixation
	}
	s := d.sessions.create(v, d.now())
	http.SetCookie(w, d.cookie(r, sessionCookie, s.id, int(sessionMaxAge/time.Second)))
	http.SetCookie(w, d.cookie(r, csrfCookie, "", -1))
	http.SetCookie(w, &http.Cookie{Name: legacyCookie, Value: "", Path: "/ui", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: overTLS(r)})
	d.src.Logger().Info("dashboard: signed in", "credential", v.ID, "role", v.Role, "client", clientKey(r))
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// uiLogout ends the session on this server and clears the cookie. Its form
// carries the session's CSRF token, so another site cannot sign a user
// out. Without a live session there is nothing to end: the cookie is
// cleared all the same.
func (d *Dashboard) uiLogout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "dashboard: could not read the sign-out form", http.StatusBadRequest)
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if s, ok := d.sessions.get(c.Value, d.now()); ok {
			if err := sessionCSRF(r, s); err != nil {
				http.Error(w, "dashboard: sign-out refused: "+err.Error(), http.StatusForbidden)
				return
			}
			d.sessions.drop(s.id)
			d.src.Logger().Info("dashboard: signed out", "credential", s.viewer.ID, "client", clientKey(r))
		}
	}
	http.SetCookie(w, d.cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// uiGo is the overview's jump form: a job id or a blob hash.
func (d *Dashboard) uiGo(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if id := strings.TrimSpace(q.Get("job")); id != "" {
		http.Redirect(w, r, "/ui/jobs/"+url.PathEscape(id), http.StatusSeeOther)
		return
	}
	if h := strings.TrimSpace(q.Get("blob")); h != "" {
		http.Redirect(w, r, "/ui/blobs/"+url.PathEscape(h), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// uiRender executes a page into a buffer first, so a template error is a
// clean 500 rather than half a page.
func (d *Dashboard) uiRender(w http.ResponseWriter, code int, page string, data any) {
	var buf bytes.Buffer
	if err := uiPages[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		d.src.Logger().Error("dashboard: rendering", "page", page, "err", err)
		http.Error(w, "dashboard: rendering failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

type uiNotFoundPage struct {
	uiCommon
	Message string
}

func (d *Dashboard) uiNotFound(w http.ResponseWriter, r *http.Request, title, msg string) {
	c := d.uiCommon(r, title)
	c.Refresh = 0
	d.uiRender(w, http.StatusNotFound, "notfound", uiNotFoundPage{uiCommon: c, Message: msg})
}

// --- overview ---

type uiOverviewPage struct {
	uiCommon
	Raft      uiRaft
	Servers   []api.RaftPeer
	Peers     []api.Peer
	Jobs      []api.JobSummary
	JobsTotal int
	Storage   uiStorage
	Tasks     [4]int // queued, leased, done, failed over all jobs
}

// uiRaft is raftStats (metrics.go) for a template, which sees exported fields only.
type uiRaft struct {
	State                                           string
	Term, LastIndex, Commit, Applied, SnapshotIndex uint64
}

type uiStorage struct {
	Live, Total                         int // storage peers
	Inline, Coded, Unplaced, Pinned     int
	InlineBytes, CodedBytes, CodedShard int64
}

func (d *Dashboard) uiOverview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), uiRaftWait)
	defer cancel()
	rs := collectRaft(d.src.Store().Raft())
	p := uiOverviewPage{uiCommon: d.liveCommon(r, "Overview"), Servers: d.src.RaftPeers(ctx),
		Raft: uiRaft{State: rs.state, Term: rs.term, LastIndex: rs.lastIndex, Commit: rs.commit, Applied: rs.applied, SnapshotIndex: rs.snapshotIndex}}
	p.Peers = d.src.Peers()
	var ls ledger.Stats
	d.src.Store().FSM().View(func(l *ledger.Ledger) {
		ls = l.Stats() // O(jobs + peers + blobs), no task visited
		p.Storage.Live, p.Storage.Total = len(l.StoragePeers(true)), len(l.StoragePeers(false))
		p.Jobs, p.JobsTotal = visibleJobs(l, viewerOf(r)) // summaries only
	})
	p.Tasks = ls.Tasks
	p.Storage.Inline, p.Storage.Coded, p.Storage.Unplaced, p.Storage.Pinned = ls.Inline, ls.Coded, ls.UnplacedBlobs, ls.PinnedBlobs
	p.Storage.InlineBytes, p.Storage.CodedBytes, p.Storage.CodedShard = ls.InlineBytes, ls.CodedBytes, int64(ls.CodedShards)
	d.uiRender(w, http.StatusOK, "overview", p)
}

// visibleJobs is the newest uiMaxJobs jobs v may see and how many there are.
func visibleJobs(l *ledger.Ledger, v Viewer) ([]api.JobSummary, int) {
	switch {
	case v.seesAllJobs():
		return l.NewestJobSummaries(uiMaxJobs), l.JobCount()
	case v.seesJobs():
		own := l.JobSummariesOf(v.ID)
		slices.Reverse(own)
		return own[:min(len(own), uiMaxJobs)], len(own)
	}
	return nil, 0
}

// seesBlob: operators and peers see every blob, a submitter those it may
// read, a join token none.
func seesBlob(l *ledger.Ledger, v Viewer, hash string) bool {
	switch v.Role {
	case api.CredOperator, api.CredPeer:
		return true
	case api.CredSubmitter:
		return l.MayRead(v.ID, hash)
	}
	return false
}

// --- job ---

type uiJobPage struct {
	uiCommon
	Job        api.JobSummary
	Spec       tasks.JobSpec
	K, M       int
	KMDefault  bool
	Tasks      []uiTask
	Page       int
	Pages      int
	First      int // index of the first task shown
	Last       int
	PrevPage   int // 0: none
	NextPage   int
	ModuleLink bool
	Inputs     int // input files (one per task), 0 without
	Image      *tasks.ImageTiles
	Failures   []liveFailure // the first few, with their stderr tails
	// Replicated says the job runs replicas: the task table then shows
	// each replica's worker, hash and verdict.
	Replicated bool
}

type uiTask struct {
	api.TaskStatus
	StdoutBlob string
}

// uiPageNumber is the ?page= of a paginated page (1 when absent); a value
// that is not a page number gets a "Bad page" answer and ok false.
func (d *Dashboard) uiPageNumber(w http.ResponseWriter, r *http.Request) (page int, ok bool) {
	v := r.URL.Query().Get("page")
	if v == "" {
		return 1, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		d.uiNotFound(w, r, "Bad page", fmt.Sprintf("page=%q is not a page number (1, 2, ...).", v))
		return 0, false
	}
	return n, true
}

func (d *Dashboard) uiJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	page, ok := d.uiPageNumber(w, r)
	if !ok {
		return
	}
	p := uiJobPage{uiCommon: d.liveCommon(r, "Job "+id), Page: page}
	var found bool
	v := viewerOf(r)
	d.src.Store().FSM().View(func(l *ledger.Ledger) {
		spec, ok := l.JobSpec(id)
		if !ok || !v.seesAllJobs() && !(v.seesJobs() && l.OwnsJob(v.ID, id)) {
			return
		}
		found = true
		p.Job, _ = l.JobSummary(id)
		p.Spec = *spec
		p.Inputs = len(spec.Inputs)
		// Inputs only counted (a job may have 100k of them); nothing left
		// shared with the ledger once View returns.
		p.Spec.Inputs, p.Spec.Env, p.Spec.Args = nil, nil, slices.Clone(spec.Args)
		n := p.Job.Tasks
		p.Pages = max(1, (n+uiTasksPerPage-1)/uiTasksPerPage)
		p.Page = min(p.Page, p.Pages)
		p.First = (p.Page - 1) * uiTasksPerPage
		p.Last = min(n, p.First+uiTasksPerPage) - 1
		for _, t := range l.TaskResults(id, p.First, p.Last+1) { // this page's tasks only
			p.Tasks = append(p.Tasks, uiTask{TaskStatus: t.TaskStatus, StdoutBlob: t.StdoutBlob})
			p.Replicated = p.Replicated || len(t.Replicas) > 0
		}
		p.ModuleLink = l.HasBlob(spec.ModuleHash)
		p.Image = spec.Image
		p.Failures = failuresOf(l, id)
	})
	if !found {
		d.uiNotFound(w, r, "Job not found", "No job "+id+" in this server's ledger: it never existed, was purged, or this server has not caught up yet.")
		return
	}
	p.K, p.M = p.Spec.DataShards, p.Spec.ParityShards
	if p.K == 0 {
		p.K, p.M = d.src.StorageDefaults()
		p.KMDefault = true
	}
	if p.Page > 1 {
		p.PrevPage = p.Page - 1
	}
	if p.Page < p.Pages {
		p.NextPage = p.Page + 1
	}
	d.uiRender(w, http.StatusOK, "job", p)
}

// --- blob ---

type uiBlobPage struct {
	uiCommon
	Hash     string
	Size     int64
	Inline   bool
	Pinned   bool
	Created  time.Time
	Refs     int
	K, M     int
	Segments []uiSegment // this page's
	NSegs    int         // in the blob
	Healthy  int         // shards healthy on this page
	Shards   int         // shards on this page
	Readable bool        // every segment on this page has at least K healthy shards
	Page     int
	Pages    int
	PrevPage int // 0: none
	NextPage int
}

type uiSegment struct {
	Index    int
	Healthy  int
	Readable bool
	Shards   []uiShard
}

type uiShard struct {
	Index   int
	Hash    string
	Peer    string
	Parity  bool
	Healthy bool
	Error   string
}

// uiBlob shows a blob's shard health as `peergrid blob stat` does: it calls
// storage.Health on the live storage peers, which has each holder prove by
// content that it holds its shard: one random chunk and its Merkle path,
// checked against the manifest's proof root (4 KiB per shard, not the
// shard), or the whole shard for a manifest from before proofs. The checks
// run in parallel under a timeout.
func (d *Dashboard) uiBlob(w http.ResponseWriter, r *http.Request) {
	hash := r.PathValue("hash")
	if storage.CheckHash(hash) != nil {
		d.uiNotFound(w, r, "Blob not found", "“"+hash+"” is not a blob hash (64 hex digits of SHA-256).")
		return
	}
	page, ok := d.uiPageNumber(w, r)
	if !ok {
		return
	}
	p := uiBlobPage{uiCommon: d.uiCommon(r, "Blob "+hash[:12]), Hash: hash, Page: 1, Pages: 1}
	var m *storage.Manifest
	var peers []api.StoragePeer
	var found bool
	v := viewerOf(r)
	d.src.Store().FSM().View(func(l *ledger.Ledger) {
		data, inline := l.InlineBlob(hash)
		m = l.Manifest(hash) // replaced, never changed in place: safe to read after View
		if !inline && m == nil || !seesBlob(l, v, hash) {
			m = nil
			return
		}
		found = true
		p.Inline, p.Size = inline, int64(len(data))
		meta := l.BlobMeta(hash)
		p.Pinned, p.Refs = meta.Pinned, l.BlobRefs(hash)
		if meta.Created != 0 {
			p.Created = time.Unix(0, meta.Created)
		}
		if m != nil {
			peers = l.StoragePeers(true)
		}
	})
	if !found {
		d.uiNotFound(w, r, "Blob not found", "No blob "+hash+" in this server's ledger (inline or erasure-coded).")
		return
	}
	if m != nil {
		p.Size, p.K, p.M, p.NSegs = m.Size, m.K, m.M, len(m.Segments)
		// One page of segments, so a many-GiB blob costs a bounded number
		// of checks per (auto-refreshed) view.
		p.Pages = max(1, (p.NSegs+uiSegsPerPage-1)/uiSegsPerPage)
		p.Page = min(page, p.Pages)
		first := (p.Page - 1) * uiSegsPerPage
		part := *m
		part.Segments = m.Segments[first:min(len(m.Segments), first+uiSegsPerPage)]
		if p.Page > 1 {
			p.PrevPage = p.Page - 1
		}
		if p.Page < p.Pages {
			p.NextPage = p.Page + 1
		}
		clients := make(map[string]storage.ShardPeer, len(peers))
		for _, sp := range peers {
			clients[sp.ID] = d.src.ShardPeer(sp.Address)
		}
		ctx, cancel := context.WithTimeout(r.Context(), uiHealthWait)
		health := storage.Health(ctx, &part, clients)
		cancel()
		p.Segments = make([]uiSegment, len(part.Segments))
		for i := range p.Segments {
			p.Segments[i].Index = first + i
		}
		for _, h := range health {
			sh := uiShard{Index: h.Index, Hash: h.Hash, Peer: h.Peer, Parity: h.Index >= m.K, Healthy: h.Healthy}
			if h.Err != nil {
				sh.Error = h.Err.Error()
			} else if h.Peer == "" {
				sh.Error = "not placed on any peer"
			}
			seg := &p.Segments[h.Segment]
			seg.Shards = append(seg.Shards, sh)
			p.Shards++
			if h.Healthy {
				seg.Healthy++
				p.Healthy++
			}
		}
		p.Readable = true
		for i := range p.Segments {
			p.Segments[i].Readable = p.Segments[i].Healthy >= m.K
			p.Readable = p.Readable && p.Segments[i].Readable
		}
	}
	d.uiRender(w, http.StatusOK, "blob", p)
}

// CPUTime writes a worker's credit (CPU seconds given) for people: "-" for
// none, "0.25s" under a minute, else "1h2m3s".
func CPUTime(seconds float64) string {
	switch {
	case seconds <= 0:
		return "-"
	case seconds < 60:
		return strconv.FormatFloat(seconds, 'f', 2, 64) + "s"
	}
	return time.Duration(seconds * float64(time.Second)).Round(time.Second).String()
}
