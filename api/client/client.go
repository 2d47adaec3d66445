package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// ErrUnauthorized is returned for a 401: the token is missing or wrong.
var ErrUnauthorized = errors.New("unauthorized")

// ErrNotFound is returned for a 404.
var ErrNotFound = errors.New("not found")

// ErrUnavailable is returned for a 503: no leader, or the server is not the leader.
var ErrUnavailable = errors.New("unavailable")

// StatusError is a non-2xx answer, with the server's message.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Code) }

// Unwrap maps well-known codes to sentinels.
func (e *StatusError) Unwrap() error {
	switch e.Code {
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	}
	return nil
}

// Client speaks the /v1/ API. Given several server addresses it talks to one
// and fails over to the next when that one cannot be reached or answers that
// it has no leader (503 marked safe to retry): any server forwards to the
// leader, so a client never needs to know which one leads.
type Client struct {
	Addr  string // the server in use, a base URL such as http://127.0.0.1:7070
	Token string
	HTTP  *http.Client
	// Retries bounds failovers per request (default: 3 rounds of all addresses).
	Retries int

	addrs []string
	cur   atomic.Int64
	// storage caches the cluster's storage config (see ClusterStorage).
	storage storageConfigCache
}

// New returns a client for one or more servers ("host:port" or URLs,
// comma-separated or as separate arguments).
func New(addr string, token string, more ...string) *Client {
	var addrs []string
	for _, a := range append(strings.Split(addr, ","), more...) {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		addrs = append(addrs, strings.TrimRight(a, "/"))
	}
	if len(addrs) == 0 {
		addrs = []string{"http://127.0.0.1:7070"}
	}
	c := &Client{Addr: addrs[0], Token: token, HTTP: &http.Client{}, addrs: addrs}
	return c
}

// Addrs lists the servers this client may use.
func (c *Client) Addrs() []string { return c.addrs }

func (c *Client) base() string {
	if len(c.addrs) == 0 {
		return c.Addr
	}
	return c.addrs[int(c.cur.Load())%len(c.addrs)]
}

func (c *Client) failover(from string) {
	if len(c.addrs) > 1 && c.base() == from {
		c.cur.Add(1)
	}
}

// do sends a request, failing over between servers while it is safe: the
// request never reached a server (dial failed) or a server said nothing was
// applied. body is re-read on each try, so it must be a *bytes.Reader or nil.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	tries := c.Retries
	if tries <= 0 {
		tries = 3 * max(len(c.addrs), 1)
	}
	var err error
	for try := 0; try < tries; try++ {
		if rs, ok := body.(io.Seeker); ok {
			rs.Seek(0, io.SeekStart)
		}
		base := c.base()
		var retry bool
		retry, err = c.doOnce(ctx, base, method, path, body, contentType, out)
		if !retry || ctx.Err() != nil {
			return err
		}
		c.failover(base)
		if (try+1)%max(len(c.addrs), 1) == 0 { // a full round failed: back off
			select {
			case <-ctx.Done():
				return err
			case <-time.After(time.Duration(try+1) * 100 * time.Millisecond):
			}
		}
	}
	return err
}

func (c *Client) doOnce(ctx context.Context, base, method, path string, body io.Reader, contentType string, out any) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return false, err
	}
	if c.Token != "" {
		req.Header.Set(api.TokenHeader, c.Token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	// A read changes nothing, so it is always safe to send again elsewhere.
	idempotent := method == http.MethodGet || method == http.MethodHead
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var op *net.OpError
		dialFailed := errors.As(err, &op) && op.Op == "dial"
		return (dialFailed || idempotent) && ctx.Err() == nil, fmt.Errorf("%s %s: %w", method, base+path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		retry := resp.StatusCode == http.StatusServiceUnavailable && (idempotent || resp.Header.Get(api.RetryHeader) == "safe")
		return retry, readStatusError(resp)
	}
	switch v := out.(type) {
	case nil:
		_, err = io.Copy(io.Discard, resp.Body)
	case *[]byte:
		*v, err = io.ReadAll(resp.Body)
	default:
		err = json.NewDecoder(resp.Body).Decode(out)
	}
	if err != nil {
		return false, fmt.Errorf("%s %s: reading response: %w", method, path, err)
	}
	return false, nil
}

func readStatusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e api.Error
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
	}
	return &StatusError{Code: resp.StatusCode, Message: e.Error}
}

func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, path, body, "application/json", out)
}

// PutBlob uploads bytes under their hash.
func (c *Client) PutBlob(ctx context.Context, hash string, data []byte) error {
	return c.do(ctx, http.MethodPut, "/v1/blobs/"+hash, bytes.NewReader(data), "application/octet-stream", nil)
}

