package nemesis

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/peergrid/peergrid/internal/proctest"
)

// namePrefix starts every namespace, veth and bridge a Net makes, followed
// by the test process's pid: leftovers of a killed run are found by it.
const namePrefix = "pgn"

// subnet holds the hosts' addresses. Each Net is its own set of bridges
// with no address in the test's namespace, so runs side by side can share
// it; 198.18.0.0/15 is the range set aside for network test benches.
const subnet = "198.18.0."

var netSeq atomic.Int64

// Net is a test network: each host is a Linux network namespace with one
// veth, whose other end is a port of a bridge in the test's own namespace.
// Every host starts on the main bridge. Hosts know each other's MAC address
// (permanent neighbour entries), so a cut is silent: packets to a host that
// is not there vanish instead of failing fast on ARP, as across a routed
// network. A Net removes everything it made when the test ends.
type Net struct {
	t      testing.TB
	prefix string // pgn<pid>x<seq>
	hosts  []*host
	byName map[string]*host

	mu       sync.Mutex
	sides    int                // side bridges made: b1..bN (b0 is the main one)
	drops    map[[2]string]bool // (from, to): packets from→to are dropped at to
	slowed   map[string]bool
	slowKind string // "netem" or "htb", once known

	canDrop error // nil if one-way drops work here
}

type host struct {
	proctest.Host
	veth   string // its bridge port, in the test's namespace
	mac    string
	bridge int // 0: the main bridge; i: side bridge i
}

// NewNet makes a network of the named hosts, or skips the test where
// namespaces cannot be made (not Linux, not root, no iproute2).
func NewNet(t testing.TB, names ...string) *Net {
	t.Helper()
	if err := netnsPossible(); err != nil {
		t.Skipf("nemesis: skipped, network namespaces cannot be made here: %v", err)
	}
	staleOnce.Do(func() { removeStale(t) })
	n := &Net{t: t, prefix: fmt.Sprintf("%s%dx%d", namePrefix, os.Getpid(), netSeq.Add(1)),
		byName: map[string]*host{}, drops: map[[2]string]bool{}, slowed: map[string]bool{}}
	t.Cleanup(n.close)
	n.ip("link", "add", n.bridgeName(0), "type", "bridge")
	n.ip("link", "set", n.bridgeName(0), "up")
	for i, name := range names {
		n.addHost(i, name)
	}
	for _, h := range n.hosts {
		for _, o := range n.hosts {
			if o != h {
				n.ip("-n", h.Netns, "neigh", "replace", o.IP, "lladdr", o.mac, "nud", "permanent", "dev", "eth0")
			}
		}
	}
	n.canDrop = n.prepareDrops()
	return n
}

