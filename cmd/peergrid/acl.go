package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/auth"
)

func (m *Main) runACL(ctx context.Context, args []string) (int, error) {
	if len(args) >= 2 && args[0] == "token" {
		switch args[1] {
		case "create":
			return m.aclTokenCreate(ctx, args[2:])
		case "list":
			return m.aclTokenList(ctx, args[2:])
		case "revoke":
			return m.aclTokenRevoke(ctx, args[2:])
		}
	}
	fmt.Fprintln(m.Stderr, `Usage: peergrid acl token <command>

  create --role operator|submitter|worker [--name N] [--ttl 24h] [--uses N] [--max-cores N]
         [--max-tasks N] [--max-tasks-in-flight N] [--max-jobs-queued N]
         [--max-inline-bytes SIZE] [--max-pinned-bytes SIZE] [--max-priority P] [--max-timeout D] [--json]
                  make a credential; its secret is printed once and kept nowhere
  list [--json]   every credential: id, name, role, created, expires, uses left (never the secret),
                  then each one's quotas and what it uses of them
  revoke ID       revoke a credential at once, on every server

Quotas (operator and submitter credentials; each defaults to the role's,
operators unlimited): --max-tasks bounds one job's tasks, --max-tasks-in-flight
the unfinished tasks of all its jobs, --max-jobs-queued its unfinished jobs,
--max-inline-bytes the blobs it keeps inline in the ledger, --max-pinned-bytes
the blobs it pins, --max-priority its jobs' priority (-100..100), --max-timeout
their timeout (at most 720h). Counts and sizes take "unlimited".

A worker token is a join token: a volunteer's agent exchanges it once for
its own credential. Operator tokens may do everything; a submitter's sees
and changes only its own jobs and blobs.`)
	return exitError, errUsage
}

func (m *Main) aclTokenCreate(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("acl token create", "acl token create --role operator|submitter|worker [flags]")
	cf := m.addClientFlags(fs, true)
	var req api.CreateTokenRequest
	fs.StringVar(&req.Role, "role", "", "operator, submitter or worker (a join token for volunteers)")
	fs.StringVar(&req.Name, "name", "", "a name to recognise the credential by")
	fs.DurationVar(&req.TTL, "ttl", 0, "how long the credential lives (default: until revoked)")
	fs.IntVar(&req.Uses, "uses", 0, "worker: how many workers the token may admit (default: any number)")
	fs.IntVar(&req.MaxCores, "max-cores", 0, "worker: the most cores a worker joined with it may offer (default: no cap)")
	addQuotaFlags(fs, &req.Quotas)
	pos, err := parse(fs, args)
	if err != nil {
		return exitError, err
	}
	if len(pos) != 0 || req.Role == "" {
		fs.Usage()
		return exitError, fmt.Errorf("%w: give --role operator, submitter or worker", errUsage)
	}
	c := m.client(cf)
	tok, err := c.CreateToken(ctx, &req)
	if err != nil {
		return exitError, err
	}
	if cf.json {
		return exitOK, m.printJSON(struct {
			ID      string      `json:"id"`
			Secret  string      `json:"secret"`
			Role    string      `json:"role"`
			Name    string      `json:"name,omitempty"`
			Expires *time.Time  `json:"expires,omitempty"`
			Quotas  *api.Quotas `json:"quotas,omitempty"`
		}{tok.ID, tok.Secret, tok.Role, tok.Name, tok.Expires, tok.Quotas})
	}
	fmt.Fprintf(m.Stdout, "created %s credential %s; its secret is shown only now:\n%s\n", tok.Role, tok.ID, tok.Secret)
	if tok.Role == api.CredWorker {
		fmt.Fprintf(m.Stdout, "\nGive a volunteer this command (they may add --data-dir DIR and --cores N):\n%s\n", joinLine(c.Addrs(), tok.Secret, m.caFingerprint(cf)))
	}
	return exitOK, nil
}

// joinLine is the command a volunteer runs to join the grid: the servers,
// the join token and the CA to trust, whose fingerprint the volunteer must
// get from someone they trust (this line), not from the network. The token
// goes in the environment, not on the command line, where ps shows it.
func joinLine(servers []string, secret, caFingerprint string) string {
	return fmt.Sprintf("PEERGRID_TOKEN=%s peergrid agent --worker --servers %s --ca-fingerprint %s", secret, strings.Join(servers, ","), caFingerprint)
}

// caFingerprint is the fingerprint of the CA this command trusted (the call
// that got here succeeded, so the pin is good).
func (m *Main) caFingerprint(cf *clientFlags) string {
	pin, _ := m.pin(cf)
	if pin.Fingerprint != "" {
		return pin.Fingerprint
	}
	return auth.Fingerprint(pin.CA)
}

func (m *Main) aclTokenList(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("acl token list", "acl token list [--json]")
	cf := m.addClientFlags(fs, true)
	if _, err := parse(fs, args); err != nil {
		return exitError, err
	}
	toks, err := m.client(cf).Tokens(ctx)
	if err != nil {
		return exitError, err
	}
	if cf.json {
		return exitOK, m.printJSON(toks)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tPEER\tCREATED\tEXPIRES\tUSES LEFT\tREVOKED")
	for _, t := range toks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, termSafe(orDash(t.Name)), t.Role, termSafe(orDash(t.Peer)), t.Created.Format(time.DateTime),
			timeOrDash(t.Expires), usesOrDash(t.UsesLeft), timeOrDash(t.Revoked))
	}
	if err := tw.Flush(); err != nil {
		return exitError, err
	}
	return exitOK, m.printQuotas(toks)
}

// printQuotas lists each credential's quotas, with what it uses of those
// that count use (use/limit).
func (m *Main) printQuotas(toks []api.TokenInfo) error {
	fmt.Fprintln(m.Stdout, "\nQuotas (in use/limit):")
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTASKS/JOB\tTASKS IN FLIGHT\tJOBS QUEUED\tINLINE BYTES\tPINNED BYTES\tMAX PRIORITY\tMAX TIMEOUT")
	for _, t := range toks {
		q, u := t.Quotas, t.Usage
		if q == nil {
			continue
		}
		if u == nil {
			u = &api.QuotaUsage{}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%s\t%d/%s\t%s/%s\t%s/%s\t%d\t%s\n", t.ID, api.QuotaText(q.MaxTasksPerJob),
			u.TasksInFlight, api.QuotaText(q.MaxTasksInFlight), u.JobsQueued, api.QuotaText(q.MaxJobsQueued),
			sizeText(u.InlineBytes), sizeQuota(q.MaxInlineBytes), sizeText(u.PinnedBytes), sizeQuota(q.MaxPinnedBytes),
			q.MaxPriority, q.MaxTimeout)
	}
	return tw.Flush()
}

func (m *Main) aclTokenRevoke(ctx context.Context, args []string) (int, error) {
	fs := m.newFlagSet("acl token revoke", "acl token revoke ID")
	cf := m.addClientFlags(fs, true)
	id, err := oneArg(fs, args)
	if err != nil {
		return exitError, err
	}
	tok, err := m.client(cf).RevokeToken(ctx, id)
	if err != nil {
		return exitError, err
	}
	if cf.json {
		return exitOK, m.printJSON(tok)
	}
	fmt.Fprintf(m.Stdout, "revoked %s credential %s\n", tok.Role, tok.ID)
	return exitOK, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.DateTime)
}

func usesOrDash(n *int) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}
