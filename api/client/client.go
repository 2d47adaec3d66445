package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
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
	"sync"
	"sync/atomic"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// ErrUnauthorized is returned for a 401: the token is missing or wrong.
var ErrUnauthorized = errors.New("unauthorized")

// ErrForbidden is returned for a 403: the credential is good, its role may
// not do this (or a worker spoke for another).
var ErrForbidden = errors.New("forbidden")

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
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	}
	return nil
}

// Client speaks the /v1/ API. Given several server addresses it talks to one
// and fails over to the next when that one cannot be reached, does not
// answer in time, or answers that nothing was applied: any server forwards
// to the leader, so a client never needs to know which one leads.
//
// Every call is bounded, so a server that silently drops packets (a
// partition, a laptop closing its lid) or is frozen costs a bounded wait,
// never a hang: connections are dialled within DialTimeout, a dead
// connection is noticed by TCP keepalives within a few seconds, and each
// attempt must see the response's headers within AttemptTimeout (plus a
// long poll's own wait). A read, or a write the API makes safe to repeat
// (see retrySafe), is sent to the next server when an attempt fails; a read
// or heartbeat is hedged: if its server has not answered within HedgeAfter,
// the next server is asked too and the first answer wins.
type Client struct {
	Addr  string // the first server given, a base URL such as http://127.0.0.1:7070
	Token string
	HTTP  *http.Client
	// Retries bounds the attempts of one call (default: 3 rounds of all addresses).
	Retries int
	// AttemptTimeout bounds the wait for one attempt's response headers
	// (default 5 s); a long poll adds its own wait, and an upload 2 s per
	// MiB it carries.
	AttemptTimeout time.Duration
	// HedgeAfter is how long a hedged call waits on one server before it
	// asks the next as well (default 1.5 s).
	HedgeAfter time.Duration
	// RetryFor is how long after a call began it may still start a new
	// attempt (default 5 s): with AttemptTimeout, a call that gets no
	// answer ends within about 10 s whatever the retries.
	RetryFor time.Duration
	// WorkerStream sends heartbeats, leases and reports over one worker
	// stream to the leader when a server offers it, and as requests when
	// none does (stream.go). Set it before the first call.
	WorkerStream bool

	addrs []string
	cur   atomic.Int64
	// suspects[i] is closed when server i is found failing or slower than
	// another, which ends the attempts still waiting on it (see suspect).
	suspectMu sync.Mutex
	suspects  []chan struct{}
	// storage caches the cluster's storage config (see ClusterStorage).
	storage storageConfigCache
	// shardHTTP talks to storage peers (pinned like the servers, see Pin).
	shardHTTP *http.Client
	// identified is set once the client presents a certificate of the
	// grid (Identify), which lets it read shards without capabilities.
	identified atomic.Bool
	// putGrants is the last put capabilities granted (capabilities.go).
	putGrants putGrants
	// stream is the worker stream, when WorkerStream is set (stream.go).
	stream streamState
}

// Connection bounds between a client (or a worker, or a server forwarding)
// and a server: what it takes to notice a peer that drops packets.
const (
	DialTimeout        = 2 * time.Second
	keepAliveIdle      = 2 * time.Second
	keepAliveInterval  = time.Second
	keepAliveProbes    = 3
	defaultAttempt     = 5 * time.Second
	defaultHedgeAfter  = 1500 * time.Millisecond
	defaultRetryFor    = 5 * time.Second
	maxIdleConnsPerSrv = 16
	// bodyAllowancePerMiB is what an attempt's timeout grows by per MiB
	// of request body (see attemptTimeout).
	bodyAllowancePerMiB = 2 * time.Second
)

// NewTransport is an HTTP transport with the bounds above: a dial gives up
// after DialTimeout, and an established connection whose peer stops
// answering (packets dropped, the host gone) fails within about 5 s by TCP
// keepalive, even in the middle of a long poll.
func NewTransport() *http.Transport {
	d := &net.Dialer{Timeout: DialTimeout, KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveProbes}}
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment, DialContext: d.DialContext, TLSHandshakeTimeout: DialTimeout + time.Second,
		MaxIdleConns: 256, MaxIdleConnsPerHost: maxIdleConnsPerSrv, IdleConnTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second, ForceAttemptHTTP2: true,
	}
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
			a = "https://" + a
		}
		addrs = append(addrs, strings.TrimRight(a, "/"))
	}
	if len(addrs) == 0 {
		addrs = []string{"http://127.0.0.1:7070"}
	}
	c := &Client{Addr: addrs[0], Token: token, HTTP: &http.Client{Transport: NewTransport()}, shardHTTP: &http.Client{Transport: NewTransport()}, addrs: addrs,
		suspects: make([]chan struct{}, len(addrs))}
	for i := range c.suspects {
		c.suspects[i] = make(chan struct{})
	}
	return c
}

