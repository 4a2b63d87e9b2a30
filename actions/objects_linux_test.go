//go:build linux

package actions

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

// The tests in this file need no kernel.

func TestPortRangeElements(t *testing.T) {
	els := portRangeElements([]rules.PortRange{{Lo: 0, Hi: 0}, {Lo: 22, Hi: 23}, {Lo: 65000, Hi: 65535}})
	var got []string
	for _, e := range els {
		s := fmt.Sprint(binaryutil.BigEndian.Uint16(e.Key))
		if e.IntervalEnd {
			s += "end"
		}
		got = append(got, s)
	}
	// No end element after 65535: the last range runs to the end.
	if want := []string{"0", "1end", "22", "24end", "65000"}; !slices.Equal(got, want) {
		t.Errorf("interval elements %v, want %v", got, want)
	}
}

func TestAllowElements(t *testing.T) {
	var ps []netip.Prefix
	for _, s := range []string{"10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/8", "127.0.0.0/8", "255.255.255.255/32", "::1/128", "2001:db8::/32", "2001:db8:1::/48"} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	v4, v6 := mergePrefixes(ps)
	str := func(els []nftables.SetElement) string {
		var out []string
		for _, e := range els {
			a, _ := netip.AddrFromSlice(e.Key)
			s := a.String()
			if e.IntervalEnd {
				s = "end " + s
			}
			out = append(out, s)
		}
		return strings.Join(out, ",")
	}
	if got, want := str(addrRangeElements(v4)), "10.0.0.0,end 12.0.0.0,127.0.0.0,end 128.0.0.0,255.255.255.255"; got != want {
		t.Errorf("v4 %s, want %s", got, want)
	}
	if got, want := str(addrRangeElements(v6)), "::1,end ::2,2001:db8::,end 2001:db9::"; got != want {
		t.Errorf("v6 %s, want %s", got, want)
	}
}

func TestRangeElements(t *testing.T) {
	a := netip.MustParseAddr
	els := rangeElements(a("2001:db8:aa:bb::"), a("2001:db8:aa:bb:ffff:ffff:ffff:ffff"), 3600e9, BanComment)
	if len(els) != 2 || els[0].Comment != BanComment || els[0].Timeout == 0 || !els[1].IntervalEnd || els[1].Timeout != 0 ||
		netip.AddrFrom16([16]byte(els[1].Key)) != a("2001:db8:aa:bc::") {
		t.Errorf("elements of a /64: %+v", els)
	}
	if els := rangeElements(a("255.255.255.255"), a("255.255.255.255"), 1e9, BanComment); len(els) != 1 {
		t.Errorf("a range to the end of the address space has an end element: %+v", els)
	}
}

func TestOpenTableNetNS(t *testing.T) {
	if _, err := OpenTable(TableSpec{}, -1); err == nil || !strings.Contains(err.Error(), "namespace fd") {
		t.Errorf("OpenTable with fd -1: %v", err)
	}
}

// TestObjects checks the objects of a full spec: which sets and chains
// there are, in Missing's order, and the first strike rule count per
// chain.
func TestObjects(t *testing.T) {
	spec, err := TableSpec{ManageChain: true, Hooks: []string{HookInput, HookForward},
		FirstStrike: &FirstStrikeConfig{MaxPerMinute: 60, Rules: []FirstStrikeRule{
			{Proto: 6, DistinctPorts: 5, Window: 60e9},
			{Proto: 17, Hits: 1, Ports: []rules.PortRange{{Lo: 161, Hi: 162}}},
			{Proto: 6, TCPFlags: rules.ClassNull | rules.ClassFIN | rules.ClassXmas, Hits: 3, DistinctPorts: 2, Window: 60e9},
		}},
		Advanced: &AdvancedConfig{},
	}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	o := newObjects(&spec)
	var sets, chains []string
	for _, s := range o.sets() {
		sets = append(sets, s.Name)
	}
	for _, c := range o.chains() {
		chains = append(chains, c.Name)
	}
	wantSets := "blocked4 blocked6 strike6 wide4 listen_tcp listen_udp allow4 allow6 fs0_probes4 fs0_rate4 fs0_probes6 fs0_rate6 " +
		"fs2_probes4 fs2_rate4 fs2_hits4 fs2_hot4 fs2_probes6 fs2_rate6 fs2_hits6 fs2_hot6 watch_tcp watch_udp"
	if got := strings.Join(sets, " "); got != wantSets {
		t.Errorf("sets\n got %s\nwant %s", got, wantSets)
	}
	if got, want := strings.Join(chains, " "), "input forward firststrike strike fs0 fs1 fs2 advanced"; got != want {
		t.Errorf("chains %s, want %s", got, want)
	}
	for _, s := range o.fs.dynSets() {
		if !countingSet.MatchString(s.Name) || s.Size < DefaultFirstStrikeSetSize || !s.Dynamic || !s.HasTimeout {
			t.Errorf("counting set %+v", s)
		}
	}
	var anon int
	rules, err := o.fs.rules(o, func(s *nftables.Set, _ []nftables.SetElement) error {
		if !s.Anonymous {
			t.Errorf("rules added named set %s", s.Name)
		}
		anon++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, r := range rules {
		n[r.Chain.Name]++
	}
	// Base: lo, pkttype, allow4, allow6, listen tcp, listen udp, then one
	// jump per rule: TCP (every class), UDP, TCP NULL+FIN+XMAS. Each
	// family of a counting rule: the count and the full-set drop; of a
	// tripwire: the jump; of hits and distinct ports: the hits, the count
	// and the full-set drop.
	if want := map[string]int{"firststrike": 6 + 3, "fs0": 4, "fs1": 2, "fs2": 6, "strike": 4}; !maps.Equal(n, want) || anon != 2 {
		t.Errorf("rules per chain %v, want %v; %d anonymous sets (ports, flags), want 2", n, want, anon)
	}
	if len(o.adv.rules(o)) != 6 {
		t.Errorf("advanced rules: %d", len(o.adv.rules(o)))
	}
	for _, name := range []string{"fs0", "fs12", "firststrike", "strike", "advanced"} {
		if !ownChain(&spec, name) {
			t.Errorf("ownChain(%s) false", name)
		}
	}
	if ownChain(&spec, "fs0_probes4") || ownChain(&spec, "other") || ownChain(&TableSpec{}, HookInput) {
		t.Error("ownChain claims another's chain")
	}
}
