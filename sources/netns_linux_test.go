//go:build linux

package sources

import (
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/sentry-nflog/sentry-nflog/internal/netnstest"
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

// nflogTestRequireRoot skips a test that needs root and network
// namespaces, or fails it when CI=true.
func nflogTestRequireRoot(t *testing.T) { netnstest.Require(t) }

// nflogTestNet is a victim/attacker pair (internal/netnstest) with the
// namespace fds the NFLOG and nftables sockets are opened in.
type nflogTestNet struct {
	*netnstest.Pair
	VictimFd, AttackerFd int
}

// newNFLOGTestNet creates the namespaces and the veth pair; they are removed
// when the test ends, failed or not.
func newNFLOGTestNet(t *testing.T) *nflogTestNet {
	t.Helper()
	p := netnstest.NewPair(t)
	return &nflogTestNet{Pair: p, VictimFd: p.Victim.Fd(), AttackerFd: p.Attacker.Fd()}
}

// InAttacker runs fn in the attacker namespace, so the sockets fn opens are
// the attacker's.
func (n *nflogTestNet) InAttacker(fn func() error) error { return n.Attacker.Do(fn) }

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
