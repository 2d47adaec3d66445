package client

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/stream"
)

// Worker streams (package api/stream). With Client.WorkerStream set, a
// worker's heartbeats, leases and reports go as frames over one
// connection to the leader instead of one HTTP request each, which costs
// the leader a fraction of a request. The stream is an optimisation only;
// every call keeps today's answer and bounds:
//   - It is opened on the first call that may use it, on the servers in
//     turn from the one in use: a follower refuses it (503), so it lands on
//     the leader. When none takes it (no leader yet, all unreachable) calls
//     go as requests and it is tried again after streamRetry; an old server
//     without the route (404, or 400 for a request it does not know as an
//     upgrade) after streamRetryOld.
//   - A stream the server ends (it stopped leading, shut down, the
//     credential was revoked) or that breaks is dropped: the next call
//     opens another, on the new leader once there is one.
//   - A call that the stream cannot carry goes as a request with its
//     failover and hedging: not sent (no stream, broken before it was
//     written), or sent and safe to repeat (a heartbeat, a report) with no
//     answer, or refused with 503. A lease sent with no answer is not
//     repeated: it fails with ErrOutcomeUnknown, as a request's would.
//   - A heartbeat waits at most HedgeAfter for its answer on the stream
//     (then the stream is dropped and the heartbeat sent as a hedged
//     request): a frozen leader costs it no more than a hedge does.
//   - A lease whose caller gives up (its context ends) before the answer
//     closes the stream, as a cancelled request closes its connection:
//     the server stops its long poll instead of granting tasks to no one.
//   - Bodies over streamMaxBody (a report with large inline output) go as
//     requests, so they do not hold up the stream's heartbeats.
//   - Quiet heartbeats, where the server offers them: once the stream has
//     given the TTL, a heartbeat that says what its worker's last answered
//     one on the stream said (address, cores, engines, roles, draining,
//     pause) goes quiet (the server answers it only when it has something
//     new to say) while the server was heard from within half a TTL; the
//     call returns as soon as it is written, with
//     the TTL and pause keep, and an answer the server does send for it
//     (stale leases, repair orders, distrust, an error) is returned by that
//     worker's next heartbeat call. A heartbeat when the server was last
//     heard from longer ago waits for its answer as above, so a frozen
//     leader is still noticed, and the heartbeat sent elsewhere, within
//     half a TTL and HedgeAfter: before the worker's TTL runs out.

const (
	streamRetry    = 2 * time.Second
	streamRetryOld = 10 * time.Minute
	streamMaxBody  = 1 << 20
)

// errStreamBroken: the stream ended before the call was answered.
var errStreamBroken = errors.New("worker stream ended")

// streamState is a client's one worker stream, opened on demand.
type streamState struct {
	mu      sync.Mutex
	cur     *clientStream
	offTill time.Time     // no stream until then: calls go as requests
	opening chan struct{} // closed when an open in progress ends
}

// workerStream is the open stream, opening one if none is and the server
// may offer one; nil means send this call as a request.
func (c *Client) workerStream(ctx context.Context) *clientStream {
	if !c.WorkerStream {
		return nil
	}
	ss := &c.stream
	ss.mu.Lock()
	for {
		if ss.cur != nil && !ss.cur.broken() {
			st := ss.cur
			ss.mu.Unlock()
			return st
		}
		if time.Now().Before(ss.offTill) {
			ss.mu.Unlock()
			return nil
		}
		if ss.opening == nil {
			break
		}
		wait := ss.opening
		ss.mu.Unlock()
		select { // another call is opening it: wait for that one
		case <-wait:
		case <-ctx.Done():
			return nil
		}
		ss.mu.Lock()
	}
	ss.opening = make(chan struct{})
	ss.mu.Unlock()
	st, retryAfter := c.openStream(ctx)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	close(ss.opening)
	ss.opening, ss.cur = nil, st
	if st == nil {
		ss.offTill = time.Now().Add(retryAfter)
	}
	return st
}

// dropStream closes st and forgets it, if it is still the one in use.
func (c *Client) dropStream(st *clientStream) {
	st.close(errStreamBroken)
	c.stream.mu.Lock()
	defer c.stream.mu.Unlock()
	if c.stream.cur == st {
		c.stream.cur = nil
	}
}

