package nemesis

// This file is the suite's one use of the Go client (client.Client): every
// client call of the tests goes through gridClient, and the raw reads of one
// server's own view through staleGet.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/internal/proctest"
	"github.com/peergrid/peergrid/tasks"
)

// gridClient is the Go client as a program uses it, dialling from inside a
// host's network namespace. Its HTTP client is what api.NewClient makes
// (timeouts included); only the dialer is moved into the namespace.
type gridClient struct {
	c *client.Client
}

// newClient talks to the given server addresses (https://ip:port) from
// network namespace ns, trusting the CA pinned, failing over between them
// in order.
func newClient(ns string, pin auth.Pin, addrs ...string) *gridClient {
	c := client.New(strings.Join(addrs, ","), proctest.Token)
	c.Pin(pin)
	proctest.MoveClient(ns, c)
	return &gridClient{c: c}
}

func (g *gridClient) PutBlob(ctx context.Context, hash string, data []byte) error {
	return g.c.PutBlob(ctx, hash, data)
}

func (g *gridClient) GetBlob(ctx context.Context, hash string) ([]byte, error) {
	return g.c.GetBlob(ctx, hash)
}

func (g *gridClient) Submit(ctx context.Context, spec *tasks.JobSpec) (string, error) {
	return g.c.Submit(ctx, spec)
}

func (g *gridClient) JobSummary(ctx context.Context, id string) (*api.JobSummary, error) {
	return g.c.JobSummary(ctx, id)
}

func (g *gridClient) Cancel(ctx context.Context, id string) error { return g.c.Cancel(ctx, id) }

func (g *gridClient) Results(ctx context.Context, id string) ([]api.TaskResult, error) {
	return g.c.Results(ctx, id)
}

func (g *gridClient) Jobs(ctx context.Context) ([]api.JobSummary, error) { return g.c.Jobs(ctx) }

func (g *gridClient) Peers(ctx context.Context) ([]api.Peer, error) { return g.c.Peers(ctx) }

// staleGet reads path?stale=true from one server, dialling from inside its
// own namespace: that server's own applied view, reachable whatever the
// partition (not while it is paused: ctx bounds the wait).
func staleGet(ctx context.Context, s *proctest.Server, path string, out any) error {
	tr, err := proctest.TransportIn(s.Host.Netns, nil)
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	pin, err := auth.PinOf(s.DataPath("server", "tls", "ca.pem"), "") // the CA this server holds
	if err != nil {
		return err
	}
	tr.TLSClientConfig = auth.ClientTLS(auth.StaticPin(pin), []string{auth.RoleServer}, nil)
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.HTTPAddr+path+sep+"stale=true", nil)
	if err != nil {
		return err
	}
	req.Header.Set(api.TokenHeader, proctest.Token)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s %s: HTTP %d: %s", s.ID, path, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
