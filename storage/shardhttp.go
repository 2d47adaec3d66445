package storage

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// TokenHeader carries a token on shard requests to a TokenAuth service
// (tests and tools; a grid's peers want capabilities). It is the same
// header as api.TokenHeader (storage cannot import api, which imports it).
const TokenHeader = "X-Peergrid-Token"

// ErrUnauthorized is wrapped when a peer refuses a request's credential or
// capability (HTTP 401 or 403).
var ErrUnauthorized = errors.New("shard peer refused the credential")

// ShardPeer is one storage peer as a writer, reader or repairer sees it.
// ShardClient speaks to a remote peer over HTTP; LocalPeer wraps a local
// ShardStore; tests use fakes.
type ShardPeer interface {
	// Put stores a shard; the peer refuses bytes that do not match hash.
	Put(ctx context.Context, hash string, data []byte) error
	// Get returns a shard, verified against hash. A missing shard wraps
	// ErrShardNotFound, a corrupt one ErrCorruptShard.
	Get(ctx context.Context, hash string) ([]byte, error)
}

var (
	_ ShardPeer     = (*ShardClient)(nil)
	_ ShardPeer     = LocalPeer{}
	_ verifyingPeer = (*ShardClient)(nil)
	_ verifyingPeer = LocalPeer{}
	_ shardHolder   = (*ShardClient)(nil)
)

// Both check every shard they return against its hash (see verifyingPeer).
func (*ShardClient) verifiesShards() {}
func (LocalPeer) verifiesShards()    {}

// CapabilityHeader carries a capability a server of the grid signed for a
// shard request (see auth.Capability): an op ("put", "get" or "delete"), the
// peer, the shards, an expiry.
const CapabilityHeader = "X-Peergrid-Capability"

// Shard ops as capabilities name them (auth.CapPut, CapGet, CapDelete;
// storage does not import auth).
const (
	OpPut    = "put"
	OpGet    = "get"
	OpDelete = "delete"
)

// OpOf is the capability op a shard request's method needs: PUT puts, GET
// and HEAD get, DELETE deletes.
func OpOf(method string) string {
	switch method {
	case http.MethodPut:
		return OpPut
	case http.MethodDelete:
		return OpDelete
	}
	return OpGet
}

// Authorizer decides whether a shard request may proceed: r is the request
// (its headers, its TLS state), shard the hash it names. A nil error lets
// it through; ErrForbidden refuses it with 403, anything else with 401.
type Authorizer interface {
	Authorize(r *http.Request, shard string) error
}

// ErrForbidden is wrapped by an Authorizer that knows the caller but will
// not let it do what it asked.
var ErrForbidden = errors.New("not allowed")

// TokenAuth lets through requests that carry this one token (in
// TokenHeader or "Authorization: Bearer"), compared in constant time; an
// empty token lets every request through. For tests and tools of this
// package only: a grid's storage peers obey capabilities (see
// worker.shardAuth).
type TokenAuth string