// Pin makes the client trust only the cluster CA p names: a server must
// present a certificate of that CA for role server, a storage peer one for
// role worker or server. Without a pin, Go's default verification against
// the system's roots applies, which a grid's own CA does not pass.
func (c *Client) Pin(p auth.Pin) {
	tr := c.HTTP.Transport.(*http.Transport)
	tr.TLSClientConfig = auth.ClientTLS(auth.StaticPin(p), []string{auth.RoleServer}, nil)
	st := NewTransport()
	st.TLSClientConfig = auth.ClientTLS(auth.StaticPin(p), []string{auth.RoleWorker, auth.RoleServer}, nil)
	c.shardHTTP = &http.Client{Transport: st}
}

// Identify makes the client present cert (a worker's, of the cluster CA)
// on every TLS connection, to servers and to storage peers: a worker's
// credential is accepted only with its certificate. Call it after Pin.
func (c *Client) Identify(cert *tls.Certificate) {
	c.identified.Store(cert != nil)
	for _, hc := range []*http.Client{c.HTTP, c.shardHTTP} {
		if tr, ok := hc.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
			tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
	}
}

// DialFunc dials a connection, as net.Dialer.DialContext does.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// WrapDial makes every connection of the client, to servers and to storage
// peers, dial through wrap(its dialer): tests use it to move a client into
// a network namespace. Call it after Pin.
func (c *Client) WrapDial(wrap func(DialFunc) DialFunc) {
	for _, hc := range []*http.Client{c.HTTP, c.shardHTTP} {
		if tr, ok := hc.Transport.(*http.Transport); ok {
			tr.DialContext = wrap(tr.DialContext)
		}
	}
}

// Unverified makes the client accept any TLS certificate: for reading a
// server's public self-description before a CA is pinned, never for
// sending a credential.
func (c *Client) Unverified() {
	c.HTTP.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
}

// suspected is closed when server i is next suspected.
func (c *Client) suspected(i int) <-chan struct{} {
	c.suspectMu.Lock()
	defer c.suspectMu.Unlock()
	return c.suspects[i]
}

// suspect ends the attempts waiting on server i that are safe to send
// elsewhere, and the long polls: it failed a call, or another server
// answered while it stayed silent. A worker whose lease long poll sits on a
// server that froze is freed by its next heartbeat, which is hedged.
func (c *Client) suspect(i int) {
	c.suspectMu.Lock()
	defer c.suspectMu.Unlock()
	close(c.suspects[i])
	c.suspects[i] = make(chan struct{})
}

// Addrs lists the servers this client may use.
func (c *Client) Addrs() []string { return c.addrs }

// base is the server in use now.
func (c *Client) base() string { return c.addrs[int(c.cur.Load())%len(c.addrs)] }

// use makes the server at index i the one in use.
func (c *Client) use(i int) { c.cur.Store(int64(i)) }

// failover moves off server i, if it is the one in use, so the next call
// starts at the next server.
func (c *Client) failover(i int) { c.cur.CompareAndSwap(int64(i), int64((i+1)%len(c.addrs))) }

// call is one API call: a request and how it may be repeated.
type call struct {
	method, path, contentType string
	body                      []byte // sent again on each attempt
	out                       any    // nil, *[]byte, or a JSON target
	// wait is a long poll's server-side wait, added to the attempt timeout.
	wait time.Duration
}

// retrySafe reports whether a call may be sent again after an attempt whose
// outcome is unknown (sent, but no answer): reads, and writes whose effect
// is the same however often they arrive. A submit carries a request id the
// ledger deduplicates by; a report of an attempt already accepted is
// accepted again; a heartbeat, a release, a blob or manifest (named by its
// content), a cancel, a join and a fault report repeat harmlessly. A lease
// is not: a repeat would lease more tasks than the worker asked for.
func (cl *call) retrySafe() bool {
	switch {
	case cl.method == http.MethodGet || cl.method == http.MethodHead:
		return true
	case cl.method == http.MethodPut && strings.HasPrefix(cl.path, "/v1/blobs/"):
		return true
	case cl.method == http.MethodDelete && strings.HasSuffix(cl.path, "/pin"):
		return true
	case cl.method != http.MethodPost:
		return false
	}
	switch p := cl.path; {
	case p == "/v1/jobs", p == "/v1/heartbeat", p == "/v1/report", p == "/v1/release", p == "/v1/cluster/join",
		p == "/v1/storage/shards/placed", p == "/v1/storage/capabilities", strings.HasSuffix(p, "/faults"), strings.HasSuffix(p, "/cancel"):
		return true // a capability request only signs: asking again changes nothing
	}
	return false
}