// CloseWorkerStream closes the worker stream, if one is open, and the
// client's idle connections to the servers: a worker that stops leaves
// none open (a connection dialled for a request that was cancelled meanwhile
// waits unused in the pool, and holds a server's graceful shutdown for
// seconds). The next call opens what it needs.
func (c *Client) CloseWorkerStream() {
	c.stream.mu.Lock()
	st := c.stream.cur
	c.stream.cur = nil
	c.stream.mu.Unlock()
	if st != nil {
		st.close(errStreamBroken)
	}
	c.HTTP.CloseIdleConnections()
}

// WorkerStreamOpen reports whether a worker stream is open, and to which
// server (its base URL).
func (c *Client) WorkerStreamOpen() (string, bool) {
	c.stream.mu.Lock()
	defer c.stream.mu.Unlock()
	if st := c.stream.cur; st != nil && !st.broken() {
		return c.addrs[st.server], true
	}
	return "", false
}

// openStream tries the servers in turn from the one in use; it returns
// nil and how long to send requests instead when none offers a stream.
func (c *Client) openStream(ctx context.Context) (*clientStream, time.Duration) {
	start := int(c.cur.Load())
	retry := streamRetry
	for n := range len(c.addrs) {
		i := (start + n) % len(c.addrs)
		st, err := c.dialStream(ctx, i)
		if err == nil {
			c.use(i)
			return st, 0
		}
		var se *StatusError
		if errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusBadRequest) {
			retry = streamRetryOld // a server from before streams
		}
	}
	return nil, retry
}

// dialStream opens a worker stream on server i: an HTTP/1.1 upgrade on a
// connection of its own, with the client's TLS (pin and certificate).
func (c *Client) dialStream(ctx context.Context, i int) (*clientStream, error) {
	u, err := url.Parse(c.addrs[i])
	if err != nil {
		return nil, err
	}
	tr, ok := c.HTTP.Transport.(*http.Transport)
	if !ok {
		return nil, errors.New("worker stream: the client's transport is not an *http.Transport")
	}
	ctx, cancel := context.WithTimeout(ctx, c.attemptTimeout(&call{}))
	defer cancel()
	conn, err := c.dialConn(ctx, tr, u)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	in, quiet, err := c.upgrade(conn, u)
	if !stop() || err != nil {
		_ = conn.Close()
		return nil, cmp.Or(err, ctx.Err()) // stop false: ctx is done, so one of them is set
	}
	_ = conn.SetDeadline(time.Time{})
	st := newClientStream(conn, in, i)
	st.quiet = quiet
	return st, nil
}

// dialConn dials the server, over TLS for https, offering only HTTP/1.1
// (an upgrade has no HTTP/2 form).
func (c *Client) dialConn(ctx context.Context, tr *http.Transport, u *url.URL) (net.Conn, error) {
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: DialTimeout}).DialContext
	}
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	raw, err := dial(ctx, "tcp", host)
	if err != nil || u.Scheme != "https" {
		return raw, err
	}
	cfg := &tls.Config{}
	if tr.TLSClientConfig != nil {
		cfg = tr.TLSClientConfig.Clone()
	}
	cfg.NextProtos = []string{"http/1.1"}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, err
	}
	return conn, nil
}

// upgrade asks for the stream on conn, offering quiet heartbeats; any
// answer but 101 is a StatusError, as a request's would be. quiet says
// whether the server serves them.
func (c *Client) upgrade(conn net.Conn, u *url.URL) (in *bufio.Reader, quiet bool, err error) {
	req := "GET " + stream.Path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nConnection: Upgrade\r\nUpgrade: " + stream.Protocol + "\r\n" +
		stream.FeaturesHeader + ": " + stream.FeatureQuietHeartbeats + "\r\n"
	if c.Token != "" {
		req += api.TokenHeader + ": " + c.Token + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		return nil, false, err
	}
	in = bufio.NewReader(conn)
	resp, err := http.ReadResponse(in, &http.Request{Method: http.MethodGet})
	if err != nil {
		return nil, false, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		return nil, false, readStatusError(resp)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), stream.Protocol) {
		return nil, false, fmt.Errorf("worker stream: the server upgraded to %q", resp.Header.Get("Upgrade"))
	}
	return in, strings.EqualFold(resp.Header.Get(stream.FeaturesHeader), stream.FeatureQuietHeartbeats), nil
}

