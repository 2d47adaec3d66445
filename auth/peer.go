package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// PeerCredential is a worker's own credential: the id the grid gave it and
// the secret it authenticates with. A worker gets it once, in exchange for
// a join token, and keeps it in its data dir (mode 0600).
type PeerCredential struct {
	Worker string `json:"worker"`
	ID     string `json:"credential_id"`
	Secret string `json:"secret"`
}

// peerCredentialFile is where a worker keeps its credential.
const peerCredentialFile = "credential.json"

// ErrNoPeerCredential is returned when a data dir holds no credential yet.
var ErrNoPeerCredential = errors.New("no worker credential yet")

// LoadPeerCredential reads the credential kept in dir.
func LoadPeerCredential(dir string) (*PeerCredential, error) {
	b, err := os.ReadFile(filepath.Join(dir, peerCredentialFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoPeerCredential
	}
	if err != nil {
		return nil, err
	}
	var c PeerCredential
	if err := json.Unmarshal(b, &c); err != nil || c.Worker == "" || c.Secret == "" {
		return nil, fmt.Errorf("worker credential %s is damaged (%v): remove it and join again with a join token", filepath.Join(dir, peerCredentialFile), err)
	}
	return &c, nil
}

// Save keeps the credential in dir, readable by its owner only. It is
// written to a temporary file renamed into place, so a crash leaves the old
// credential or the new, never half of one.
func (c *PeerCredential) Save(dir string) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return writeSecret(dir, peerCredentialFile, b)
}
