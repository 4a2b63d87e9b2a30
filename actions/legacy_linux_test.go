//go:build linux

package actions

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// TestIPv4PrefixChange restarts with a shorter, then the full prefix:
// Apply rewrites the rule each time, and on shortening merges the /32
// elements of a /24 into its network address with the longest time left.
func TestIPv4PrefixChange(t *testing.T) {
	ns := newNetNS(t)
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}
	input := &nftables.Chain{Name: "input", Table: tbl}
	n := openTable(t, ns, TableSpec{ManageChain: true})
	mustBan(t, n, "192.0.2.7/32", time.Hour)
	mustBan(t, n, "192.0.2.9/32", 10*time.Minute)
	mustBan(t, n, "198.51.100.0/32", 2*time.Hour) // already a network address
	mustBan(t, n, "198.51.100.5/32", time.Minute)

	n24 := openTable(t, ns, TableSpec{ManageChain: true, IPv4Prefix: 24})
	checkRulesMask(t, raw(t, ns), tbl, input, []byte{255, 255, 255, 0})
	wantOnly(t, n24, map[string][2]time.Duration{
		"192.0.2.0/24":    {59 * time.Minute, time.Hour},
		"198.51.100.0/24": {119 * time.Minute, 2 * time.Hour},
	})
	if got := len(rawElements(t, ns, "sentry", Set4)); got != 2 {
		t.Errorf("%d elements after realigning, want 2", got)
	}
	if m := missing(t, n); !slices.Equal(m, []string{"rule input @blocked4"}) {
		t.Errorf("Missing for /32 with the /24 rule = %v", m)
	}

	n32 := openTable(t, ns, TableSpec{ManageChain: true, IPv4Prefix: 32})
	checkRules(t, raw(t, ns), tbl, input)
	// Documented limit: a wider ban now covers its network address only.
	wantOnly(t, n32, map[string][2]time.Duration{
		"192.0.2.0/32":    {59 * time.Minute, time.Hour},
		"198.51.100.0/32": {119 * time.Minute, 2 * time.Hour},
	})
}

// addOldSet4 creates blocked4 as the previous version did (flags
// interval,timeout) with the given ranges, and, if chain, the input chain
// looking it up as that version's managed chain did.
func addOldSet4(t *testing.T, ns netNS, chain bool, ranges map[string]time.Duration) {
	t.Helper()
	c := raw(t, ns)
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"})
	old := &nftables.Set{Table: tbl, Name: Set4, KeyType: nftables.TypeIPAddr, Interval: true, HasTimeout: true}
	var els []nftables.SetElement
	for k, d := range ranges {
		p := netip.MustParsePrefix(k)
		els = append(els, rangeElements(p.Addr(), lastAddr(p), d, BanComment)...)
	}
	if err := c.AddSet(old, els); err != nil {
		t.Fatal(err)
	}
	if chain {
		accept := nftables.ChainPolicyAccept
		ch := c.AddChain(&nftables.Chain{Name: "input", Table: tbl, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput,
			Priority: nftables.ChainPriorityRef(-10), Policy: &accept})
		c.AddRule(dropRule(tbl, ch, old, nil, unix.NFPROTO_IPV4, 12, 4, nil))
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("create the old blocked4: %v", err)
	}
}