// clientStream is one open worker stream.
type clientStream struct {
	conn   net.Conn
	in     *bufio.Reader
	server int
	slots  chan struct{} // one per request in flight (stream.MaxInFlight)
	done   chan struct{} // closed when the stream ends

	wmu sync.Mutex // guards out
	out *bufio.Writer

	quiet bool         // the server serves quiet heartbeats
	heard atomic.Int64 // when a frame last came from the server (Unix ns)

	mu        sync.Mutex
	next      uint32
	pending   map[uint32]chan stream.Frame
	err       error         // why it ended
	ttl, keep time.Duration // from the stream's first whole heartbeat answer
	// unsettled is the quiet heartbeats sent whose answer, if any, has not
	// come, oldest first; late is such an answer, by worker, for that
	// worker's next heartbeat call.
	unsettled []quietSent
	late      map[string]stream.Frame
	// said is, by worker, what its last answered heartbeat on this stream
	// said that the leader may commit (heartbeatShape): a heartbeat that
	// says something else waits for its answer.
	said map[string]string
}

// quietSent is a quiet heartbeat sent on a stream.
type quietSent struct {
	id     uint32
	worker string
}

func newClientStream(conn net.Conn, in *bufio.Reader, server int) *clientStream {
	st := &clientStream{conn: conn, in: in, server: server, slots: make(chan struct{}, stream.MaxInFlight), done: make(chan struct{}),
		out: bufio.NewWriter(conn), pending: map[uint32]chan stream.Frame{}, late: map[string]stream.Frame{}, said: map[string]string{}}
	st.heard.Store(time.Now().UnixNano()) // it just answered the upgrade
	go st.readAnswers()
	return st
}

// readAnswers hands each answer to its call until the stream ends.
func (st *clientStream) readAnswers() {
	for {
		f, err := stream.Read(st.in, stream.MaxAnswer)
		if err != nil {
			st.close(fmt.Errorf("%w: %w", errStreamBroken, err))
			return
		}
		st.heard.Store(time.Now().UnixNano())
		switch f.Kind {
		case stream.KindClosing:
			st.close(fmt.Errorf("%w: %w", errStreamBroken, frameError(f)))
			return
		case stream.KindAnswer, stream.KindError:
			st.mu.Lock()
			ch := st.pending[f.ID]
			delete(st.pending, f.ID)
			st.settleQuietLocked(f)
			st.mu.Unlock()
			if ch != nil {
				ch <- f
			}
		default:
			st.close(fmt.Errorf("%w: the server sent a %s frame", errStreamBroken, f.Kind))
			return
		}
	}
}

// settleQuietLocked forgets the quiet heartbeats an answer to frame f
// shows were served (the server serves heartbeats in order, before it
// reads the next frame), keeping f for its worker's next heartbeat call if
// it answers one of them. Called with st.mu held.
func (st *clientStream) settleQuietLocked(f stream.Frame) {
	n := 0
	for _, q := range st.unsettled {
		if q.id > f.ID {
			break
		}
		if q.id == f.ID {
			st.late[q.worker] = f
		}
		n++
	}
	st.unsettled = st.unsettled[n:]
}

func (st *clientStream) broken() bool {
	select {
	case <-st.done:
		return true
	default:
		return false
	}
}

func (st *clientStream) close(why error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err != nil {
		return
	}
	st.err = why
	close(st.done)
	_ = st.conn.Close()
}

// why is the reason the stream ended.
func (st *clientStream) why() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err
}

