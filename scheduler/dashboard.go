package scheduler

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// The web dashboard: read-only HTML pages under /ui/, rendered on the server
// with html/template (which escapes every value), no JavaScript, nothing
// fetched from elsewhere. Every server serves it and renders from its own
// applied copy of the ledger (as GET /metrics does; a follower may lag the
// leader by a few entries), so a page never waits on the leader.
//
// Authentication: a browser cannot send the token header on navigation, so
// POST /ui/login takes the cluster token from a form and sets it in an
// HttpOnly, SameSite=Strict cookie limited to Path=/ui. The cookie is honoured
// only by the /ui/ pages: routes sends everything else through authenticate,
// which reads headers only, so the JSON API and /metrics answer 401 to a
// request that carries the cookie but not the header. The pages accept the
// header too (curl, tests). The token never appears in a URL or a page.

//go:embed dashboard/*.tmpl
var dashboardFS embed.FS

const (
	uiCookie       = "peergrid_ui" // base64url of the cluster token
	uiTasksPerPage = 200           // task rows on one job page
	uiSegsPerPage  = 64            // segments (each k+m shards) checked and shown on one blob page
	uiMaxJobs      = 500           // newest jobs on the overview
	uiRefresh      = 5             // seconds between automatic reloads
	uiHealthWait   = 3 * time.Second
	uiRaftWait     = 2 * time.Second // per server, asked in parallel
)

// isDashboardPath reports whether a request belongs to the dashboard rather
// than the JSON API.
func isDashboardPath(p string) bool { return p == "/ui" || strings.HasPrefix(p, "/ui/") }

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
	Title    string
	Authed   bool // show the status line, refresh and the logout button
	Refresh  int
	ServerID string
	State    string // this server's Raft state
	IsLeader bool
	LeaderID string
	Applied  uint64
	Rendered time.Time
}

func (s *Server) uiCommon(title string) uiCommon {
	_, leader := s.store.Leader()
	r := s.store.Raft()
	return uiCommon{Title: title, Authed: true, Refresh: uiRefresh, ServerID: s.cfg.Store.ID, State: raftStateName(r.State()),
		IsLeader: r.State() == raft.Leader, LeaderID: leader, Applied: r.AppliedIndex(), Rendered: time.Now().UTC()}
}

// dashboard is the /ui/ handler.
func (s *Server) dashboard() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/login", s.uiLoginForm)
	mux.HandleFunc("POST /ui/login", s.uiLogin)
	mux.HandleFunc("POST /ui/logout", s.uiLogout)
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusSeeOther) })
	mux.Handle("GET /ui/{$}", s.uiAuthed(s.uiOverview))
	mux.Handle("GET /ui/jobs/{id}", s.uiAuthed(s.uiJob))
	mux.Handle("GET /ui/blobs/{hash}", s.uiAuthed(s.uiBlob))
	mux.Handle("GET /ui/go", s.uiAuthed(s.uiGo))
	mux.Handle("/ui/", s.uiAuthed(func(w http.ResponseWriter, r *http.Request) {
		s.uiNotFound(w, "Page not found", "There is no dashboard page at "+r.URL.Path+".")
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		mux.ServeHTTP(w, r)
	})
}

// uiAuthorized: the token in the usual header, or in the dashboard's cookie.
func (s *Server) uiAuthorized(r *http.Request) bool {
	if s.cfg.Token == "" {
		return true // authentication disabled (tests only)
	}
	if tokenMatches(requestToken(r), s.cfg.Token) {
		return true
	}
	c, err := r.Cookie(uiCookie)
	if err != nil {
		return false
	}
	tok, err := base64.RawURLEncoding.DecodeString(c.Value)
	return err == nil && tokenMatches(string(tok), s.cfg.Token)
}

func tokenMatches(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// uiAuthed sends a browser without the token to the login form (not a 401
// in JSON, which a person could do nothing with).
func (s *Server) uiAuthed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.uiAuthorized(r) {
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		h(w, r)
	})
}

type uiLoginPage struct {
	uiCommon
	Message string
}

