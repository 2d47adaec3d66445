package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/tasks"
)

// addQuotaFlags adds acl token create's quota flags; a flag not given
// leaves its field nil: the role's default.
func addQuotaFlags(fs *flag.FlagSet, q *api.QuotaOverrides) {
	d := api.SubmitterQuotas
	fs.Var(&countFlag{&q.MaxTasksPerJob, false}, "max-tasks",
		fmt.Sprintf("the most tasks one job may have, `N` or \"unlimited\" (submitters: %d)", d.MaxTasksPerJob))
	fs.Var(&countFlag{&q.MaxTasksInFlight, false}, "max-tasks-in-flight",
		fmt.Sprintf("the most unfinished tasks of all its jobs, `N` or \"unlimited\" (submitters: %d)", d.MaxTasksInFlight))
	fs.Var(&countFlag{&q.MaxJobsQueued, false}, "max-jobs-queued",
		fmt.Sprintf("the most unfinished jobs, `N` or \"unlimited\" (submitters: %d)", d.MaxJobsQueued))
	fs.Var(&countFlag{&q.MaxInlineBytes, true}, "max-inline-bytes",
		fmt.Sprintf("the most bytes of blobs kept inline in the ledger, a `SIZE` such as 64MiB or \"unlimited\" (submitters: %s)", sizeText(d.MaxInlineBytes)))
	fs.Var(&countFlag{&q.MaxPinnedBytes, true}, "max-pinned-bytes",
		fmt.Sprintf("the most bytes of pinned blobs, a `SIZE` such as 10GiB or \"unlimited\" (submitters: %s)", sizeText(d.MaxPinnedBytes)))
	fs.Func("max-priority", fmt.Sprintf("the highest `priority` its jobs may have, %d..%d (submitters: %d)", tasks.MinPriority, tasks.MaxPriority, d.MaxPriority), func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("want an integer %d..%d", tasks.MinPriority, tasks.MaxPriority)
		}
		q.MaxPriority = &n
		return nil
	})
	fs.Func("max-timeout", fmt.Sprintf("the longest `timeout` its jobs may have, at most %v (submitters: %v)", tasks.TimeoutLimit, d.MaxTimeout), func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf(`want a duration such as "48h"`)
		}
		q.MaxTimeout = &d
		return nil
	})
}

// countFlag is a count or byte-size quota: a number (with a unit for
// sizes, such as "10GiB"), or "unlimited".
type countFlag struct {
	dst  **int64
	size bool
}

func (f *countFlag) String() string {
	if f.dst == nil || *f.dst == nil {
		return ""
	}
	return api.QuotaText(**f.dst)
}

func (f *countFlag) Set(v string) error {
	n, err := parseQuota(v, f.size)
	if err != nil {
		return err
	}
	*f.dst = &n
	return nil
}

func parseQuota(v string, size bool) (int64, error) {
	if strings.EqualFold(v, "unlimited") {
		return api.Unlimited, nil
	}
	if size {
		n, err := tasks.ParseSize(v)
		if err != nil || n > 1<<62 {
			return 0, fmt.Errorf(`want a size such as "10GiB", or "unlimited"`)
		}
		return int64(n), nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf(`want a number of 0 or more, or "unlimited"`)
	}
	return n, nil
}

// sizeText is a byte count for people: 0B, 512B, 64MiB, 1.5GiB.
func sizeText(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d%s", int64(f), units[i])
	}
	return fmt.Sprintf("%.1f%s", f, units[i])
}

func sizeQuota(n int64) string {
	if n == api.Unlimited {
		return "unlimited"
	}
	return sizeText(n)
}
