package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/peergrid/peergrid/api"
)

// CreateToken creates a credential (operator only); its secret is in the
// answer and nowhere else.
func (c *Client) CreateToken(ctx context.Context, req *api.CreateTokenRequest) (*api.CreateTokenResponse, error) {
	var out api.CreateTokenResponse
	return &out, c.doJSON(ctx, http.MethodPost, "/v1/acl/tokens", req, &out)
}

// Tokens lists every credential, without secrets (operator only).
func (c *Client) Tokens(ctx context.Context) ([]api.TokenInfo, error) {
	var out []api.TokenInfo
	return out, c.doJSON(ctx, http.MethodGet, "/v1/acl/tokens", nil, &out)
}

// RevokeToken revokes a credential by id (operator only).
func (c *Client) RevokeToken(ctx context.Context, id string) (*api.TokenInfo, error) {
	var out api.TokenInfo
	return &out, c.doJSON(ctx, http.MethodDelete, "/v1/acl/tokens/"+url.PathEscape(id), nil, &out)
}

// RevokePeer cuts a worker off: its credentials revoked, marked down, its
// leases requeued (operator only).
func (c *Client) RevokePeer(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodPost, "/v1/peers/"+url.PathEscape(id)+"/revoke", nil, nil)
}

// JoinWorker exchanges the client's join token for a worker's own
// credential, asking for id name (empty: the server picks one).
func (c *Client) JoinWorker(ctx context.Context, req *api.WorkerJoinRequest) (*api.WorkerJoinResponse, error) {
	var out api.WorkerJoinResponse
	return &out, c.doJSON(ctx, http.MethodPost, "/v1/join", req, &out)
}

// Certify asks a server to certify a server joining the grid (operator
// only); see scheduler/server.
func (c *Client) Certify(ctx context.Context, req *api.CertifyRequest) (*api.CertifyResponse, error) {
	var out api.CertifyResponse
	return &out, c.doJSON(ctx, http.MethodPost, "/v1/cluster/certify", req, &out)
}

// TrustPeer clears a distrusted worker's strikes so it is leased work
// again, and checks its next results as a new worker's (operator only).
func (c *Client) TrustPeer(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodPost, "/v1/peers/"+url.PathEscape(id)+"/trust", nil, nil)
}
