package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/stream"
	"github.com/peergrid/peergrid/scheduler/store"
)

// Worker streams. A worker's heartbeats, leases and reports may travel as
// frames (package api/stream) on one long-lived connection instead of one
// HTTP request each: what a request costs the leader before any handler
// runs (net/http's parsing, its background read, one answer per request)
// was most of a heartbeat's CPU (BENCHMARKS.md, issue 15).
//
// Decisions:
//   - The stream is an upgrade of an HTTPS request on the API's port (GET
//     /v1/stream, HTTP/1.1 only), so it passes the same TLS, client
//     certificate and credential checks as every request before the 101.
//   - Only the leader serves one: a follower answers 503 not leader (retry
//     safe), never forwards, so a stream's messages cost one hop. The
//     leader ends every stream when it stops leading or closes, with a
//     closing frame saying so; clients reconnect to the new leader or fall
//     back to requests.
//   - Every message is authenticated again: a credential revoked or
//     expired mid-stream ends it with a 401 closing frame. The full check
//     (authenticateSecret with the stream's secret and certificate) runs
//     when the ledger has changed since the last one (FSM.Changes: a
//     revocation is a ledger change) or the credential's expiry has come;
//     otherwise its outcome stands, for a compare and a clock read. Each message names its
//     worker, checked by speaksFor exactly as the HTTP handlers check it;
//     a message for another worker is refused (403), as a request is,
//     without ending the stream.
//   - Bounds: a request body of stream.MaxRequest, stream.MaxInFlight
//     leases and reports served at once (past them the server reads
//     nothing more until one is answered; heartbeats are served one at a
//     time on the reader), an idle stream closed after two worker TTLs (a
//     worker heartbeats every quarter TTL), an answer that cannot be
//     written within streamWriteTimeout ends the stream. A malformed frame,
//     a request id already in flight or a frame that is no request ends it
//     with a 400 closing frame naming what was wrong.
//   - A heartbeat is served on the stream's reader goroutine, in order; a
//     lease (which may long-poll) or report on its own goroutine. A
//     heartbeat answer with nothing to say is empty (stream.Unchanged)
//     once the stream's first answer has given the TTL and pause keep.
//   - On a stream whose client asked for quiet heartbeats (the upgrade's
//     stream.FeaturesHeader; the 101 confirms it), a quiet heartbeat with
//     nothing to say is not answered at all: that write was a third of a
//     heartbeat's cost to the leader. It is checked and served exactly as
//     a heartbeat; one whose answer says something (stale leases, repair
//     orders, distrust) or that fails is answered as usual. A quiet
//     heartbeat on a stream that did not ask for them is malformed (400).
//     Heartbeats being served in order, an answer to any later frame
//     tells the client its earlier quiet heartbeats were served.

// streamWriteTimeout bounds writing one frame to a stream's client: one
// that stops reading cannot hold the stream's goroutines.
const streamWriteTimeout = 10 * time.Second

// errStreamNotLeader is why a follower refuses a stream, and why a leader
// that stops leading ends its streams: nothing was applied, so the client
// may send again elsewhere.
var errStreamNotLeader = fmt.Errorf("%w: %w: worker streams are served by the leader only: open it on the leader, or send requests to any server",
	store.ErrNotLeader, store.ErrNotProposed)

// handleStream upgrades an authenticated worker request to a stream and
// serves it until either side ends it. It answers like any route until the
// upgrade: 400 for a request that is no upgrade, 503 on a follower.
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	if err := checkUpgrade(r); err != nil {
		writeErr(w, err)
		return
	}
	if r.Header.Get(api.ForwardedHeader) != "" || !s.store.IsLeader() || !s.awaitReady(r.Context()) {
		writeErr(w, errStreamNotLeader)
		return
	}
	certPeer, err := s.certPeer(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeErr(w, fmt.Errorf("%w: the connection cannot be upgraded: %v", errBadRequest, err))
		return
	}
	st := s.newWorkerStream(conn, requestToken(r), certPeer, principalOf(r))
	if n := buf.Reader.Buffered(); n > 0 { // frames the client sent behind its upgrade
		held, _ := buf.Reader.Peek(n)
		st.fb.put(held)
	}
	st.quiet = headerHas(r.Header, stream.FeaturesHeader, stream.FeatureQuietHeartbeats)
	if !s.streams.add(st) {
		_ = conn.Close()
		return
	}
	defer s.streams.remove(st)
	if err := st.accept(); err != nil {
		st.close()
		return
	}
	st.serve()
}

