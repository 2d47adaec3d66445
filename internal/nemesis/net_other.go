//go:build !linux

package nemesis

import (
	"errors"
	"testing"

	"github.com/peergrid/peergrid/internal/proctest"
)

var errNotLinux = errors.New("network namespaces need Linux")

// Net is a test network of Linux network namespaces: elsewhere NewNet skips.
type Net struct{}

// NewNet skips the test: network namespaces are Linux's.
func NewNet(t testing.TB, names ...string) *Net {
	t.Skipf("nemesis: skipped, %v", errNotLinux)
	return nil
}

func (n *Net) Host(name string) proctest.Host       { return proctest.Host{} }
func (n *Net) Cut(groups ...[]string)               {}
func (n *Net) Drop(from, to string) error           { return errNotLinux }
func (n *Net) CanDrop() error                       { return errNotLinux }
func (n *Net) Slow(names ...string) (string, error) { return "", errNotLinux }
func (n *Net) Heal()                                {}
func (n *Net) Reaches(a, b string) bool             { return false }
