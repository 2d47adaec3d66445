package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
)

// Enroll returns the worker's own credential: the one kept in dataDir, or,
// on first start, a new one the grid gives in exchange for the join token
// (or an operator's) that c carries, for id name (empty: the grid picks).
// From then on the join token is no longer needed. A data dir that already
// belongs to another id than name is refused.
func Enroll(ctx context.Context, c *client.Client, dataDir, name string, cores int) (*auth.PeerCredential, error) {
	cred, err := auth.LoadPeerCredential(dataDir)
	if err == nil {
		if name != "" && name != cred.Worker {
			return nil, fmt.Errorf("this data dir belongs to worker %s, not %s: use another --data-dir, or drop --name", cred.Worker, name)
		}
		return cred, nil
	}
	if !errors.Is(err, auth.ErrNoPeerCredential) {
		return nil, err
	}
	resp, err := c.JoinWorker(ctx, &api.WorkerJoinRequest{Name: name, Cores: cores})
	if err != nil {
		return nil, fmt.Errorf("join the grid as worker %q: %w", name, err)
	}
	cred = &auth.PeerCredential{Worker: resp.Worker, ID: resp.Credential, Secret: resp.Secret}
	if err := cred.Save(dataDir); err != nil {
		return nil, fmt.Errorf("keep the worker credential: %w", err)
	}
	return cred, nil
}
