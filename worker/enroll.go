package worker

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
	key, err := auth.NewKey()
	if err != nil {
		return nil, err
	}
	csr, err := auth.CertificateRequest(key, name)
	if err != nil {
		return nil, err
	}
	resp, err := c.JoinWorker(ctx, &api.WorkerJoinRequest{Name: name, Cores: cores, CSR: csr})
	if err != nil {
		return nil, fmt.Errorf("join the grid as worker %q: %w", name, err)
	}
	if err := keepCertificate(TLSDir(dataDir), key, resp); err != nil {
		return nil, fmt.Errorf("keep the worker certificate: %w", err)
	}
	cred = &auth.PeerCredential{Worker: resp.Worker, ID: resp.Credential, Secret: resp.Secret}
	if err := cred.Save(dataDir); err != nil {
		return nil, fmt.Errorf("keep the worker credential: %w", err)
	}
	return cred, nil
}

// TLSDir is where a worker keeps its key and certificate.
func TLSDir(dataDir string) string { return filepath.Join(dataDir, "tls") }

// keepCertificate saves the worker's key, the certificate the grid gave it
// and the CA's certificate (nothing, from a grid that gave none).
func keepCertificate(dir string, key *ecdsa.PrivateKey, resp *api.WorkerJoinResponse) error {
	if resp.Cert == "" {
		return nil
	}
	cert, err := auth.ParseCertPEM([]byte(resp.Cert))
	if err != nil {
		return err
	}
	ca, err := auth.ParseCertPEM([]byte(resp.CA))
	if err != nil {
		return err
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return err
	}
	if err := (&auth.Keypair{Cert: cert, Key: key}).Save(dir); err != nil {
		return err
	}
	return auth.SaveCACert(dir, ca)
}

// ShardTLS is the certificate a worker enrolled in dataDir serves shards
// with (nil if the grid gave it none).
func ShardTLS(dataDir string) (*tls.Certificate, error) {
	c, _, err := auth.LoadTLS(TLSDir(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return c, err
}