// frameError is an error or closing frame as the error a request's
// answer would give (a *StatusError with the same code and message).
func frameError(f stream.Frame) error {
	var e stream.Error
	if err := json.Unmarshal(f.Body, &e); err != nil || e.Code == 0 {
		return fmt.Errorf("worker stream: unreadable %s frame: %q", f.Kind, f.Body)
	}
	return &streamStatusError{StatusError{Code: e.Code, Message: e.Error}, e.RetrySafe}
}

// streamStatusError is a StatusError that also says whether the request
// was certainly not applied.
type streamStatusError struct {
	StatusError
	retrySafe bool
}

func (e *streamStatusError) Unwrap() error { return &e.StatusError }

// roundTrip sends one request and waits for its answer, at most timeout.
// sent says whether the frame was written whole (so the server may have
// applied it).
func (st *clientStream) roundTrip(ctx context.Context, kind stream.Kind, body []byte, timeout time.Duration) (answer stream.Frame, sent bool, err error) {
	select {
	case st.slots <- struct{}{}:
	case <-st.done:
		return stream.Frame{}, false, st.why()
	case <-ctx.Done():
		return stream.Frame{}, false, ctx.Err()
	}
	defer func() { <-st.slots }()
	ch := make(chan stream.Frame, 1)
	st.mu.Lock()
	st.next++
	id := st.next
	st.pending[id] = ch
	st.mu.Unlock()
	defer func() { st.mu.Lock(); delete(st.pending, id); st.mu.Unlock() }()
	if err := st.write(kind, id, body, timeout); err != nil {
		st.close(fmt.Errorf("%w: %w", errStreamBroken, err))
		return stream.Frame{}, false, err // a frame not written whole is not applied
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case f := <-ch:
		return f, true, nil
	case <-st.done:
		select {
		case f := <-ch: // answered just before the stream ended
			return f, true, nil
		default:
			return stream.Frame{}, true, st.why()
		}
	case <-timer.C:
		return stream.Frame{}, true, fmt.Errorf("worker stream: no answer within %s: %w", timeout, ErrNoAnswer)
	case <-ctx.Done():
		return stream.Frame{}, true, ctx.Err()
	}
}

// write writes one frame whole, or fails.
func (st *clientStream) write(kind stream.Kind, id uint32, body []byte, timeout time.Duration) error {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	_ = st.conn.SetWriteDeadline(time.Now().Add(timeout))
	if err := stream.Write(st.out, stream.Frame{Kind: kind, ID: id, Body: body}); err != nil {
		return err
	}
	return st.out.Flush()
}

// onStream sends a call over the worker stream. handled is false when the
// call should go as a request instead (no stream, or the stream could not
// carry it and repeating it is safe); else answer or err is the call's
// outcome.
func (c *Client) onStream(ctx context.Context, kind stream.Kind, body []byte, timeout time.Duration) (answer []byte, handled bool, err error) {
	if len(body) > streamMaxBody {
		return nil, false, nil
	}
	st := c.workerStream(ctx)
	if st == nil {
		return nil, false, nil
	}
	f, sent, err := st.roundTrip(ctx, kind, body, timeout)
	safe := kind != stream.KindLease
	switch {
	case ctx.Err() != nil && sent && !safe:
		// The server would go on long-polling for a caller that left (and
		// grant it tasks): a request's cancellation closes its connection,
		// and so does this.
		c.dropStream(st)
		return nil, true, ctx.Err()
	case ctx.Err() != nil:
		return nil, true, ctx.Err()
	case err != nil:
		c.dropStream(st)
		if !sent || safe {
			return nil, false, nil
		}
		return nil, true, fmt.Errorf("%w: lease over the worker stream: %w", ErrOutcomeUnknown, err)
	case f.Kind == stream.KindError:
		return nil, true, c.streamRefusal(st, kind, frameError(f))
	}
	return f.Body, true, nil
}

// streamRefusal is what a refused stream call returns: the server's error,
// except a 503 (this server stopped leading), which drops the stream.
func (c *Client) streamRefusal(st *clientStream, kind stream.Kind, err error) error {
	var se *streamStatusError
	if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable {
		return err
	}
	c.dropStream(st)
	if se.retrySafe || kind != stream.KindLease {
		return errRetryAsRequest
	}
	return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
}