func (s *Server) uiLoginForm(w http.ResponseWriter, r *http.Request) {
	if s.uiAuthorized(r) {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	s.uiRender(w, http.StatusOK, "login", uiLoginPage{uiCommon: uiCommon{Title: "Sign in"}})
}

// uiLogin checks the token from the form body (never the URL query) and, if
// it is the cluster's, sets the cookie. A wrong token sets nothing.
func (s *Server) uiLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.uiRender(w, http.StatusBadRequest, "login", uiLoginPage{uiCommon: uiCommon{Title: "Sign in"}, Message: "Could not read the form."})
		return
	}
	tok := r.PostForm.Get("token")
	if s.cfg.Token != "" {
		// A pasted token often brings a newline along.
		if !tokenMatches(tok, s.cfg.Token) && tokenMatches(strings.TrimSpace(tok), s.cfg.Token) {
			tok = strings.TrimSpace(tok)
		}
		if !tokenMatches(tok, s.cfg.Token) {
			s.uiRender(w, http.StatusUnauthorized, "login", uiLoginPage{uiCommon: uiCommon{Title: "Sign in"},
				Message: "That is not this grid's cluster token. Paste the token the servers were started with (PEERGRID_TOKEN)."})
			return
		}
		http.SetCookie(w, &http.Cookie{Name: uiCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(tok)), Path: "/ui",
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: overTLS(r)})
	}
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func (s *Server) uiLogout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: uiCookie, Value: "", Path: "/ui", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: overTLS(r)})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// overTLS: the request came over TLS, here or at a proxy in front that says
// so. Trusting the header can only make the cookie stricter (Secure), never
// looser.
func overTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// uiGo is the overview's jump form: a job id or a blob hash.
func (s *Server) uiGo(w http.ResponseWriter, r *http.Request) {
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
func (s *Server) uiRender(w http.ResponseWriter, code int, page string, data any) {
	var buf bytes.Buffer
	if err := uiPages[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		s.log.Error("dashboard: rendering", "page", page, "err", err)
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

func (s *Server) uiNotFound(w http.ResponseWriter, title, msg string) {
	c := s.uiCommon(title)
	c.Refresh = 0
	s.uiRender(w, http.StatusNotFound, "notfound", uiNotFoundPage{uiCommon: c, Message: msg})
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

func (s *Server) uiOverview(w http.ResponseWriter, r *http.Request) {
	rs := collectRaft(s.store.Raft())
	p := uiOverviewPage{uiCommon: s.uiCommon("Overview"), Servers: s.uiRaftPeers(r.Context()),
		Raft: uiRaft{State: rs.state, Term: rs.term, LastIndex: rs.lastIndex, Commit: rs.commit, Applied: rs.applied, SnapshotIndex: rs.snapshotIndex}}
	p.Peers = s.peerList()
	var ls ledgerStats
	s.store.FSM().View(func(l *Ledger) {
		ls.collect(l) // metrics.go: O(jobs + peers + blobs), no task visited
		p.Storage.Live, p.Storage.Total = len(l.storagePeers(true)), len(l.storagePeers(false))
		p.JobsTotal = len(l.order)
		for i := len(l.order) - 1; i >= 0 && len(p.Jobs) < uiMaxJobs; i-- { // newest first; summaries only
			p.Jobs = append(p.Jobs, l.order[i].summary())
		}
	})
	p.Tasks = ls.tasks
	p.Storage.Inline, p.Storage.Coded, p.Storage.Unplaced, p.Storage.Pinned = ls.inline, ls.coded, ls.unplacedBlobs, ls.pinnedBlobs
	p.Storage.InlineBytes, p.Storage.CodedBytes, p.Storage.CodedShard = ls.inlineBytes, ls.codedBytes, int64(ls.codedShards)
	s.uiRender(w, http.StatusOK, "overview", p)
}

// uiRaftPeers is `peergrid operator raft list-peers` (describeRaftPeer), with
// the other servers asked in parallel so one unreachable server costs one
// timeout, not one each.
func (s *Server) uiRaftPeers(ctx context.Context) []api.RaftPeer {
	f := s.store.Raft().GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	servers := f.Configuration().Servers
	out := make([]api.RaftPeer, len(servers))
	ctx, cancel := context.WithTimeout(ctx, uiRaftWait)
	defer cancel()
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Go(func() { out[i] = s.describeRaftPeer(ctx, srv) })
	}
	wg.Wait()
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
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
}

type uiTask struct {
	api.TaskStatus
	StdoutBlob string
}

// uiPageNumber is the ?page= of a paginated page (1 when absent); a value
// that is not a page number gets a "Bad page" answer and ok false.
func (s *Server) uiPageNumber(w http.ResponseWriter, r *http.Request) (page int, ok bool) {
	v := r.URL.Query().Get("page")
	if v == "" {
		return 1, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		s.uiNotFound(w, "Bad page", fmt.Sprintf("page=%q is not a page number (1, 2, ...).", v))
		return 0, false
	}
	return n, true
}

func (s *Server) uiJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	page, ok := s.uiPageNumber(w, r)
	if !ok {
		return
	}
	p := uiJobPage{uiCommon: s.uiCommon("Job " + id), Page: page}
	var found bool
	s.store.FSM().View(func(l *Ledger) {
		j := l.jobs[id]
		if j == nil {
			return
		}
		found = true
		p.Job, p.Spec = j.summary(), j.Spec
		p.Inputs = len(j.Spec.Inputs)
		// Inputs only counted (a job may have 100k of them); nothing left
		// shared with the ledger once View returns.
		p.Spec.Inputs, p.Spec.Env, p.Spec.Args = nil, nil, slices.Clone(j.Spec.Args)
		n := j.Tasks.len()
		p.Pages = max(1, (n+uiTasksPerPage-1)/uiTasksPerPage)
		p.Page = min(p.Page, p.Pages)
		p.First = (p.Page - 1) * uiTasksPerPage
		p.Last = min(n, p.First+uiTasksPerPage) - 1
		for i := p.First; i <= p.Last; i++ { // this page's tasks only
			t := j.Tasks.at(i)
			p.Tasks = append(p.Tasks, uiTask{TaskStatus: t.status(i), StdoutBlob: t.StdoutRef})
		}
		p.ModuleLink = l.hasBlob(j.Spec.ModuleHash)
	})
	if !found {
		s.uiNotFound(w, "Job not found", "No job "+id+" in this server's ledger: it never existed, was purged, or this server has not caught up yet.")
		return
	}
	p.K, p.M = p.Spec.DataShards, p.Spec.ParityShards
	if p.K == 0 {
		p.K, p.M, p.KMDefault = s.cfg.StorageK, s.cfg.StorageM, true
	}
	if p.Page > 1 {
		p.PrevPage = p.Page - 1
	}
	if p.Page < p.Pages {
		p.NextPage = p.Page + 1
	}
	s.uiRender(w, http.StatusOK, "job", p)
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
// storage.Health on the live storage peers. Health asks a ShardClient peer
// with HTTP HEAD (ShardClient.Has), so this server learns whether each
// holder has its shard without fetching any shard bytes (and without
// verifying them: corruption shows up on reads, which report faults, and in
// the peers' own sweeps). The checks run in parallel under a timeout.
func (s *Server) uiBlob(w http.ResponseWriter, r *http.Request) {
	hash := r.PathValue("hash")
	if storage.CheckHash(hash) != nil {
		s.uiNotFound(w, "Blob not found", "“"+hash+"” is not a blob hash (64 hex digits of SHA-256).")
		return
	}
	page, ok := s.uiPageNumber(w, r)
	if !ok {
		return
	}
	p := uiBlobPage{uiCommon: s.uiCommon("Blob " + hash[:12]), Hash: hash, Page: 1, Pages: 1}
	var m *storage.Manifest
	var peers []api.StoragePeer
	var found bool
	s.store.FSM().View(func(l *Ledger) {
		data, inline := l.blobs[hash]
		m = l.manifests[hash] // replaced, never changed in place: safe to read after View
		if !inline && m == nil {
			return
		}
		found = true
		p.Inline, p.Size = inline, int64(len(data))
		meta := l.meta[hash]
		p.Pinned, p.Refs = meta.Pinned, l.refs[hash]
		if meta.Created != 0 {
			p.Created = time.Unix(0, meta.Created)
		}
		if m != nil {
			peers = l.storagePeers(true)
		}
	})
	if !found {
		s.uiNotFound(w, "Blob not found", "No blob "+hash+" in this server's ledger (inline or erasure-coded).")
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
			clients[sp.ID] = storage.NewShardClient(sp.Address, s.cfg.Token, nil)
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
	s.uiRender(w, http.StatusOK, "blob", p)
}