// Authorize implements Authorizer.
func (t TokenAuth) Authorize(r *http.Request, _ string) error {
	got := r.Header.Get(TokenHeader)
	if got == "" {
		got = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	if t != "" && subtle.ConstantTimeCompare([]byte(got), []byte(t)) != 1 {
		return fmt.Errorf("missing or wrong token in %s", TokenHeader)
	}
	return nil
}

// NewShardHandler serves store under /v1/shards/{hash}: PUT stores the body,
// GET returns the shard, HEAD says whether it is held, DELETE removes it.
// Every request is first put to auth with the shard it names.
func NewShardHandler(store *ShardStore, auth Authorizer) http.Handler {
	h := shardHandler{store: store}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/shards/{hash}", h.put)
	mux.HandleFunc("GET /v1/shards/{hash}", h.get)
	mux.HandleFunc("HEAD /v1/shards/{hash}", h.head)
	mux.HandleFunc("DELETE /v1/shards/{hash}", h.delete)
	mux.HandleFunc("GET /v1/shards/{hash}/proof", h.proof) // shardproof.go
	return authorize(auth, mux)
}

func authorize(auth Authorizer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		shard, _ := strings.CutPrefix(r.URL.Path, "/v1/shards/")
		if r.Method == http.MethodGet {
			shard = strings.TrimSuffix(shard, "/proof") // a proof is a read of the shard
		}
		if err := CheckHash(shard); err != nil {
			writeShardError(w, err)
			return
		}
		if err := auth.Authorize(r, shard); errors.Is(err, ErrForbidden) {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		} else if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type shardHandler struct{ store *ShardStore }

func (h shardHandler) put(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > h.store.opts.MaxShardSize {
		writeShardError(w, fmt.Errorf("shard %s: %w: %d bytes, limit %d", r.PathValue("hash"), ErrShardTooLarge, r.ContentLength, h.store.opts.MaxShardSize))
		return
	}
	body := http.MaxBytesReader(w, r.Body, h.store.opts.MaxShardSize)
	if err := h.store.PutSized(r.Context(), r.PathValue("hash"), body, r.ContentLength); err != nil {
		writeShardError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h shardHandler) get(w http.ResponseWriter, r *http.Request) {
	data, err := h.store.Get(r.Context(), r.PathValue("hash"))
	if err != nil {
		writeShardError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}

func (h shardHandler) head(w http.ResponseWriter, r *http.Request) {
	ok, err := h.store.Has(r.PathValue("hash"))
	switch {
	case err != nil:
		writeShardError(w, err)
	case !ok:
		w.WriteHeader(http.StatusNotFound)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

func (h shardHandler) delete(w http.ResponseWriter, r *http.Request) {
	if err := h.store.Delete(r.PathValue("hash")); err != nil {
		writeShardError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Status codes for shard errors; the client maps them back to sentinels.
func shardStatus(err error) int {
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, ErrShardNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrCorruptShard):
		return http.StatusGone
	case errors.Is(err, ErrHashMismatch):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrBadHash):
		return http.StatusBadRequest
	case errors.Is(err, ErrShardTooLarge), errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrStoreFull):
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}

func writeShardError(w http.ResponseWriter, err error) {
	http.Error(w, err.Error(), shardStatus(err))
}

// ShardClient speaks to one storage peer's shard service over HTTP.
type ShardClient struct {
	Addr string // base URL, e.g. http://127.0.0.1:7071
	// Token is sent in TokenHeader when set (TokenAuth; a grid's peers
	// want capabilities and a grid's clients send no token to peers).
	Token string
	// Caps are the capabilities to send, by op (OpPut, OpGet, OpDelete);
	// a request whose op has none goes without (a reader with a
	// certificate of the grid needs none).
	Caps map[string]string
	// CapFor, if set, names the capability for one op on one shard (a
	// holder of several capabilities for one peer, each naming some of its
	// shards); "" falls back to Caps.
	CapFor func(op, hash string) string
	HTTP   *http.Client
}

// NewShardClient returns a client for the peer at addr ("host:port" or a URL).
// hc may be nil for http.DefaultClient; share one client between peers.
func NewShardClient(addr, token string, hc *http.Client) *ShardClient {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &ShardClient{Addr: strings.TrimRight(addr, "/"), Token: token, HTTP: hc}
}

func (c *ShardClient) request(ctx context.Context, method, hash string, body []byte) (*http.Response, error) {
	if err := CheckHash(hash); err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Addr+"/v1/shards/"+hash, rd)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set(TokenHeader, c.Token)
	}
	if cp := c.capability(OpOf(method), hash); cp != "" {
		req.Header.Set(CapabilityHeader, cp)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s shard %s at %s: %w", method, hash, c.Addr, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("%s shard %s at %s: %w (HTTP %d: %s)", method, hash, c.Addr,
			statusSentinel(resp.StatusCode), resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

func (c *ShardClient) capability(op, hash string) string {
	if c.CapFor != nil {
		if cp := c.CapFor(op, hash); cp != "" {
			return cp
		}
	}
	return c.Caps[op]
}

func statusSentinel(code int) error {
	switch code {
	case http.StatusNotFound:
		return ErrShardNotFound
	case http.StatusGone:
		return ErrCorruptShard
	case http.StatusUnprocessableEntity:
		return ErrHashMismatch
	case http.StatusBadRequest:
		return ErrBadHash
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrUnauthorized
	case http.StatusRequestEntityTooLarge:
		return ErrShardTooLarge
	case http.StatusInsufficientStorage:
		return ErrStoreFull
	}
	return errors.New("shard peer failed")
}

// Put uploads a shard.
func (c *ShardClient) Put(ctx context.Context, hash string, data []byte) error {
	if data == nil {
		data = []byte{}
	}
	resp, err := c.request(ctx, http.MethodPut, hash, data)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Get downloads a shard and checks it against hash: bytes damaged on the
// peer or on the way wrap ErrCorruptShard.
func (c *ShardClient) Get(ctx context.Context, hash string) ([]byte, error) {
	resp, err := c.request(ctx, http.MethodGet, hash, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := readBody(resp)
	if err != nil {
		return nil, fmt.Errorf("GET shard %s at %s: %w", hash, c.Addr, err)
	}
	if got := shardHash(data); got != hash {
		return nil, fmt.Errorf("GET shard %s at %s: %w: received bytes hash to %s", hash, c.Addr, ErrCorruptShard, got)
	}
	return data, nil
}

// readBody reads a response body into one allocation of the announced size.
func readBody(resp *http.Response) ([]byte, error) {
	n := resp.ContentLength
	if n < 0 || n > DefaultMaxShardSize {
		return io.ReadAll(io.LimitReader(resp.Body, DefaultMaxShardSize+1))
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// Has reports whether the peer holds the shard (HEAD; the bytes are not checked).
func (c *ShardClient) Has(ctx context.Context, hash string) (bool, error) {
	resp, err := c.request(ctx, http.MethodHead, hash, nil)
	if errors.Is(err, ErrShardNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return true, nil
}

// Delete asks the peer to drop a shard. Only the leader's garbage collector
// decides that a shard is unreferenced, and the peer obeys only its
// capability (Caps[OpDelete]).
func (c *ShardClient) Delete(ctx context.Context, hash string) error {
	resp, err := c.request(ctx, http.MethodDelete, hash, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// LocalPeer is a ShardStore seen as a ShardPeer, for a peer that stores or
// reads its own shards without going through HTTP.
type LocalPeer struct{ Store *ShardStore }

// Put stores a shard in the local store.
func (p LocalPeer) Put(ctx context.Context, hash string, data []byte) error {
	return p.Store.PutSized(ctx, hash, bytes.NewReader(data), int64(len(data)))
}

// Get reads a verified shard from the local store.
func (p LocalPeer) Get(ctx context.Context, hash string) ([]byte, error) {
	return p.Store.Get(ctx, hash)
}
