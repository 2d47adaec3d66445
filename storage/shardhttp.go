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

// TokenHeader carries the cluster token on shard requests. It is the same
// header as api.TokenHeader (storage cannot import api, which imports it).
const TokenHeader = "X-Peergrid-Token"

// ErrUnauthorized is wrapped when a peer refuses the token.
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

// Authorizer decides whether a shard request may proceed, given the token
// it carries (in TokenHeader or "Authorization: Bearer"). A nil error lets
// it through; ErrForbidden refuses it with 403, anything else with 401.
type Authorizer interface {
	Authorize(r *http.Request, token string) error
}

// ErrForbidden is wrapped by an Authorizer that knows the caller but will
// not let it do what it asked.
var ErrForbidden = errors.New("not allowed")

// TokenAuth lets through requests that carry this one token, compared in
// constant time; an empty token lets every request through (tests).
type TokenAuth string

// Authorize implements Authorizer.
func (t TokenAuth) Authorize(_ *http.Request, got string) error {
	if t != "" && subtle.ConstantTimeCompare([]byte(got), []byte(t)) != 1 {
		return fmt.Errorf("missing or wrong token in %s", TokenHeader)
	}
	return nil
}

// NewShardHandler serves store under /v1/shards/{hash}: PUT stores the body,
// GET returns the shard, HEAD says whether it is held, DELETE removes it.
// Every request is first put to auth with the token it carries.
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
		got := r.Header.Get(TokenHeader)
		if got == "" {
			got = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		if err := auth.Authorize(r, got); errors.Is(err, ErrForbidden) {
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
	if err := h.store.Put(r.Context(), r.PathValue("hash"), body); err != nil {
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
	Addr  string // base URL, e.g. http://127.0.0.1:7071
	Token string
	HTTP  *http.Client
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
// decides that a shard is unreferenced.
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
	return p.Store.Put(ctx, hash, bytes.NewReader(data))
}

// Get reads a verified shard from the local store.
func (p LocalPeer) Get(ctx context.Context, hash string) ([]byte, error) {
	return p.Store.Get(ctx, hash)
}