// HasBlob reports whether the grid holds the blob.
func (c *Client) HasBlob(ctx context.Context, hash string) (bool, error) {
	err := c.do(ctx, http.MethodHead, "/v1/blobs/"+hash, nil, "", nil)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// GetBlob downloads a blob.
func (c *Client) GetBlob(ctx context.Context, hash string) ([]byte, error) {
	var b []byte
	return b, c.do(ctx, http.MethodGet, "/v1/blobs/"+hash, nil, "", &b)
}

// Submit submits a job whose blobs are already uploaded.
func (c *Client) Submit(ctx context.Context, spec *tasks.JobSpec) (string, error) {
	var resp api.SubmitResponse
	err := c.doJSON(ctx, http.MethodPost, "/v1/jobs", api.SubmitRequest{Spec: *spec}, &resp)
	return resp.ID, err
}

// SubmitJobFile reads a parsed job file's module and inputs, uploads them as
// blobs (skipping ones the grid has), and submits the job. The module is
// checked for the WebAssembly header first, and stored like an input:
// erasure-coded across the storage peers when it is over the inline
// threshold, else inline in the ledger.
func (c *Client) SubmitJobFile(ctx context.Context, f *tasks.JobFile) (string, error) {
	if err := CheckModuleFile(f.ModulePath); err != nil {
		return "", fmt.Errorf("%s: %w", f.Path, err)
	}
	opts := BlobOptions{K: f.DataShards, M: f.ParityShards}
	mod, err := c.storeFile(ctx, f.ModulePath, opts)
	if err != nil {
		return "", fmt.Errorf("%s: upload module %s: %w", f.Path, f.ModulePath, err)
	}
	var inputs []tasks.Input
	for _, p := range f.InputPaths {
		in, err := c.storeFile(ctx, p, opts)
		if err != nil {
			return "", fmt.Errorf("%s: upload input %s: %w", f.Path, p, err)
		}
		inputs = append(inputs, in)
	}
	return c.Submit(ctx, f.Spec(mod.Hash, inputs))
}

// storeFile stores a file as a blob: erasure-coded across the storage peers
// when it is over the inline threshold (opts', else the cluster's), unless
// the grid already has it. A grid with fewer than k+m live storage peers (a
// dev grid) keeps it inline if it fits the ledger.
func (c *Client) storeFile(ctx context.Context, path string, opts BlobOptions) (tasks.Input, error) {
	f, err := os.Open(path)
	if err != nil {
		return tasks.Input{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return tasks.Input{}, err
	}
	in := tasks.Input{Name: filepath.Base(path), Size: st.Size()}
	if opts.InlineThreshold <= 0 {
		cfg, err := c.ClusterStorage(ctx)
		if err != nil {
			return in, fmt.Errorf("storage config: %w", err)
		}
		opts.InlineThreshold = cfg.InlineThreshold
	}
	if st.Size() > opts.InlineThreshold {
		// Hashing a large file costs far less than coding and pushing it
		// again (a module is usually the same on every submit).
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return in, err
		}
		in.Hash = hex.EncodeToString(h.Sum(nil))
		if ok, err := c.HasBlob(ctx, in.Hash); err != nil || ok {
			return in, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return in, err
		}
	}
	in.Hash, _, err = c.PutBlobFrom(ctx, f, st.Size(), opts)
	if errors.Is(err, storage.ErrNotEnoughPeers) && st.Size() <= storage.MaxInline {
		data, rerr := os.ReadFile(path)
		if rerr != nil {
			return in, rerr
		}
		in.Hash, err = c.upload(ctx, data)
	}
	return in, err
}

func (c *Client) upload(ctx context.Context, data []byte) (string, error) {
	h := storage.Hash(data)
	if ok, err := c.HasBlob(ctx, h); err != nil || ok {
		return h, err
	}
	return h, c.PutBlob(ctx, h, data)
}

// Jobs lists all jobs.
func (c *Client) Jobs(ctx context.Context) ([]api.JobSummary, error) {
	var out []api.JobSummary
	return out, c.doJSON(ctx, http.MethodGet, "/v1/jobs", nil, &out)
}

// Job returns a job with its tasks.
func (c *Client) Job(ctx context.Context, id string) (*api.JobStatus, error) {
	var out api.JobStatus
	if err := c.doJSON(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Purge removes a finished job and its results from the ledger.
func (c *Client) Purge(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/purge", nil, nil)
}

// Cancel cancels a job.
func (c *Client) Cancel(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, nil)
}

// Results returns every task's result, fetching page by page; a stdout kept
// as an erasure-coded blob is read from the storage peers. It holds every
// result in memory: for a big job, EachResultPage and ReadBlobVia stream
// (as `peergrid job results` does).
func (c *Client) Results(ctx context.Context, id string) ([]api.TaskResult, error) {
	var all []api.TaskResult
	var peers map[string]storage.ShardPeer
	err := c.EachResultPage(ctx, id, func(page []api.TaskResult) error {
		for i := range page {
			if page[i].StdoutBlob == "" {
				continue
			}
			if peers == nil {
				var err error
				if peers, err = c.ShardPeers(ctx); err != nil {
					return err
				}
			}
			var buf bytes.Buffer
			if _, err := c.ReadBlobVia(ctx, page[i].StdoutBlob, &buf, peers); err != nil {
				return fmt.Errorf("job %s task %d: stdout: %w", id, page[i].Index, err)
			}
			page[i].Stdout = buf.Bytes()
		}
		all = append(all, page...)
		return nil
	})
	return all, err
}

// EachResultPage calls fn with each page of a job's results, in task order,
// so a caller can write them out without holding the whole job in memory. A
// stdout kept as a blob is not read (StdoutBlob names it).
func (c *Client) EachResultPage(ctx context.Context, id string, fn func([]api.TaskResult) error) error {
	for seen := 0; ; {
		var page api.ResultsPage
		path := fmt.Sprintf("/v1/jobs/%s/results?offset=%d", url.PathEscape(id), seen)
		if err := c.doJSON(ctx, http.MethodGet, path, nil, &page); err != nil {
			return err
		}
		if len(page.Results) > 0 {
			if err := fn(page.Results); err != nil {
				return err
			}
		}
		seen += len(page.Results)
		if len(page.Results) == 0 || seen >= page.Total {
			return nil
		}
	}
}

// WaitJob polls until the job has finished (complete, failed or cancelled),
// calling progress (if non-nil) with each status it sees.
func (c *Client) WaitJob(ctx context.Context, id string, every time.Duration, progress func(*api.JobSummary)) (*api.JobSummary, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		jobs, err := c.JobSummary(ctx, id)
		if err != nil {
			return nil, err
		}
		if progress != nil {
			progress(jobs)
		}
		if jobs.State.Finished() {
			return jobs, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// JobSummary is a job's counts without its tasks: cheap to poll.
func (c *Client) JobSummary(ctx context.Context, id string) (*api.JobSummary, error) {
	var out api.JobSummary
	err := c.doJSON(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"?summary=true", nil, &out)
	return &out, err
}

// Lease asks for tasks for a worker.
func (c *Client) Lease(ctx context.Context, req *api.LeaseRequest) ([]api.Assignment, error) {
	var out api.LeaseResponse
	return out.Tasks, c.doJSON(ctx, http.MethodPost, "/v1/lease", req, &out)
}

// Report sends finished tasks.
func (c *Client) Report(ctx context.Context, req *api.ReportRequest) ([]bool, error) {
	var out api.ReportResponse
	return out.Accepted, c.doJSON(ctx, http.MethodPost, "/v1/report", req, &out)
}

// Release hands leased tasks back unrun.
func (c *Client) Release(ctx context.Context, req *api.ReleaseRequest) error {
	return c.doJSON(ctx, http.MethodPost, "/v1/release", req, nil)
}

// Heartbeat tells the leader the worker is alive, and learns which of its
// running attempts are stale.
func (c *Client) Heartbeat(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	var out api.HeartbeatResponse
	return &out, c.doJSON(ctx, http.MethodPost, "/v1/heartbeat", req, &out)
}

// Peers lists servers and workers.
func (c *Client) Peers(ctx context.Context) ([]api.Peer, error) {
	var out []api.Peer
	return out, c.doJSON(ctx, http.MethodGet, "/v1/peers", nil, &out)
}

// Status is the server's view of the Raft group.
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var out api.Status
	return &out, c.doJSON(ctx, http.MethodGet, "/v1/status", nil, &out)
}

// ServerInfo asks a server about itself (never forwarded).
func (c *Client) ServerInfo(ctx context.Context) (*api.ServerInfo, error) {
	var out api.ServerInfo
	return &out, c.doJSON(ctx, http.MethodGet, "/v1/cluster/self", nil, &out)
}

// Join asks the group to add a server.
func (c *Client) Join(ctx context.Context, req *api.JoinRequest) error {
	return c.doJSON(ctx, http.MethodPost, "/v1/cluster/join", req, nil)
}

// RaftPeers lists the Raft group's servers with their state.
func (c *Client) RaftPeers(ctx context.Context) ([]api.RaftPeer, error) {
	var out []api.RaftPeer
	return out, c.doJSON(ctx, http.MethodGet, "/v1/operator/raft/peers", nil, &out)
}

// RemoveRaftPeer removes a server from the Raft group.
func (c *Client) RemoveRaftPeer(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/operator/raft/peers/"+url.PathEscape(id), nil, nil)
}
