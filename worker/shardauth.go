package worker

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/storage"
)

// shardAuth decides who may use this storage peer's shards. A storage peer
// has no ledger and takes nobody's word: it obeys a write or a delete only
// on a capability a server of the grid signed for this peer, op and shard
// (auth.Capability: the leader's repair and garbage-collection orders, or
// an uploader's put capability for a peer the server placed its blob on).
// A read needs either a certificate of the grid (a worker's or a server's,
// presented on the TLS connection) or a get capability naming the shard (a
// submitter reading its own blob). Tokens open nothing here: a credential
// sent to a stranger's peer could be replayed.
type shardAuth struct {
	self string // this peer's id, as capabilities name it
	grid gridAPI
	now  func() time.Time

	mu sync.Mutex
	ca *x509.Certificate // the cluster CA, once known
}

// caAskTimeout bounds asking the grid for its CA.
const caAskTimeout = 5 * time.Second

var _ storage.Authorizer = (*shardAuth)(nil)

// newShardAuth checks requests for peer self against ca, or, when ca is
// nil (a peer serving without TLS), the CA the grid names when first asked.
func newShardAuth(self string, ca *x509.Certificate, grid gridAPI) *shardAuth {
	return &shardAuth{self: self, ca: ca, grid: grid, now: time.Now}
}

// Authorize implements storage.Authorizer.
func (a *shardAuth) Authorize(r *http.Request, shard string) error {
	ca, err := a.clusterCA(r.Context())
	if err != nil {
		return err
	}
	op := storage.OpOf(r.Method)
	if op == storage.OpGet && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		_, err := auth.Pin{CA: ca}.VerifyClient(r.TLS.PeerCertificates, auth.RoleWorker, auth.RoleServer)
		return err
	}
	tok := r.Header.Get(storage.CapabilityHeader)
	if tok == "" {
		return fmt.Errorf("%w: a shard %s needs a capability the grid signed, in %s", auth.ErrNoCapability, op, storage.CapabilityHeader)
	}
	c, _, err := auth.VerifyCapability(tok, ca, a.now())
	if err != nil {
		return err
	}
	if err := c.Allows(op, a.self, shard); err != nil {
		return fmt.Errorf("%w: %w", storage.ErrForbidden, err)
	}
	return nil
}

// clusterCA is the CA capabilities and certificates must chain to.
func (a *shardAuth) clusterCA(ctx context.Context) (*x509.Certificate, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ca != nil {
		return a.ca, nil
	}
	ctx, cancel := context.WithTimeout(ctx, caAskTimeout)
	defer cancel()
	info, err := a.grid.ServerInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: this peer cannot learn the cluster CA: %v", auth.ErrCapability, err)
	}
	if info.CA == "" {
		return nil, fmt.Errorf("%w: the grid has no CA yet", auth.ErrCapability)
	}
	ca, err := auth.ParseCertPEM([]byte(info.CA))
	if err != nil {
		return nil, fmt.Errorf("%w: the grid's CA: %v", auth.ErrCapability, err)
	}
	a.ca = ca
	return ca, nil
}

// caOf is the CA at the end of cert's chain, or nil.
func caOf(chain [][]byte) *x509.Certificate {
	if len(chain) < 2 {
		return nil
	}
	ca, err := x509.ParseCertificate(chain[len(chain)-1])
	if err != nil || !ca.IsCA {
		return nil
	}
	return ca
}
