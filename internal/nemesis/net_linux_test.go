package nemesis

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/peergrid/peergrid/internal/proctest"
)

// TestNet_FaultsAreSilentAndHeal checks the nemeses' network tools
// themselves: a cut host and a one-way drop leave a connect unanswered
// (no refusal, no unreachable error: the packets vanish), a slow link
// still carries traffic, and Heal brings everything back.
func TestNet_FaultsAreSilentAndHeal(t *testing.T) {
	n := NewNet(t, "a", "b")
	b := n.Host("b")
	var ln net.Listener
	if err := proctest.InNetns(b.Netns, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(b.IP, "9000"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dial := func() error {
		d := proctest.DialIn(n.Host("a").Netns, (&net.Dialer{Timeout: 1500 * time.Millisecond}).DialContext)
		c, err := d(context.Background(), "tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err
	}
	silent := func(what string) {
		t.Helper()
		err := dial()
		var ne net.Error
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("%s: connect to b ended with %v, want a timeout (packets silently lost)", what, err)
		}
	}
	reachable := func(what string) {
		t.Helper()
		if err := dial(); err != nil {
			t.Fatalf("%s: connect to b: %v", what, err)
		}
	}

	reachable("before any fault")
	n.Cut([]string{"b"})
	if n.Reaches("a", "b") {
		t.Fatal("Reaches says a reaches b across a cut")
	}
	silent("b cut off")
	n.Heal()
	reachable("after healing the cut")

	if err := n.CanDrop(); err != nil {
		t.Logf("one-way drops do not work here: %v", err)
	} else {
		if err := n.Drop("a", "b"); err != nil {
			t.Fatal(err)
		}
		silent("a's packets dropped at b")
		n.Heal()
		reachable("after healing the drop")
	}

	kind, err := n.Slow("a", "b")
	if err != nil {
		t.Logf("slow links do not work here: %v", err)
	} else {
		t.Logf("slow links by %s", kind)
		reachable("slow links")
	}
	n.Heal()
	reachable("after healing everything")
}

// TestNet_LeavesNothingBehind: a Net's namespaces and links are gone once
// its test ends.
func TestNet_LeavesNothingBehind(t *testing.T) {
	var prefix string
	t.Run("net", func(t *testing.T) {
		n := NewNet(t, "a")
		prefix = n.prefix
	})
	if prefix == "" {
		t.Skip("no network namespaces here")
	}
	if out, _ := run("ip", "netns", "list"); strings.Contains(out, prefix) {
		t.Fatalf("namespaces left behind:\n%s", out)
	}
	if out, _ := run("ip", "-o", "link", "show"); strings.Contains(out, prefix) {
		t.Fatalf("links left behind:\n%s", out)
	}
}