// checkUpgrade refuses a request that does not ask for a worker stream.
func checkUpgrade(r *http.Request) error {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 {
		return fmt.Errorf("%w: a worker stream needs HTTP/1.1, not %s", errBadRequest, r.Proto)
	}
	if !headerHas(r.Header, "Connection", "upgrade") || !strings.EqualFold(r.Header.Get("Upgrade"), stream.Protocol) {
		return fmt.Errorf("%w: a worker stream needs Connection: Upgrade and Upgrade: %s", errBadRequest, stream.Protocol)
	}
	return nil
}

// headerHas reports whether a comma-separated header lists token.
func headerHas(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// workerStream is one worker's open stream on the leader.
type workerStream struct {
	s      *Server
	conn   net.Conn
	fb     frameBuffer // what was read and not yet served (the reader's own)
	secret string      // authenticated again with every message
	hash   string      // the secret's, computed once
	cert   string      // the worker id its client certificate names
	caller *principal  // as authenticated at the upgrade (for the log)
	idle   time.Duration
	quiet  bool // the client asked for quiet heartbeats (and was told yes)

	ctx    context.Context // ends with the stream: a lease's long poll stops
	cancel context.CancelFunc

	slots    chan struct{}  // one per request in flight
	handlers sync.WaitGroup // the leases and reports being served

	// stopRead tells a reader that holds the socket (see streamread.go)
	// to leave and close it: the stream ended.
	stopRead atomic.Bool

	readDeadlineSet time.Time   // when keepReadDeadline last moved the read deadline
	hints           workerHints // the last heartbeat's strings, shared by the next (the reader's own)
	kept            keptRecord  // its worker's liveness record (the reader's own)

	// The last full credential check (the reader's own): who it found, the
	// ledger's FSM.CredentialChanges it read, and when the credential expires.
	checked       *principal
	checkedAt     uint64
	checkedExpiry int64

	mu       sync.Mutex // guards out, inFlight, toldTTL, ended, readerCloses
	out      *bufio.Writer
	inFlight map[uint32]bool
	toldTTL  bool // an answer gave the TTL and pause keep
	ended    bool
	// readerCloses says the reader holds the socket in its RawConn
	// callback: it closes the socket as it leaves, and nobody else may.
	readerCloses bool
	// writeDeadlineSet is when the write deadline was last moved (as
	// next moves the read deadline, at most every second).
	writeDeadlineSet time.Time
}

func (s *Server) newWorkerStream(conn net.Conn, secret, cert string, caller *principal) *workerStream {
	ctx, cancel := context.WithCancel(context.Background())
	return &workerStream{s: s, conn: conn, secret: secret, hash: hashSecret(secret), cert: cert, caller: caller, idle: 2 * s.cfg.WorkerTTL,
		ctx: ctx, cancel: cancel, slots: make(chan struct{}, stream.MaxInFlight), out: bufio.NewWriter(conn), inFlight: map[uint32]bool{}}
}

// accept writes the 101 that starts the stream.
func (st *workerStream) accept() error {
	_ = st.conn.SetDeadline(time.Time{}) // the HTTP server's deadlines end here
	st.mu.Lock()
	defer st.mu.Unlock()
	_ = st.conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	head := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + stream.Protocol + "\r\n"
	if st.quiet {
		head += stream.FeaturesHeader + ": " + stream.FeatureQuietHeartbeats + "\r\n"
	}
	_, _ = st.out.WriteString(head + "\r\n")
	return st.out.Flush()
}

// serve reads and serves frames until the stream ends: from a RawConn
// callback where the connection allows (see streamread.go), else with
// blocking reads.
func (st *workerStream) serve() {
	defer st.handlers.Wait()
	defer st.close()
	rc, sr, src, ok := socketOf(st.conn)
	if !ok {
		st.pump(st.conn)
		return
	}
	sr.skips = &st.s.streamReadSkips
	st.mu.Lock()
	st.readerCloses = !st.ended
	st.mu.Unlock()
	defer st.conn.Close()
	err := rc.Read(func(fd uintptr) bool {
		sr.fd, sr.drained, sr.active = int(fd), false, true // woken: the socket may hold bytes
		done := st.pump(src)
		sr.active = false
		return done
	})
	if err != nil && !st.stopRead.Load() {
		st.endOnReadError(err)
	}
}

// pump serves the whole frames the stream's buffer holds, reading more
// from src as it needs, until src would block (false: wait for the
// netpoller) or the stream ends (true).
func (st *workerStream) pump(src io.Reader) bool {
	for !st.stopRead.Load() {
		f, used, need, err := stream.Parse(st.fb.unread(), stream.MaxRequest)
		if err != nil {
			st.end(fmt.Errorf("%w: %w", errBadRequest, err))
			return true
		}
		if used > 0 {
			st.fb.consume(used)
			if !st.dispatch(f) {
				return true
			}
			continue
		}
		st.keepReadDeadline()
		if st.stopRead.Load() { // after the deadline moved: see closeLocked
			return true
		}
		n, err := st.fb.fill(src, need)
		switch {
		case n > 0:
		case errors.Is(err, errWouldBlock):
			return false
		case err != nil:
			st.endOnReadError(readError(err, len(st.fb.unread())))
			return true
		}
	}
	return true
}

// readError is a failed read's error as stream.Read would have said it:
// an end in the middle of a frame is a frame cut short.
func readError(err error, held int) error {
	if held > 0 && errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: a frame cut short (%d bytes of it read)", stream.ErrMalformed, held)
	}
	return err
}

