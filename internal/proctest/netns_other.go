//go:build !linux

package proctest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
)

var errNoNetns = errors.New("proctest: network namespaces need Linux")

// StartIn skips the test unless ns is empty: network namespaces are Linux's.
func StartIn(t testing.TB, ns, name string, args ...string) *Proc {
	t.Helper()
	if ns != "" {
		t.Skip(errNoNetns)
	}
	return Start(t, name, args...)
}

// RunIn skips the test unless ns is empty.
func RunIn(ctx context.Context, t testing.TB, ns string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	if ns != "" {
		t.Skip(errNoNetns)
	}
	return Run(ctx, t, args...)
}

// DialIn returns dial for an empty ns; any other fails every dial.
func DialIn(ns string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if ns == "" {
		return dial
	}
	return func(context.Context, string, string) (net.Conn, error) { return nil, errNoNetns }
}

// InNetns runs fn for an empty ns; any other fails.
func InNetns(ns string, fn func() error) error {
	if ns != "" {
		return errNoNetns
	}
	return fn()
}

// TransportIn fails unless ns is empty.
func TransportIn(ns string, base http.RoundTripper) (*http.Transport, error) {
	if ns != "" {
		return nil, errNoNetns
	}
	if base == nil {
		base = http.DefaultTransport
	}
	ht, ok := base.(*http.Transport)
	if !ok {
		return nil, errors.New("proctest: want an *http.Transport")
	}
	return ht.Clone(), nil
}
