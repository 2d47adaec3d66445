package proctest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// StartIn runs the peergrid binary inside the network namespace ns (as `ip
// netns` names it) through `ip netns exec`, which execs the binary in place:
// the Proc is the agent itself (same pid and process group, and the
// parent-death signal survives the exec), so Kill9, Pause and cleanup reach
// it exactly as with Start. An empty ns is Start.
func StartIn(t testing.TB, ns, name string, args ...string) *Proc {
	t.Helper()
	if ns == "" {
		return Start(t, name, args...)
	}
	return StartCommand(t, name, ipCommand(t), append([]string{"netns", "exec", ns, Binary(t)}, args...)...)
}

// RunIn runs a CLI command to completion inside the network namespace ns,
// as Run does on the test's own network: calls measured as a user meets them
// on that machine.
func RunIn(ctx context.Context, t testing.TB, ns string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	if ns == "" {
		return Run(ctx, t, args...)
	}
	cmd := exec.CommandContext(ctx, ipCommand(t), append([]string{"netns", "exec", ns, Binary(t)}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = sysProcAttr()
	if err := spawn(cmd); err != nil {
		return "", "", err
	}
	err = cmd.Wait()
	return out.String(), errb.String(), err
}

func ipCommand(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("ip")
	if err != nil {
		t.Skipf("proctest: network namespaces need the ip command (iproute2): %v", err)
	}
	return p
}

// DialIn wraps dial so that every connection it makes is opened inside the
// network namespace ns: the socket is created on an OS thread that entered
// ns and then exits with it (a socket keeps the namespace it was made in, so
// the connection is used from any goroutine afterwards). dial runs unchanged
// there, with its own timeouts. An empty ns returns dial itself.
func DialIn(ns string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if ns == "" {
		return dial
	}
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = InNetns(ns, func() error {
			c, err = dial(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// InNetns runs fn on an OS thread inside the network namespace ns and
// waits for it: the sockets fn opens belong to ns for good, wherever they
// are used afterwards. The thread is discarded after fn.
func InNetns(ns string, fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		// Never unlocked: the thread is in another namespace now, so it
		// ends with this goroutine instead of going back to the pool.
		runtime.LockOSThread()
		if err := enterNetns(ns); err != nil {
			ch <- err
			return
		}
		ch <- fn()
	}()
	return <-ch
}

// TransportIn adapts an HTTP transport so that it connects from inside the
// network namespace ns: a clone of base (http.DefaultTransport when nil)
// whose dialer, timeouts and all, runs inside ns.
func TransportIn(ns string, base http.RoundTripper) (*http.Transport, error) {
	if base == nil {
		base = http.DefaultTransport
	}
	ht, ok := base.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("proctest: cannot move a %T into a network namespace (want *http.Transport)", base)
	}
	tr := ht.Clone()
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	tr.DialContext = DialIn(ns, dial)
	return tr, nil
}

func enterNetns(ns string) error {
	f, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", ns, err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter network namespace %s: %w", ns, err)
	}
	return nil
}