// writes reports whether the call may change the grid.
func (cl *call) writes() bool { return cl.method != http.MethodGet && cl.method != http.MethodHead }

// hedged reports whether a call asks a second server while the first is
// still silent: reads, and heartbeats (which keep a worker alive and must
// not wait out a dead server). Other safe writes are retried, not hedged,
// so they do not double the leader's work.
func (cl *call) hedged() bool {
	return cl.method == http.MethodGet || cl.method == http.MethodHead || cl.path == "/v1/heartbeat"
}

// attempt is the outcome of sending a call to one server.
type attempt struct {
	server int
	body   []byte
	err    error
	retry  bool // another server may be asked
	// unknown: a write was sent and no answer says whether it applied.
	unknown bool
}

// do runs a call: one server at a time, failing over while that is safe,
// and hedging calls that may be hedged.
func (c *Client) do(ctx context.Context, cl *call) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the losers of a hedge
	tries := c.Retries
	if tries <= 0 {
		tries = 3 * len(c.addrs)
	}
	results := make(chan attempt, tries)
	began, start, inflight, sent := time.Now(), int(c.cur.Load()), 0, 0
	mayRetry := func() bool { return sent < tries && time.Since(began) < c.retryFor() }
	send := func() {
		i := (start + sent) % len(c.addrs)
		sent++
		inflight++
		go func() { results <- c.attempt(ctx, cl, i) }()
	}
	hedge := time.NewTimer(c.hedgeAfter())
	defer hedge.Stop()
	send()
	var last error
	var unknown bool // some attempt's write may have applied
	fail := func() error {
		if unknown && last != nil && !errors.Is(last, ErrOutcomeUnknown) {
			return fmt.Errorf("%w: an earlier attempt may have been applied: %w", ErrOutcomeUnknown, last)
		}
		return last
	}
	for {
		select {
		case r := <-results:
			inflight--
			unknown = unknown || r.unknown
			if r.err == nil {
				c.use(r.server)
				for i := 0; inflight > 0 && i < sent; i++ { // the servers still silent
					if s := (start + i) % len(c.addrs); s != r.server {
						c.suspect(s)
					}
				}
				return c.decode(cl, r.body)
			}
			last = r.err
			if r.retry {
				c.failover(r.server)
				c.suspect(r.server)
			}
			if !r.retry || ctx.Err() != nil || !mayRetry() {
				if inflight == 0 || !r.retry {
					return fail()
				}
				continue // a hedged attempt is still out
			}
			if inflight == 0 {
				if err := c.backoff(ctx, sent); err != nil {
					return fail()
				}
				send()
			}
		case <-hedge.C:
			if cl.hedged() && mayRetry() && sent < len(c.addrs) {
				send()
				hedge.Reset(c.hedgeAfter())
			}
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			unknown = unknown || inflight > 0 && cl.method != http.MethodGet && cl.method != http.MethodHead
			return fail()
		}
	}
}

// backoff waits a little before a new round once every server has failed.
func (c *Client) backoff(ctx context.Context, sent int) error {
	if sent%len(c.addrs) != 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(sent/len(c.addrs)) * 100 * time.Millisecond):
		return nil
	}
}

func (c *Client) retryFor() time.Duration {
	if c.RetryFor > 0 {
		return c.RetryFor
	}
	return defaultRetryFor
}

func (c *Client) hedgeAfter() time.Duration {
	if c.HedgeAfter > 0 {
		return c.HedgeAfter
	}
	return defaultHedgeAfter
}

// attemptTimeout is AttemptTimeout, plus a long poll's wait, plus
// bodyAllowancePerMiB for each MiB the request carries: a server answers
// an upload only once it has stored the bytes (coded, placed, committed),
// which takes time in their size, and a module of a few MiB on a busy
// machine outlasted the 5 s a silent server is given.
func (c *Client) attemptTimeout(cl *call) time.Duration {
	t := c.AttemptTimeout
	if t <= 0 {
		t = defaultAttempt
	}
	return t + cl.wait + time.Duration(len(cl.body))*bodyAllowancePerMiB/(1<<20)
}

