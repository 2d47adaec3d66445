package main

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/examples"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// createToken runs acl token create --json with extra flags and returns the
// new credential's id and secret.
func (c *cli) createToken(flags ...string) (id, secret string) {
	c.t.Helper()
	code, out, errOut := c.run(append([]string{"acl", "token", "create", "--json"}, flags...)...)
	var tok struct{ ID, Secret string }
	if code != 0 || json.Unmarshal([]byte(out), &tok) != nil || tok.Secret == "" {
		c.t.Fatalf("acl token create %v: exit %d %q %q", flags, code, out, errOut)
	}
	return tok.ID, tok.Secret
}

// TestCLI_ACLQuotasAreEnforced: quotas set with acl token create --max-...
// show in acl token list and bound what the credential may submit, each
// refusal naming the quota, its value and the use; a submitter with the
// default quotas cannot queue a 10M-task job or raise its priority; a
// quota out of range is refused at create.
func TestCLI_ACLQuotasAreEnforced(t *testing.T) {
	c := newCLI(t)
	id, secret := c.createToken("--role", "submitter", "--name", "bounded", "--max-tasks", "5",
		"--max-priority", "10", "--max-timeout", "48h", "--max-inline-bytes", "1MiB", "--max-tasks-in-flight", "unlimited")
	code, out, _ := c.run("acl", "token", "list")
	row := lineWith(out, id+"  5 ")
	if code != 0 || !strings.Contains(row, "0/unlimited") || !strings.Contains(row, "/1MiB") || !strings.Contains(row, "48h0m0s") {
		t.Fatalf("acl token list does not show %s's quotas (row %q):\n%s", id, row, out)
	}

	t.Logf("acl token list:\n%s", out)
	submit := func(token, toml string) (int, string) {
		job := writeJob(t, examples.Tiny(), "name = \"q\"\nmodule = \"m.wasm\"\nengine = \"wazero\"\n"+toml)
		code, _, errOut := c.run("job", "submit", job, "--token", token)
		return code, errOut
	}
	if code, errOut := submit(secret, "tasks = 6\n"); code == 0 || !strings.Contains(errOut, "credential "+id+"'s max_tasks_per_job is 5; the job has 6 tasks") || !strings.Contains(errOut, "acl token create --max-") {
		t.Fatalf("6 tasks past --max-tasks 5: exit %d %q", code, errOut)
	}
	if code, errOut := submit(secret, "tasks = 5\npriority = 10\ntimeout = \"36h\"\n"); code != 0 {
		t.Fatalf("a job within every quota: exit %d %q", code, errOut)
	}
	if code, errOut := submit(secret, "tasks = 1\npriority = 11\n"); code == 0 || !strings.Contains(errOut, "max_priority is 10; the job asks for priority 11") {
		t.Fatalf("priority past --max-priority: exit %d %q", code, errOut)
	}

	_, plain := c.createToken("--role", "submitter", "--name", "plain")
	code, errOut := submit(plain, "tasks = 10000000\n")
	t.Logf("a 10M-task job from a default submitter: %s", errOut)
	if code == 0 || !strings.Contains(errOut, "max_tasks_per_job is 100000; the job has 10000000 tasks") {
		t.Fatalf("a 10M-task job from a default submitter: exit %d %q", code, errOut)
	}
	if code, errOut := submit(plain, "tasks = 1\npriority = 1\n"); code == 0 || !strings.Contains(errOut, "max_priority is 0") {
		t.Fatalf("priority 1 from a default submitter: exit %d %q", code, errOut)
	}
	if code, errOut := submit(plain, "tasks = 1\ntimeout = \"25h\"\n"); code == 0 || !strings.Contains(errOut, "max_timeout is 24h0m0s") {
		t.Fatalf("a 25h timeout from a default submitter: exit %d %q", code, errOut)
	}

	if code, _, errOut := c.run("acl", "token", "create", "--role", "submitter", "--max-priority", "101"); code == 0 || !strings.Contains(errOut, "max_priority = 101, want -100..100") {
		t.Fatalf("--max-priority 101: exit %d %q", code, errOut)
	}
	if code, _, errOut := c.run("acl", "token", "create", "--role", "worker", "--max-tasks", "3"); code == 0 || !strings.Contains(errOut, "not join tokens") {
		t.Fatalf("quotas on a join token: exit %d %q", code, errOut)
	}
}

func lineWith(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestAPI_JobFieldsOutOfRangeAreRefused sends what the job-file parser
// would refuse straight to the API, as a hostile client would: the
// timeout that overflowed lease expiries, priorities and retries past
// their ranges. Each is refused with 400 naming the field and its range,
// and no job is made.
func TestAPI_JobFieldsOutOfRangeAreRefused(t *testing.T) {
	c := newCLI(t)
	cl := client.New(c.grid.Addr, c.grid.Token)
	cl.Pin(auth.Pin{Fingerprint: c.grid.CAFingerprint})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	module := examples.Tiny()
	if err := cl.PutBlob(ctx, storage.Hash(module), module); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		set  func(*tasks.JobSpec)
		want string
	}{
		{"overflowing timeout", func(s *tasks.JobSpec) { s.Timeout = math.MaxInt64 }, "timeout = 2562047h47m16.854775807s, want more than 0 and at most 720h0m0s"},
		{"priority", func(s *tasks.JobSpec) { s.Priority = math.MaxInt64 }, "priority = 9223372036854775807, want -100..100"},
		{"negative priority", func(s *tasks.JobSpec) { s.Priority = -101 }, "priority = -101, want -100..100"},
		{"retries", func(s *tasks.JobSpec) { s.Retries = 101 }, "retries = 101, want 0..100"},
	}
	for _, tc := range cases {
		spec := tasks.JobSpec{Name: "bad", ModuleHash: storage.Hash(module), Tasks: 1, Timeout: time.Minute,
			Memory: tasks.DefaultMemory, MaxOutput: tasks.DefaultMaxOutput}
		tc.set(&spec)
		_, err := cl.Submit(ctx, &spec)
		var se *client.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusBadRequest || !strings.Contains(se.Message, tc.want) {
			t.Errorf("%s: %v, want 400 saying %q", tc.name, err, tc.want)
		}
	}
	if jobs, err := cl.Jobs(ctx); err != nil || len(jobs) != 0 {
		t.Fatalf("jobs after refused submits: %v %v", jobs, err)
	}

}