// TestApplyMigratesIntervalSet4 starts over a blocked4 made by the previous
// version: Apply replaces it with the plain set, keeping the active
// single-prefix bans with their remaining time, and rewrites the chain.
func TestApplyMigratesIntervalSet4(t *testing.T) {
	old := map[string]time.Duration{
		"192.0.2.1/32":    time.Hour,
		"192.0.2.2/32":    10 * time.Minute,
		"198.51.100.0/24": 2 * time.Hour,
		"10.0.0.0/8":      time.Hour, // wider than any key: dropped
	}
	for _, tt := range []struct {
		prefix int
		mask   []byte
		want   map[string][2]time.Duration
	}{
		{32, nil, map[string][2]time.Duration{
			"192.0.2.1/32": {59 * time.Minute, time.Hour},
			"192.0.2.2/32": {9 * time.Minute, 10 * time.Minute},
		}},
		{24, []byte{255, 255, 255, 0}, map[string][2]time.Duration{
			"192.0.2.0/24":    {59 * time.Minute, time.Hour},
			"198.51.100.0/24": {119 * time.Minute, 2 * time.Hour},
		}},
	} {
		t.Run(fmt.Sprint(tt.prefix), func(t *testing.T) {
			ns := newNetNS(t)
			addOldSet4(t, ns, true, old)
			n := openTable(t, ns, TableSpec{ManageChain: true, IPv4Prefix: tt.prefix})
			mustBan(t, n, "2001:db8::/64", time.Hour)
			c := raw(t, ns)
			tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}
			s, err := c.GetSetByName(tbl, Set4)
			if err != nil || s.Interval || !s.HasTimeout {
				t.Fatalf("blocked4 after Apply = %+v, %v; want flags timeout", s, err)
			}
			checkRulesMask(t, c, tbl, &nftables.Chain{Name: "input", Table: tbl}, tt.mask)
			tt.want["2001:db8::/64"] = [2]time.Duration{59 * time.Minute, time.Hour}
			wantOnly(t, n, tt.want)
			if m := missing(t, n); len(m) != 0 {
				t.Errorf("Missing = %v", m)
			}
			// A second Apply finds the plain set and keeps it.
			openTable(t, ns, TableSpec{ManageChain: true, IPv4Prefix: tt.prefix})
			wantOnly(t, n, tt.want)
		})
	}
}

// TestApplyMigrationBusy: a rule Apply does not manage still uses the old
// blocked4, so the kernel refuses to delete it; the error says what to run
// and nothing changes.
func TestApplyMigrationBusy(t *testing.T) {
	ns := newNetNS(t)
	addOldSet4(t, ns, true, map[string]time.Duration{"192.0.2.1/32": time.Hour})
	n, err := OpenTable(TableSpec{}, ns.fd) // ManageChain false: input is not ours
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	err = n.Apply(n.Spec())
	if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "`nft delete set inet sentry blocked4`") {
		t.Fatalf("Apply = %v, want EBUSY saying to run nft delete set inet sentry blocked4", err)
	}
	s, err := raw(t, ns).GetSetByName(&nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}, Set4)
	if err != nil || !s.Interval || len(rawElements(t, ns, "sentry", Set4)) != 2 {
		t.Errorf("old blocked4 changed: %+v, %v", s, err)
	}
}

// TestApplyMigratesPlainSet4 checks that a blocked4 without flags
// dynamic (an earlier version's) is replaced, keeping its bans as the
// daemon's.
func TestApplyMigratesPlainSet4(t *testing.T) {
	ns := newNetNS(t)
	run(t, "ip", "netns", "exec", ns.name, "nft", "add table inet sentry; add set inet sentry blocked4 { type ipv4_addr; flags timeout; }; add element inet sentry blocked4 { 192.0.2.1 timeout 1h, 192.0.2.2 timeout 10m }")
	n := openTable(t, ns, TableSpec{ManageChain: true})
	wantOnly(t, n, map[string][2]time.Duration{"192.0.2.1/32": {59 * time.Minute, time.Hour}, "192.0.2.2/32": {9 * time.Minute, 10 * time.Minute}})
	if out := nftList(t, ns.name, "set", "inet", "sentry", Set4); !strings.Contains(out, "flags dynamic,timeout") {
		t.Errorf("blocked4 not migrated:\n%s", out)
	}
	for _, b := range list(t, n) {
		if b.Origin != OriginDaemon {
			t.Errorf("migrated %v has origin %q", b.Key, b.Origin)
		}
	}
}