// dispatch serves a frame: a heartbeat at once, on the reader, a lease or
// report on a goroutine of its own (once fewer than MaxInFlight are). It
// reports false when the frame ended the stream.
func (st *workerStream) dispatch(f stream.Frame) bool {
	caller, err := st.admit(f)
	if err != nil {
		st.end(err)
		return false
	}
	if f.Kind.IsHeartbeat() {
		st.serveOne(caller, f) // its body, in the reader's buffer, is read before the next fill
		return true
	}
	body := takeFrameBuffer() // the buffer is the reader's: the handler keeps its own copy
	f.Body = append(body[:0], f.Body...)
	st.slots <- struct{}{} // waits while MaxInFlight are unanswered
	st.handlers.Go(func() {
		defer func() { <-st.slots }()
		st.serveOne(caller, f)
		putFrameBuffer(f.Body) // decoded and answered: nothing refers to it now
	})
	return true
}

// frameBuffers holds the byte slices a stream's leases and reports are
// copied into and answered from. A lease carrying 8 reports is a kilobyte
// or two each way; allocating both per call was a quarter of the leader's
// allocations at 10,000 workers (BENCHMARKS.md, the sixth session). A buffer is put back
// only once nothing refers to it: request bodies after they are decoded
// (the decoders copy every string and byte slice out), answers after
// they are written.
var frameBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledFrame bounds the buffers kept: a rare large frame is left to
// the collector rather than held by the pool.
const maxPooledFrame = 64 << 10

func takeFrameBuffer() []byte { return *frameBuffers.Get().(*[]byte) }

func putFrameBuffer(b []byte) {
	if cap(b) == 0 || cap(b) > maxPooledFrame {
		return
	}
	b = b[:0]
	frameBuffers.Put(&b)
}

// keepReadDeadline keeps the read deadline an idle timeout ahead, moving
// it only when a quarter of it has passed (so a stream idles out after
// between three quarters of the timeout and all of it): moving it for
// every frame was a visible share of a frame's cost.
func (st *workerStream) keepReadDeadline() {
	if now := time.Now(); now.Sub(st.readDeadlineSet) > st.idle/4 {
		_ = st.conn.SetReadDeadline(now.Add(st.idle))
		st.readDeadlineSet = now
	}
}

// errStreamIdle ends a stream that carried nothing for its idle timeout.
var errStreamIdle = errors.New("worker stream idle")

// endOnReadError ends the stream after a failed read: quietly when the
// client closed it, else with a closing frame saying why.
func (st *workerStream) endOnReadError(err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		st.close()
	case errors.Is(err, os.ErrDeadlineExceeded):
		st.end(fmt.Errorf("%w: %w: nothing for %s", errBadRequest, errStreamIdle, st.idle))
	case errors.Is(err, stream.ErrMalformed):
		st.end(fmt.Errorf("%w: %w", errBadRequest, err))
	default:
		st.close()
	}
}