// errRetryAsRequest: the stream refused the call with nothing applied;
// send it as a request.
var errRetryAsRequest = errors.New("retry as a request")

// streamCall is onStream with the retry folded in: handled false means
// send the call as a request.
func (c *Client) streamCall(ctx context.Context, kind stream.Kind, in any, timeout time.Duration) ([]byte, bool, error) {
	if !c.WorkerStream {
		return nil, false, nil
	}
	body, err := json.Marshal(in)
	if err != nil {
		return nil, true, err
	}
	answer, handled, err := c.onStream(ctx, kind, body, timeout)
	if errors.Is(err, errRetryAsRequest) {
		return nil, false, nil
	}
	return answer, handled, err
}

// heartbeatOnStream sends a heartbeat over the worker stream, quiet if it
// may go quiet; handled false means send it as a request.
func (c *Client) heartbeatOnStream(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, bool, error) {
	if resp, handled, err := c.quietHeartbeat(req); handled {
		return resp, true, err
	}
	answer, handled, err := c.streamCall(ctx, stream.KindHeartbeat, req, c.hedgeAfter())
	if !handled || err != nil {
		return nil, handled, err
	}
	st := c.streamInUse()
	resp, handled, err := heartbeatAnswer(st, answer)
	if handled && err == nil {
		st.answered(req)
	}
	return resp, handled, err
}

// heartbeatAnswer reads a heartbeat's answer on st; an empty one
// (stream.Unchanged) is the TTL and pause keep the stream's first answer
// gave. handled false means that answer was lost: ask as a request.
func heartbeatAnswer(st *clientStream, answer []byte) (*api.HeartbeatResponse, bool, error) {
	if len(answer) == 0 { // stream.Unchanged: the stream's first answer said the rest
		ttl, keep := st.told()
		if ttl == 0 {
			return nil, false, nil // that answer was lost: ask for it whole
		}
		return &api.HeartbeatResponse{TTL: ttl, PauseKeep: keep}, true, nil
	}
	var out api.HeartbeatResponse
	if err := json.Unmarshal(answer, &out); err != nil {
		return nil, true, fmt.Errorf("heartbeat over the worker stream: reading the answer: %w", err)
	}
	if st != nil && out.TTL > 0 {
		st.mu.Lock()
		st.ttl, st.keep = out.TTL, out.PauseKeep
		st.mu.Unlock()
	}
	return &out, true, nil
}

// quietHeartbeat sends req as a quiet heartbeat on the open stream when it
// may go quiet (see mayGoQuiet), returning at once: the stream's TTL and
// pause keep, or the answer the server sent to this worker's previous
// quiet heartbeat (its error, if it failed). handled false means send it
// as usual.
func (c *Client) quietHeartbeat(req *api.HeartbeatRequest) (*api.HeartbeatResponse, bool, error) {
	if !c.WorkerStream {
		return nil, false, nil
	}
	st := c.streamInUse()
	if !st.mayGoQuiet() || !st.saysTheSame(req) {
		return nil, false, nil
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, true, err
	}
	if len(body) > streamMaxBody {
		return nil, false, nil
	}
	late, hasLate, err := st.sendQuiet(req.Worker, body, c.hedgeAfter())
	if err != nil {
		c.dropStream(st)
		return nil, false, nil // a heartbeat is safe to send again
	}
	if !hasLate {
		ttl, keep := st.told()
		return &api.HeartbeatResponse{TTL: ttl, PauseKeep: keep}, true, nil
	}
	if late.Kind == stream.KindError {
		err := c.streamRefusal(st, stream.KindHeartbeat, frameError(late))
		if errors.Is(err, errRetryAsRequest) {
			return nil, false, nil // the server stopped leading: say it again elsewhere
		}
		return nil, true, err
	}
	return heartbeatAnswer(st, late.Body)
}

// quietWithin is how recently the server must have been heard from on a
// stream for a heartbeat to go quiet, given the TTL: a worker heartbeats
// every quarter TTL, so a leader that froze just after it was last heard
// from is noticed by an answered heartbeat (then hedged elsewhere) at most
// three quarters of a TTL and HedgeAfter later, within the TTL and a half
// a new leader gives every worker (the server's newLeaderGrace).
func quietWithin(ttl time.Duration) time.Duration { return ttl / 2 }