// attempt sends the call to server i and reads the whole answer. Its
// response headers must arrive within the attempt timeout; the body may
// then take as long as the caller's context allows.
func (c *Client) attempt(ctx context.Context, cl *call, i int) attempt {
	base := c.addrs[i]
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	var timedOut, dropped atomic.Bool
	if cl.retrySafe() || cl.wait > 0 {
		suspected := c.suspected(i)
		go func() {
			select {
			case <-suspected:
				dropped.Store(true)
				cancel()
			case <-actx.Done():
			}
		}()
	}
	timer := time.AfterFunc(c.attemptTimeout(cl), func() { timedOut.Store(true); cancel() })
	req, err := http.NewRequestWithContext(actx, cl.method, base+cl.path, bodyReader(cl.body))
	if err != nil {
		timer.Stop()
		return attempt{server: i, err: err}
	}
	if c.Token != "" {
		req.Header.Set(api.TokenHeader, c.Token)
	}
	if cl.contentType != "" {
		req.Header.Set("Content-Type", cl.contentType)
	}
	resp, err := c.HTTP.Do(req)
	stopped := timer.Stop()
	if err != nil {
		switch {
		case timedOut.Load() && !stopped:
			err = fmt.Errorf("no answer within %s: %w", c.attemptTimeout(cl), ErrNoAnswer)
		case dropped.Load():
			err = fmt.Errorf("given up: the server failed another call or another server answered first: %w", ErrNoAnswer)
		}
		var op *net.OpError
		notSent := errors.As(err, &op) && op.Op == "dial"
		return attempt{server: i, err: fmt.Errorf("%s %s: %w", cl.method, base+cl.path, err),
			retry: (notSent || cl.retrySafe()) && ctx.Err() == nil, unknown: !notSent && cl.writes()}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		marked := resp.Header.Get(api.RetryHeader) == "safe"
		unavailable := resp.StatusCode == http.StatusServiceUnavailable
		return attempt{server: i, err: readStatusError(resp), retry: unavailable && (marked || cl.retrySafe()),
			unknown: unavailable && !marked && cl.writes()}
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return attempt{server: i, err: fmt.Errorf("%s %s: reading response: %w", cl.method, cl.path, err),
			retry: cl.retrySafe() && ctx.Err() == nil, unknown: cl.writes()}
	}
	return attempt{server: i, body: body}
}

func bodyReader(b []byte) io.Reader {
	if b == nil {
		return nil
	}
	return bytes.NewReader(b)
}

// decode stores a successful answer's body in the call's target.
func (c *Client) decode(cl *call, body []byte) error {
	switch v := cl.out.(type) {
	case nil:
		return nil
	case *[]byte:
		*v = body
		return nil
	}
	if err := json.Unmarshal(body, cl.out); err != nil {
		return fmt.Errorf("%s %s: reading response: %w", cl.method, cl.path, err)
	}
	return nil
}

// ErrNoAnswer is wrapped when a server did not answer an attempt in time.
var ErrNoAnswer = errors.New("server did not answer")

// ErrOutcomeUnknown is wrapped when a write failed but one of its attempts
// reached a server that never said whether it applied it: the write may
// have taken effect, whatever the last attempt's error says.
var ErrOutcomeUnknown = errors.New("outcome unknown")

// readStatusError is a non-2xx answer as an error: the server's message from
// the body, or from the error header when there is no body (an answer to
// HEAD), or the status text.
func readStatusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e api.Error
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
	}
	if e.Error == "" {
		e.Error = resp.Header.Get(api.ErrorHeader)
	}
	if e.Error == "" {
		e.Error = http.StatusText(resp.StatusCode)
	}
	return &StatusError{Code: resp.StatusCode, Message: e.Error}
}

// send runs a call with a raw body (nil for none).
func (c *Client) send(ctx context.Context, method, path string, body []byte, contentType string, out any) error {
	return c.do(ctx, &call{method: method, path: path, body: body, contentType: contentType, out: out})
}

// doJSON runs a call whose body, if any, is in encoded as JSON.
func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	return c.doJSONWait(ctx, method, path, in, out, 0)
}

// doJSONWait is doJSON for a long poll the server may hold for wait.
func (c *Client) doJSONWait(ctx context.Context, method, path string, in, out any, wait time.Duration) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	return c.do(ctx, &call{method: method, path: path, body: body, contentType: "application/json", out: out, wait: wait})
}

// PutBlob uploads bytes under their hash.
func (c *Client) PutBlob(ctx context.Context, hash string, data []byte) error {
	return c.send(ctx, http.MethodPut, "/v1/blobs/"+hash, data, "application/octet-stream", nil)
}