// admit checks a frame before it is served: a request, not already in
// flight, from a credential still valid, to a server still leading. It
// returns who the frame speaks for (the credential as it is now); its
// error ends the stream.
func (st *workerStream) admit(f stream.Frame) (*principal, error) {
	if !f.Kind.IsRequest() {
		return nil, fmt.Errorf("%w: %w: %s frames come from the server, not a client", errBadRequest, stream.ErrMalformed, f.Kind)
	}
	if f.Kind == stream.KindQuietHeartbeat && !st.quiet {
		return nil, fmt.Errorf("%w: %w: quiet heartbeat (frame %d) on a stream that did not ask for %s in its %s header",
			errBadRequest, stream.ErrMalformed, f.ID, stream.FeatureQuietHeartbeats, stream.FeaturesHeader)
	}
	st.s.streamFrames.Add(1)
	p, err := st.authenticate(time.Now())
	if err != nil {
		return nil, err
	}
	if !st.s.store.IsLeader() {
		return nil, errStreamNotLeader
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.inFlight[f.ID] {
		return nil, fmt.Errorf("%w: %w: request id %d is already in flight", errBadRequest, stream.ErrMalformed, f.ID)
	}
	st.inFlight[f.ID] = true
	return p, nil
}

// authenticate is who the stream's credential speaks for now: the last
// full check's outcome while no credential changed in the ledger and the
// credential is unexpired, else a full check (which a revoked or expired credential
// fails).
func (st *workerStream) authenticate(now time.Time) (*principal, error) {
	changes := st.s.store.FSM().CredentialChanges() // read first: a change after it forces the next check
	if st.checked != nil && changes == st.checkedAt && now.UnixNano() < st.checkedExpiry {
		st.s.streamAuthCached.Add(1)
		return st.checked, nil
	}
	p, err := st.s.authenticateSecret(st.secret, st.hash, st.cert)
	if err != nil {
		st.checked = nil
		return nil, err
	}
	if p == nil { // authentication disabled (tests only)
		return st.caller, nil
	}
	st.checked, st.checkedAt, st.checkedExpiry = p, changes, math.MaxInt64
	if p.Expires != 0 {
		st.checkedExpiry = p.Expires
	}
	return p, nil
}

// serveOne serves one request frame and writes its answer.
func (st *workerStream) serveOne(p *principal, f stream.Frame) {
	body, err := st.answer(p, f)
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.inFlight, f.ID)
	if err != nil {
		st.writeLocked(stream.KindError, f.ID, errorBody(err))
		return
	}
	if f.Kind == stream.KindQuietHeartbeat && len(body) == 0 {
		st.s.streamQuiet.Add(1)
		return // nothing new to say: the client asked not to be told
	}
	st.writeLocked(stream.KindAnswer, f.ID, body)
	if f.Kind == stream.KindLease {
		putFrameBuffer(body) // written: the writer copied it or sent it
	}
}

// answer serves a request as its HTTP route would, returning the answer's
// JSON.
func (st *workerStream) answer(p *principal, f stream.Frame) ([]byte, error) {
	switch f.Kind {
	case stream.KindHeartbeat, stream.KindQuietHeartbeat:
		return st.heartbeat(p, f.Body)
	case stream.KindLease:
		return st.lease(p, f.Body)
	default:
		return st.report(p, f.Body)
	}
}

func (st *workerStream) heartbeat(p *principal, body []byte) ([]byte, error) {
	var req api.HeartbeatRequest // on the stack, as resp: a heartbeat's own garbage is what it decodes
	if !fastDecodeHeartbeatLike(body, &req, &st.hints) {
		slow, err := decodeHeartbeatSlow(body)
		if err != nil {
			return nil, err
		}
		req = *slow
	}
	var resp api.HeartbeatResponse
	if err := st.s.heartbeatKeeping(st.ctx, &st.kept, p, &req, &resp); err != nil {
		return nil, err
	}
	if st.unchanged(&resp) {
		return stream.Unchanged, nil
	}
	return heartbeatAnswer(&resp)
}

// decodeHeartbeatSlow decodes a heartbeat the fast path does not take
// (its own variable: one that encoding/json decodes into escapes).
func decodeHeartbeatSlow(body []byte) (*api.HeartbeatRequest, error) {
	var req api.HeartbeatRequest
	if err := decodeFast(body, &req, fastDecodeHeartbeat); err != nil {
		return nil, err
	}
	return &req, nil
}