// mayGoQuiet reports whether a heartbeat on st may go quiet: the server
// serves them, the stream gave the TTL, and the server was heard from
// within quietWithin of it.
func (st *clientStream) mayGoQuiet() bool {
	if st == nil || !st.quiet || st.broken() {
		return false
	}
	ttl, _ := st.told()
	return ttl > 0 && time.Since(time.Unix(0, st.heard.Load())) < quietWithin(ttl)
}

// sendQuiet writes a quiet heartbeat of worker, returning the answer the
// server sent to that worker's previous one, if any. An error means the
// frame was not written whole (and the stream is closed).
func (st *clientStream) sendQuiet(worker string, body []byte, timeout time.Duration) (late stream.Frame, hasLate bool, err error) {
	st.mu.Lock()
	st.next++
	id := st.next
	st.unsettled = append(st.unsettled, quietSent{id: id, worker: worker})
	late, hasLate = st.late[worker]
	delete(st.late, worker)
	st.mu.Unlock()
	if err := st.write(stream.KindQuietHeartbeat, id, body, timeout); err != nil {
		st.close(fmt.Errorf("%w: %w", errStreamBroken, err))
		return late, hasLate, err
	}
	return late, hasLate, nil
}

// answered records that req's heartbeat was answered on st, and drops
// any late answer of that worker's (this one is newer).
func (st *clientStream) answered(req *api.HeartbeatRequest) {
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.late, req.Worker)
	st.said[req.Worker] = heartbeatShape(req)
}

// saysTheSame reports whether req says what its worker's last answered
// heartbeat on st said of what the leader may commit. A worker's first
// heartbeat on a stream, and one that changes its address, cores, engines,
// roles, draining or pause, waits for its answer: a refusal of it is
// returned by that call.
func (st *clientStream) saysTheSame(req *api.HeartbeatRequest) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	said, ok := st.said[req.Worker]
	return ok && said == heartbeatShape(req)
}

// heartbeatShape is what a heartbeat says that the leader may commit.
func heartbeatShape(req *api.HeartbeatRequest) string {
	return fmt.Sprintf("%q %d %t %t %t %t %q", req.Address, req.Cores, req.Draining, req.Storage, req.StorageOnly, req.Paused, req.Engines)
}

// told is the TTL and pause keep the stream's first whole heartbeat
// answer gave (0 if none has arrived, or st is nil).
func (st *clientStream) told() (ttl, keep time.Duration) {
	if st == nil {
		return 0, 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.ttl, st.keep
}

// streamInUse is the open stream, if any (the one a call just used).
func (c *Client) streamInUse() *clientStream {
	c.stream.mu.Lock()
	defer c.stream.mu.Unlock()
	return c.stream.cur
}

// leaseOnStream sends a lease over the worker stream; handled false means
// send it as a request.
func (c *Client) leaseOnStream(ctx context.Context, req *api.LeaseRequest) (*api.LeaseResponse, bool, error) {
	answer, handled, err := c.streamCall(ctx, stream.KindLease, req, c.attemptTimeout(&call{wait: req.Wait}))
	if !handled || err != nil {
		return nil, handled, err
	}
	var out api.LeaseResponse
	if err := decodeLeaseAnswer(answer, &out); err != nil {
		return nil, true, fmt.Errorf("lease over the worker stream: reading the answer: %w", err)
	}
	return &out, true, nil
}

// reportOnStream sends reports over the worker stream; handled false
// means send them as a request.
func (c *Client) reportOnStream(ctx context.Context, req *api.ReportRequest) ([]bool, bool, error) {
	answer, handled, err := c.streamCall(ctx, stream.KindReport, req, c.attemptTimeout(&call{}))
	if !handled || err != nil {
		return nil, handled, err
	}
	var out api.ReportResponse
	if err := json.Unmarshal(answer, &out); err != nil {
		return nil, true, fmt.Errorf("report over the worker stream: reading the answer: %w", err)
	}
	return out.Accepted, true, nil
}