// HasBlob reports whether the grid holds the blob.
func (c *Client) HasBlob(ctx context.Context, hash string) (bool, error) {
	err := c.send(ctx, http.MethodHead, "/v1/blobs/"+hash, nil, "", nil)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// GetBlob downloads a blob.
func (c *Client) GetBlob(ctx context.Context, hash string) ([]byte, error) {
	var b []byte
	return b, c.send(ctx, http.MethodGet, "/v1/blobs/"+hash, nil, "", &b)
}

// newRequestID is a random id for one submit, so sending it again is safe.
func newRequestID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// Submit submits a job whose blobs are already uploaded. It is safe to
// repeat: the request carries an id the ledger deduplicates by, so a submit
// whose answer was lost is sent again (to another server) without creating
// a second job.
func (c *Client) Submit(ctx context.Context, spec *tasks.JobSpec) (string, error) {
	var resp api.SubmitResponse
	err := c.doJSON(ctx, http.MethodPost, "/v1/jobs", api.SubmitRequest{Spec: *spec, RequestID: newRequestID()}, &resp)
	return resp.ID, err
}

// SubmitJobFile reads a parsed job file's module and inputs, uploads them as
// blobs (skipping ones the grid has), and submits the job. The module is
// checked for the WebAssembly header first, and stored like an input:
// erasure-coded across the storage peers when it is over the inline
// threshold, else inline in the ledger.
func (c *Client) SubmitJobFile(ctx context.Context, f *tasks.JobFile) (string, error) {
	if err := CheckModuleFile(f.ModulePath); err != nil {
		return "", err // names the module file
	}
	opts := BlobOptions{K: f.DataShards, M: f.ParityShards}
	mod, err := c.storeFile(ctx, f.ModulePath, opts)
	if err != nil {
		return "", fmt.Errorf("upload module %s: %w", f.ModulePath, err)
	}
	var inputs []tasks.Input
	for _, p := range f.InputPaths {
		in, err := c.storeFile(ctx, p, opts)
		if err != nil {
			return "", fmt.Errorf("upload input %s: %w", p, err)
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

// TaskResult returns one finished task's result: its stdout inline, or
// named by StdoutBlob; ErrNotFound if the task has not finished.
func (c *Client) TaskResult(ctx context.Context, id string, index int) (*api.TaskResult, error) {
	var page api.ResultsPage
	path := fmt.Sprintf("/v1/jobs/%s/results?offset=%d&limit=1", url.PathEscape(id), index)
	if err := c.doJSON(ctx, http.MethodGet, path, nil, &page); err != nil {
		return nil, err
	}
	if len(page.Results) == 0 || page.Results[0].Index != index {
		return nil, fmt.Errorf("job %s task %d: no result yet: %w", id, index, ErrNotFound)
	}
	return &page.Results[0], nil
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
	if resp, handled, err := c.leaseOnStream(ctx, req); handled {
		if err != nil {
			return nil, err
		}
		return resp.Tasks, nil
	}
	var out api.LeaseResponse
	return out.Tasks, c.doJSONWait(ctx, http.MethodPost, "/v1/lease", req, &out, req.Wait)
}

// ErrReportsNotCarried is returned by LeaseWithReports when the server is
// older than api.LeaseRequest.Reports: it refused the call whole, so
// nothing was reported or leased; send the reports with Report and lease
// without them.
var ErrReportsNotCarried = errors.New("the server does not take reports on a lease")

// LeaseWithReports leases as Lease does, sending req.Reports in the same
// call; the answer says which reports were accepted (Accepted) besides the
// tasks. Against a server that predates it, it returns ErrReportsNotCarried.
func (c *Client) LeaseWithReports(ctx context.Context, req *api.LeaseRequest) (*api.LeaseResponse, error) {
	if resp, handled, err := c.leaseOnStream(ctx, req); handled {
		return resp, err
	}
	var out api.LeaseResponse
	err := c.doJSONWait(ctx, http.MethodPost, "/v1/lease", req, &out, req.Wait)
	if se := (*StatusError)(nil); len(req.Reports) > 0 && errors.As(err, &se) && se.Code == http.StatusBadRequest &&
		strings.Contains(se.Message, `unknown field "reports"`) {
		return nil, fmt.Errorf("%w: %w", ErrReportsNotCarried, err)
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Report sends finished tasks.
func (c *Client) Report(ctx context.Context, req *api.ReportRequest) ([]bool, error) {
	if accepted, handled, err := c.reportOnStream(ctx, req); handled {
		return accepted, err
	}
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
	if resp, handled, err := c.heartbeatOnStream(ctx, req); handled {
		return resp, err
	}
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
