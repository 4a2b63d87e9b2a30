//go:build linux

package parsers

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Test-only helpers for NFLOG tests: two network namespaces, an attacker and
// a victim, joined by a veth pair, and a logging rule in the victim.

const (
	nflogTestVictim4   = "198.51.100.1"
	nflogTestAttacker4 = "198.51.100.2"
	nflogTestVictim6   = "2001:db8:51::1"
	nflogTestAttacker6 = "2001:db8:51::2"
	nflogTestPrefix    = "SENTRY"
)

var nflogTestSeq atomic.Uint32

// nflogTestRequireRoot skips a test that needs root and ip(8), or fails it
// when CI=true, where a silent skip would hide a broken setup.
func nflogTestRequireRoot(t *testing.T) {
	t.Helper()
	skip := t.Skip
	if os.Getenv("CI") == "true" {
		skip = t.Fatal
	}
	if os.Geteuid() != 0 {
		skip("needs root to create network namespaces and bind NFLOG groups")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skip("needs ip(8) to create network namespaces: ", err)
	}
}

type nflogTestNet struct {
	Victim, Attacker     string // namespace names
	VictimIf, AttackerIf string // veth ends
	VictimFd, AttackerFd int    // open namespace fds, closed at cleanup
}

func nflogTestIP(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNFLOGTestNet creates the namespaces and the veth pair; they are removed
// when the test ends, failed or not.
func newNFLOGTestNet(t *testing.T) *nflogTestNet {
	t.Helper()
	nflogTestRequireRoot(t)
	id := fmt.Sprintf("%d-%d", os.Getpid(), nflogTestSeq.Add(1))
	n := &nflogTestNet{
		Victim:     "snt-nfl-" + id + "-b",
		Attacker:   "snt-nfl-" + id + "-a",
		VictimIf:   "sntv" + id,
		AttackerIf: "snta" + id,
	}
	if len(n.VictimIf) > 15 { // IFNAMSIZ-1
		short := fmt.Sprintf("%x", uint32(os.Getpid())<<8|nflogTestSeq.Load()&0xff)
		n.VictimIf, n.AttackerIf = "sntv"+short, "snta"+short
	}
	for _, ns := range []string{n.Victim, n.Attacker} {
		nflogTestIP(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	nflogTestIP(t, "link", "add", n.AttackerIf, "netns", n.Attacker, "type", "veth", "peer", "name", n.VictimIf, "netns", n.Victim)
	for _, side := range []struct{ ns, dev, a4, a6 string }{
		{n.Victim, n.VictimIf, nflogTestVictim4, nflogTestVictim6},
		{n.Attacker, n.AttackerIf, nflogTestAttacker4, nflogTestAttacker6},
	} {
		nflogTestIP(t, "-n", side.ns, "addr", "add", side.a4+"/24", "dev", side.dev)
		nflogTestIP(t, "-n", side.ns, "-6", "addr", "add", side.a6+"/64", "dev", side.dev, "nodad")
		nflogTestIP(t, "-n", side.ns, "link", "set", side.dev, "up")
		nflogTestIP(t, "-n", side.ns, "link", "set", "lo", "up")
	}
	for _, p := range []struct {
		name string
		fd   *int
	}{{n.Victim, &n.VictimFd}, {n.Attacker, &n.AttackerFd}} {
		fd, err := unix.Open("/run/netns/"+p.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("open namespace %s: %v", p.name, err)
		}
		*p.fd = fd
		t.Cleanup(func() { unix.Close(fd) })
	}
	return n
}

// InAttacker runs fn on a thread moved into the attacker namespace, so the
// sockets fn opens are the attacker's. The thread is discarded afterwards.
func (n *nflogTestNet) InAttacker(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(n.AttackerFd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns attacker: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// InstallLogRule creates table inet snttest with an input chain that counts
// and logs every TCP and UDP packet to NFLOG group with prefix "SENTRY".
// qthresh > 0 also sets the rule's queue-threshold.
func (n *nflogTestNet) InstallLogRule(t *testing.T, group, qthresh uint16) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(n.VictimFd))
	if err != nil {
		t.Fatalf("nftables: %v", err)
	}
	tbl := c.AddTable(&nftables.Table{Name: "snttest", Family: nftables.TableFamilyINet})
	policy := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{
		Name: "input", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &policy,
	})
	key := uint32(1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX)
	if qthresh > 0 {
		key |= 1 << unix.NFTA_LOG_QTHRESHOLD
	}
	for _, proto := range []byte{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
		c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Counter{},
			&expr.Log{Key: key, Group: group, QThreshold: qthresh, Data: []byte(nflogTestPrefix)},
		}})
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("nftables: install log rules: %v", err)
	}
}

// RuleCounter returns the packets counted by the log rules so far.
func (n *nflogTestNet) RuleCounter(t *testing.T) uint64 {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(n.VictimFd))
	if err != nil {
		t.Fatalf("nftables: %v", err)
	}
	tbl := &nftables.Table{Name: "snttest", Family: nftables.TableFamilyINet}
	rules, err := c.GetRules(tbl, &nftables.Chain{Name: "input", Table: tbl})
	if err != nil {
		t.Fatalf("nftables: get rules: %v", err)
	}
	var sum uint64
	for _, r := range rules {
		for _, e := range r.Exprs {
			if ctr, ok := e.(*expr.Counter); ok {
				sum += ctr.Packets
			}
		}
	}
	return sum
}