func (n *Net) addHost(i int, name string) {
	if len(n.hosts) >= 200 {
		n.t.Fatal("nemesis: at most 200 hosts")
	}
	h := &host{Host: proctest.Host{Name: name, Netns: n.prefix + "-" + name, IP: subnet + strconv.Itoa(10+i)},
		veth: n.prefix + "v" + strconv.Itoa(i), mac: fmt.Sprintf("02:70:67:00:00:%02x", i+1)}
	if len(h.veth) > 15 {
		n.t.Fatalf("nemesis: interface name %s is too long", h.veth)
	}
	n.hosts = append(n.hosts, h)
	n.byName[name] = h
	n.ip("netns", "add", h.Netns)
	n.ip("link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.Netns)
	n.ip("-n", h.Netns, "link", "set", "eth0", "address", h.mac)
	n.ip("-n", h.Netns, "addr", "add", h.IP+"/24", "dev", "eth0")
	n.ip("-n", h.Netns, "link", "set", "eth0", "up")
	n.ip("-n", h.Netns, "link", "set", "lo", "up")
	n.ip("link", "set", h.veth, "master", n.bridgeName(0), "up")
}

// prepareDrops moves each host's local routing rule behind a slot for drop
// rules, so a rule can discard packets from one host before they are
// delivered (policy routing: `ip rule ... blackhole`, needing no iptables).
func (n *Net) prepareDrops() error {
	for _, h := range n.hosts {
		if _, err := n.tryIP("-n", h.Netns, "rule", "add", "pref", "100", "lookup", "local"); err != nil {
			return fmt.Errorf("policy routing rules: %w", err)
		}
		if _, err := n.tryIP("-n", h.Netns, "rule", "del", "pref", "0"); err != nil {
			return fmt.Errorf("policy routing rules: %w", err)
		}
	}
	return nil
}

// Host returns a host by name.
func (n *Net) Host(name string) proctest.Host {
	h := n.byName[name]
	if h == nil {
		n.t.Fatalf("nemesis: no host %q", name)
	}
	return h.Host
}

func (n *Net) bridgeName(i int) string { return n.prefix + "b" + strconv.Itoa(i) }

// Cut moves each group of hosts onto a bridge of its own: members of a group
// reach each other, and nobody else. Hosts in no group stay where they are.
// Packets to a host that left are lost without a word (no RST, no ICMP).
func (n *Net) Cut(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, g := range groups {
		n.sides++
		br := n.bridgeName(n.sides)
		n.ip("link", "add", br, "type", "bridge")
		n.ip("link", "set", br, "up")
		for _, name := range g {
			h := n.byName[name]
			n.ip("link", "set", h.veth, "master", br)
			h.bridge = n.sides
		}
	}
}

// Drop discards every packet from host from at host to (one way: to's own
// packets still reach from). TCP needs both ways, so connections between
// them stall, each side seeing something different.
func (n *Net) Drop(from, to string) error {
	if n.canDrop != nil {
		return n.canDrop
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	f, h := n.byName[from], n.byName[to]
	n.ip("-n", h.Netns, "rule", "add", "pref", "10", "iif", "eth0", "from", f.IP, "blackhole")
	n.drops[[2]string{from, to}] = true
	return nil
}

// CanDrop says whether one-way drops work here (nil) or why not.
func (n *Net) CanDrop() error { return n.canDrop }

// Slow makes every link of the given hosts slow, both ways: netem delay
// (150ms ± 50ms) where the kernel has it, else an HTB rate limit of
// 1 Mbit/s with a short queue. It returns which ("netem" or "htb").
func (n *Net) Slow(names ...string) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := exec.LookPath("tc"); err != nil {
		return "", fmt.Errorf("no tc: %w", err)
	}
	for _, name := range names {
		h := n.byName[name]
		for _, dev := range [][]string{{"dev", h.veth}, {"-n", h.Netns, "dev", "eth0"}} {
			if err := n.slowDev(dev); err != nil {
				return "", err
			}
		}
		n.slowed[name] = true
	}
	return n.slowKind, nil
}

func (n *Net) slowDev(dev []string) error {
	// tc wants -n before the subcommand, dev after it.
	var ns, at []string
	if dev[0] == "-n" {
		ns, at = dev[:2], dev[2:]
	} else {
		at = dev
	}
	cmd := func(obj, op string, rest ...string) error {
		args := append(append(append(append([]string{}, ns...), obj, op), at...), rest...)
		out, err := n.tryTC(args...)
		if err != nil {
			return fmt.Errorf("tc %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if n.slowKind != "htb" {
		err := cmd("qdisc", "replace", "root", "netem", "delay", "150ms", "50ms")
		if err == nil {
			n.slowKind = "netem"
			return nil
		}
		if n.slowKind == "netem" {
			return err
		}
	}
	// No netem: a thin link, 1 Mbit/s with a short drop-tail queue (at most
	// a quarter second of queueing: slow and lossy, not a black hole).
	if err := cmd("qdisc", "replace", "root", "handle", "1:", "htb", "default", "1"); err != nil {
		return fmt.Errorf("neither netem nor htb: %w", err)
	}
	if err := cmd("class", "replace", "parent", "1:", "classid", "1:1", "htb", "rate", "1mbit", "ceil", "1mbit"); err != nil {
		return err
	}
	if err := cmd("qdisc", "replace", "parent", "1:1", "handle", "10:", "bfifo", "limit", "32kb"); err != nil {
		return err
	}
	n.slowKind = "htb"
	return nil
}

// Heal puts every host back on the main bridge and removes every drop and
// slow link.
func (n *Net) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range n.hosts {
		if h.bridge != 0 {
			n.ip("link", "set", h.veth, "master", n.bridgeName(0))
			h.bridge = 0
		}
	}
	for i := 1; i <= n.sides; i++ {
		n.tryIP("link", "del", n.bridgeName(i))
	}
	n.sides = 0
	for d := range n.drops {
		n.ip("-n", n.byName[d[1]].Netns, "rule", "del", "pref", "10", "iif", "eth0", "from", n.byName[d[0]].IP, "blackhole")
	}
	n.drops = map[[2]string]bool{}
	for name := range n.slowed {
		h := n.byName[name]
		n.tryTC("qdisc", "del", "dev", h.veth, "root")
		n.tryTC("-n", h.Netns, "qdisc", "del", "dev", "eth0", "root")
	}
	n.slowed = map[string]bool{}
}

// Reaches says whether a and b can talk now: on one bridge, no drop either
// way (TCP needs both).
func (n *Net) Reaches(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.byName[a].bridge == n.byName[b].bridge && !n.drops[[2]string{a, b}] && !n.drops[[2]string{b, a}]
}

func (n *Net) close() {
	for _, h := range n.hosts {
		// Deleting the veth at once: a namespace is torn down by the
		// kernel in the background, and only once no socket holds it.
		n.tryIP("link", "del", h.veth)
		n.tryIP("netns", "del", h.Netns)
	}
	for i := 0; i <= n.sides; i++ {
		n.tryIP("link", "del", n.bridgeName(i))
	}
}

func (n *Net) ip(args ...string) {
	n.t.Helper()
	if out, err := n.tryIP(args...); err != nil {
		n.t.Fatalf("nemesis: ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (n *Net) tryIP(args ...string) (string, error) { return run("ip", args...) }
func (n *Net) tryTC(args ...string) (string, error) { return run("tc", args...) }

func run(prog string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(prog, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// netnsPossible tries, once per test process, to make and delete a
// namespace.
var netnsPossible = sync.OnceValue(func() error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("no ip command (iproute2): %w", err)
	}
	probe := fmt.Sprintf("%s%dprobe", namePrefix, os.Getpid())
	if out, err := run("ip", "netns", "add", probe); err != nil {
		return fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	run("ip", "netns", "del", probe)
	return nil
})

var staleOnce sync.Once

// removeStale deletes namespaces and links with our prefix whose test
// process is gone (a run killed before its cleanups).
func removeStale(t testing.TB) {
	if out, err := run("ip", "netns", "list"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && staleName(f[0]) {
				t.Logf("nemesis: removing namespace %s left by a dead run", f[0])
				run("ip", "netns", "del", f[0])
			}
		}
	}
	if out, err := run("ip", "-o", "link", "show"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if staleName(name) {
				t.Logf("nemesis: removing link %s left by a dead run", name)
				run("ip", "link", "del", name)
			}
		}
	}
}

// staleName: one of our names whose pid is not a live process.
func staleName(name string) bool {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return false
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	pid, err := strconv.Atoi(rest[:end])
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return syscall.Kill(pid, 0) == syscall.ESRCH
}