// unchanged reports whether a heartbeat's answer says nothing the stream
// has not said: then it is sent empty. The first answer is always whole.
func (st *workerStream) unchanged(resp *api.HeartbeatResponse) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.toldTTL {
		st.toldTTL = true
		return false
	}
	return len(resp.Stale) == 0 && len(resp.Repairs) == 0 && !resp.Distrusted
}

func (st *workerStream) lease(p *principal, body []byte) ([]byte, error) {
	req, err := decodeLeaseBody(body)
	if err != nil {
		return nil, err
	}
	resp, err := st.s.lease(st.ctx, p, req)
	if err != nil {
		return nil, err
	}
	answer, err := appendLeaseAnswer(takeFrameBuffer(), &resp)
	putAssignments(resp.Tasks) // encoded: the answer's bytes hold all of it
	return answer, err
}

func (st *workerStream) report(p *principal, body []byte) ([]byte, error) {
	req, err := decodeReportBody(body)
	if err != nil {
		return nil, err
	}
	accepted, err := st.s.report(st.ctx, p, req)
	if err != nil {
		return nil, err
	}
	return json.Marshal(api.ReportResponse{Accepted: accepted})
}

// errorBody is an error as a stream.Error, with the HTTP status the same
// request would have had.
func errorBody(err error) []byte {
	code, retrySafe := statusOf(err)
	b, _ := json.Marshal(stream.Error{Code: code, Error: err.Error(), RetrySafe: retrySafe})
	return b
}

// writeLocked writes one frame; a write that fails or times out ends the
// stream. Called with st.mu held.
func (st *workerStream) writeLocked(kind stream.Kind, id uint32, body []byte) {
	if st.ended {
		return
	}
	if now := time.Now(); now.Sub(st.writeDeadlineSet) > time.Second {
		_ = st.conn.SetWriteDeadline(now.Add(streamWriteTimeout))
		st.writeDeadlineSet = now
	}
	if stream.Write(st.out, stream.Frame{Kind: kind, ID: id, Body: body}) != nil || st.out.Flush() != nil {
		st.closeLocked()
	}
}

// end ends the stream with a closing frame saying why.
func (st *workerStream) end(err error) {
	if !errors.Is(err, errStreamNotLeader) && !errors.Is(err, errStreamIdle) {
		st.s.log.Info("worker stream ended", "peer", st.peer(), "err", err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.writeLocked(stream.KindClosing, 0, errorBody(err))
	st.closeLocked()
}

// peer names the stream's caller for the log.
func (st *workerStream) peer() string {
	if st.caller.Peer != "" {
		return st.caller.Peer
	}
	return st.caller.ID
}

func (st *workerStream) close() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closeLocked()
}

func (st *workerStream) closeLocked() {
	if st.ended {
		return
	}
	st.ended = true
	st.cancel()
	if st.readerCloses {
		// A Close now would wait for the reader to leave its callback, and
		// the reader may be waiting for st.mu: wake it instead (a deadline
		// in the past), and it closes the socket as it leaves. It checks
		// stopRead after moving the deadline, so it cannot move this one
		// away unseen.
		st.stopRead.Store(true)
		_ = st.conn.SetReadDeadline(time.Unix(1, 0))
		return
	}
	_ = st.conn.Close()
}

// streamSet is the worker streams a server holds open.
type streamSet struct {
	mu     sync.Mutex
	open   map[*workerStream]struct{}
	closed bool // the server is closing: no new stream
}

// add registers a new stream, reporting false once the server closes.
func (ss *streamSet) add(st *workerStream) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return false
	}
	if ss.open == nil {
		ss.open = map[*workerStream]struct{}{}
	}
	ss.open[st] = struct{}{}
	return true
}

func (ss *streamSet) remove(st *workerStream) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.open, st)
}

// endAll ends every open stream with err; closing also refuses new ones.
func (ss *streamSet) endAll(err error, closing bool) {
	ss.mu.Lock()
	open := make([]*workerStream, 0, len(ss.open))
	for st := range ss.open {
		open = append(open, st)
	}
	ss.closed = ss.closed || closing
	ss.mu.Unlock()
	for _, st := range open {
		go st.end(err) // a stream whose client stopped reading must not hold the others
	}
}

// count is how many streams are open.
func (ss *streamSet) count() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.open)
}
