//go:build linux

package actions

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// openNFT opens NFTables in ns and runs Setup.
func openNFT(tb testing.TB, ns netNS, cfg NFTablesConfig) *NFTables {
	tb.Helper()
	cfg.NetNSFd = ns.fd
	n, err := OpenNFTables(cfg)
	if err != nil {
		tb.Fatalf("OpenNFTables: %v", err)
	}
	tb.Cleanup(func() { n.Close() })
	if err := n.Setup(); err != nil {
		tb.Fatalf("Setup: %v", err)
	}
	return n
}

// raw is an independent connection into ns, to check the kernel's state
// without going through the code under test.
func raw(tb testing.TB, ns netNS) *nftables.Conn {
	tb.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.fd))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func rawElements(tb testing.TB, ns netNS, table, set string) []nftables.SetElement {
	tb.Helper()
	s := &nftables.Set{Table: &nftables.Table{Family: nftables.TableFamilyINet, Name: table}, Name: set}
	els, err := raw(tb, ns).GetSetElements(s)
	if err != nil {
		tb.Fatalf("GetSetElements %s: %v", set, err)
	}
	return els
}

// startsOf lists the start elements (address and timeout) of a set.
func startsOf(els []nftables.SetElement) map[netip.Addr]nftables.SetElement {
	m := make(map[netip.Addr]nftables.SetElement)
	for _, e := range els {
		if !e.IntervalEnd {
			a, _ := netip.AddrFromSlice(e.Key)
			m[a] = e
		}
	}
	return m
}

func endsOf(els []nftables.SetElement) []netip.Addr {
	var out []netip.Addr
	for _, e := range els {
		if e.IntervalEnd {
			a, _ := netip.AddrFromSlice(e.Key)
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func list(tb testing.TB, n *NFTables) map[netip.Prefix]BanEntry {
	tb.Helper()
	l, err := n.List()
	if err != nil {
		tb.Fatalf("List: %v", err)
	}
	m := make(map[netip.Prefix]BanEntry, len(l))
	for _, e := range l {
		m[e.Key] = e
	}
	return m
}

func mustBan(tb testing.TB, n *NFTables, key string, d time.Duration) {
	tb.Helper()
	if err := n.Ban(netip.MustParsePrefix(key), d); err != nil {
		tb.Fatalf("Ban(%s, %v): %v", key, d, err)
	}
}

// wantOnly checks that List holds exactly the given keys, each with Expires
// within [lo, hi].
func wantOnly(tb testing.TB, n *NFTables, want map[string][2]time.Duration) {
	tb.Helper()
	got := list(tb, n)
	if len(got) != len(want) {
		tb.Errorf("List = %v, want keys %v", got, want)
	}
	for k, r := range want {
		e, ok := got[netip.MustParsePrefix(k)]
		if !ok {
			tb.Errorf("List: %s missing (have %v)", k, got)
			continue
		}
		if e.Expires < r[0] || e.Expires > r[1] {
			tb.Errorf("List: %s expires in %v, want %v..%v", k, e.Expires, r[0], r[1])
		}
	}
}

func TestSetupCreatesTableSetsChains(t *testing.T) {
	ns := newNetNS(t)
	openNFT(t, ns, NFTablesConfig{ManageChain: true, Hooks: []string{"input", "forward"}})
	c := raw(t, ns)
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}
	if _, err := c.ListTableOfFamily("sentry", nftables.TableFamilyINet); err != nil {
		t.Fatalf("table inet sentry: %v", err)
	}
	for _, want := range []struct {
		name, typ string
		interval  bool
	}{{"blocked4", "ipv4_addr", false}, {"blocked6", "ipv6_addr", true}} {
		s, err := c.GetSetByName(tbl, want.name)
		if err != nil {
			t.Fatalf("set %s: %v", want.name, err)
		}
		if s.KeyType.Name != want.typ || s.Interval != want.interval || !s.HasTimeout || s.IsMap {
			t.Errorf("set %s: type %s interval %t timeout %t map %t; want %s interval %t timeout", want.name, s.KeyType.Name, s.Interval, s.HasTimeout, s.IsMap, want.typ, want.interval)
		}
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	hooks := map[string]nftables.ChainHook{"input": *nftables.ChainHookInput, "forward": *nftables.ChainHookForward}
	seen := 0
	for _, ch := range chains {
		if ch.Table.Name != "sentry" {
			continue
		}
		seen++
		h, ok := hooks[ch.Name]
		if !ok {
			t.Errorf("unexpected chain %s", ch.Name)
			continue
		}
		if ch.Hooknum == nil || *ch.Hooknum != h || ch.Priority == nil || *ch.Priority != -10 ||
			ch.Type != nftables.ChainTypeFilter || ch.Policy == nil || *ch.Policy != nftables.ChainPolicyAccept {
			t.Errorf("chain %s: hook %v prio %v type %s policy %v", ch.Name, deref(ch.Hooknum), deref(ch.Priority), ch.Type, deref(ch.Policy))
		}
		checkRules(t, c, tbl, ch)
	}
	if seen != 2 {
		t.Errorf("%d chains in table sentry, want 2", seen)
	}
	if ok, missing, err := openNFT(t, ns, NFTablesConfig{ManageChain: true, Hooks: []string{"forward", "input"}}).Present(); err != nil || !ok {
		t.Errorf("Present = %t %v %v, want true", ok, missing, err)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// checkRules wants exactly `ip saddr @blocked4 counter drop` and
// `ip6 saddr @blocked6 counter drop` in ch.
func checkRules(tb testing.TB, c *nftables.Conn, tbl *nftables.Table, ch *nftables.Chain) {
	tb.Helper()
	checkRulesMask(tb, c, tbl, ch, nil)
}

// checkRulesMask is checkRules with `ip saddr & mask @blocked4` when mask
// is not nil.
func checkRulesMask(tb testing.TB, c *nftables.Conn, tbl *nftables.Table, ch *nftables.Chain, mask []byte) {
	tb.Helper()
	rules, err := c.GetRules(tbl, ch)
	if err != nil {
		tb.Fatal(err)
	}
	var got []string
	for _, r := range rules {
		var parts []string
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Meta:
				parts = append(parts, fmt.Sprintf("meta%d", e.Key))
			case *expr.Cmp:
				parts = append(parts, fmt.Sprintf("cmp%v", e.Data))
			case *expr.Payload:
				parts = append(parts, fmt.Sprintf("payload%d@%d/%d", e.Base, e.Offset, e.Len))
			case *expr.Bitwise:
				parts = append(parts, fmt.Sprintf("and%v^%v", e.Mask, e.Xor))
			case *expr.Lookup:
				parts = append(parts, "@"+e.SetName)
			case *expr.Counter:
				parts = append(parts, "counter")
			case *expr.Verdict:
				parts = append(parts, fmt.Sprintf("verdict%d", e.Kind))
			default:
				parts = append(parts, fmt.Sprintf("%T", e))
			}
		}
		got = append(got, strings.Join(parts, " "))
	}
	and := ""
	if mask != nil {
		and = fmt.Sprintf(" and%v^[0 0 0 0]", mask)
	}
	want := []string{
		fmt.Sprintf("meta%d cmp[2] payload1@12/4%s @blocked4 counter verdict%d", expr.MetaKeyNFPROTO, and, expr.VerdictDrop),
		fmt.Sprintf("meta%d cmp[10] payload1@8/16 @blocked6 counter verdict%d", expr.MetaKeyNFPROTO, expr.VerdictDrop),
		// First strike's IPv6 bans, masked to the default /64.
		fmt.Sprintf("meta%d cmp[10] payload1@8/16 and[255 255 255 255 255 255 255 255 0 0 0 0 0 0 0 0]^[0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0] @strike6 counter verdict%d", expr.MetaKeyNFPROTO, expr.VerdictDrop),
	}
	if !slices.Equal(got, want) {
		tb.Errorf("chain %s rules:\n%s\nwant:\n%s", ch.Name, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSetupTwiceKeepsOneCopyAndElements(t *testing.T) {
	ns := newNetNS(t)
	n := openNFT(t, ns, NFTablesConfig{ManageChain: true})
	mustBan(t, n, "192.0.2.7/32", time.Hour)
	mustBan(t, n, "2001:db8:1:2::/64", time.Hour)
	if err := n.Setup(); err != nil {
		t.Fatalf("second Setup: %v", err)
	}
	n2 := openNFT(t, ns, NFTablesConfig{ManageChain: true}) // a restart
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}
	checkRules(t, raw(t, ns), tbl, &nftables.Chain{Name: "input", Table: tbl})
	wantOnly(t, n2, map[string][2]time.Duration{
		"192.0.2.7/32":      {59 * time.Minute, time.Hour},
		"2001:db8:1:2::/64": {59 * time.Minute, time.Hour},
	})
}

func TestSetupPriorityAndHookChange(t *testing.T) {
	ns := newNetNS(t)
	openNFT(t, ns, NFTablesConfig{ManageChain: true, Hooks: []string{"input", "forward"}})
	openNFT(t, ns, NFTablesConfig{ManageChain: true, Hooks: []string{"forward"}, Priority: 5})
	chains, err := raw(t, ns).ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ch := range chains {
		if ch.Table.Name == "sentry" {
			names = append(names, ch.Name)
			if *ch.Priority != 5 {
				t.Errorf("chain %s priority %d, want 5", ch.Name, *ch.Priority)
			}
		}
	}
	if !slices.Equal(names, []string{"forward"}) {
		t.Errorf("chains %v, want [forward]", names)
	}
}

func TestSetupSetsOnly(t *testing.T) {
	ns := newNetNS(t)
	n := openNFT(t, ns, NFTablesConfig{})
	mustBan(t, n, "198.51.100.1/32", time.Hour)
	chains, err := raw(t, ns).ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	if len(chains) != 0 {
		t.Errorf("ManageChain false created chains: %v", chains[0].Name)
	}
	if ok, missing, err := n.Present(); !ok || err != nil {
		t.Errorf("Present = %t %v %v", ok, missing, err)
	}
	// A managed chain made earlier survives a Setup without ManageChain.
	openNFT(t, ns, NFTablesConfig{ManageChain: true})
	openNFT(t, ns, NFTablesConfig{})
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}
	checkRules(t, raw(t, ns), tbl, &nftables.Chain{Name: "input", Table: tbl})
}

func TestSetupLeavesOtherTablesAlone(t *testing.T) {
	ns := newNetNS(t)
	c := raw(t, ns)
	other := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "other"})
	s := &nftables.Set{Table: other, Name: "blocked4", KeyType: nftables.TypeIPAddr, HasTimeout: true}
	if err := c.AddSet(s, []nftables.SetElement{{Key: []byte{203, 0, 113, 9}, Timeout: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	accept := nftables.ChainPolicyAccept
	c.AddChain(&nftables.Chain{Name: "input", Table: other, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	n := openNFT(t, ns, NFTablesConfig{ManageChain: true})
	mustBan(t, n, "203.0.113.9/32", time.Minute)
	if _, err := n.Unblock(netip.MustParsePrefix("203.0.113.9/32")); err != nil {
		t.Fatal(err)
	}
	els := rawElements(t, ns, "other", "blocked4")
	if len(els) != 1 || !slices.Equal(els[0].Key, []byte{203, 0, 113, 9}) {
		t.Errorf("table other's set changed: %+v", els)
	}
	if _, err := c.ListChain(other, "input"); err != nil {
		t.Errorf("table other's chain: %v", err)
	}
}

func TestSetupRejectsIncompatibleSet(t *testing.T) {
	ns := newNetNS(t)
	c := raw(t, ns)
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"})
	// No timeout flag: elements could not expire.
	if err := c.AddSet(&nftables.Set{Table: tbl, Name: "blocked4", KeyType: nftables.TypeIPAddr}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	n, err := OpenNFTables(NFTablesConfig{NetNSFd: ns.fd})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	err = n.Setup()
	if !errors.Is(err, syscall.EEXIST) || !strings.Contains(err.Error(), "`nft delete set inet sentry blocked4`") {
		t.Errorf("Setup over a blocked4 without timeout = %v, want EEXIST saying what to delete", err)
	}
	if ok, missing, err := n.Present(); ok || err != nil || !slices.Equal(missing, []string{"set blocked4", "set blocked6", "set strike6"}) {
		t.Errorf("Present = %t %v %v, want blocked4 wrong, blocked6 and strike6 missing", ok, missing, err)
	}
}

// TestBan4 checks that an IPv4 ban is one element of the plain set
// blocked4, carrying the timeout, and that only /32 keys are accepted at
// the default prefix.
func TestBan4(t *testing.T) {
	ns := newNetNS(t)
	n := openNFT(t, ns, NFTablesConfig{ManageChain: true})
	mustBan(t, n, "192.0.2.1/32", 90*time.Second)
	mustBan(t, n, "::ffff:198.51.100.7/128", time.Hour)
	els := rawElements(t, ns, "sentry", "blocked4")
	if len(els) != 2 || len(endsOf(els)) != 0 {
		t.Errorf("elements %+v, want two, no interval ends", els)
	}
	starts := startsOf(els)
	if e, ok := starts[netip.MustParseAddr("192.0.2.1")]; !ok || e.Timeout != 90*time.Second || e.Expires <= 80*time.Second {
		t.Errorf("192.0.2.1 element = %+v (present %t), want timeout 90s", e, ok)
	}
	if e, ok := starts[netip.MustParseAddr("198.51.100.7")]; !ok || e.Timeout != time.Hour {
		t.Errorf("198.51.100.7 element = %+v (present %t)", e, ok)
	}
	for _, k := range []string{"198.51.100.0/24", "192.0.2.0/31"} {
		err := n.Ban(netip.MustParsePrefix(k), time.Hour)
		if err == nil || !strings.Contains(err.Error(), "/32") {
			t.Errorf("Ban(%s) with IPv4Prefix 32 = %v, want an error naming /32", k, err)
		}
	}
	wantOnly(t, n, map[string][2]time.Duration{
		"192.0.2.1/32":    {80 * time.Second, 90 * time.Second},
		"198.51.100.7/32": {59 * time.Minute, time.Hour},
	})
}

// TestPlainSetReAdd pins the kernel behaviour the IPv4 code relies on:
// re-adding a present element to a plain timeout set succeeds and sets the
// new timeout, shorter or longer (so Ban must read before it re-adds a key
// it knows), and a delete and an add of one key in one batch work.
func TestPlainSetReAdd(t *testing.T) {
	ns := newNetNS(t)
	openNFT(t, ns, NFTablesConfig{})
	c := raw(t, ns)
	s := &nftables.Set{Table: &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}, Name: Set4, HasTimeout: true}
	k := []byte{192, 0, 2, 3}
	for _, d := range []time.Duration{time.Hour, time.Minute} {
		if err := c.SetAddElements(s, []nftables.SetElement{{Key: k, Timeout: d}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatalf("add with timeout %v: %v", d, err)
		}
		if els := rawElements(t, ns, "sentry", Set4); len(els) != 1 || els[0].Timeout != d {
			t.Fatalf("after adding with timeout %v: %+v", d, els)
		}
	}
	_ = c.SetDeleteElements(s, []nftables.SetElement{{Key: k}})
	_ = c.SetAddElements(s, []nftables.SetElement{{Key: k, Timeout: 2 * time.Hour}})
	if err := c.Flush(); err != nil {
		t.Fatalf("delete and add in one batch: %v", err)
	}
	if els := rawElements(t, ns, "sentry", Set4); len(els) != 1 || els[0].Timeout != 2*time.Hour {
		t.Errorf("after delete and add: %+v", els)
	}
}

func TestBan6Range(t *testing.T) {
	ns := newNetNS(t)
	n := openNFT(t, ns, NFTablesConfig{ManageChain: true})
	mustBan(t, n, "2001:db8:aa:bb::/64", time.Hour)
	els := rawElements(t, ns, "sentry", "blocked6")
	if len(els) != 2 {
		t.Fatalf("%d elements, want start and end: %+v", len(els), els)
	}
	start := startsOf(els)[netip.MustParseAddr("2001:db8:aa:bb::")]
	if start.Timeout != time.Hour {
		t.Errorf("start element %+v, want timeout 1h", start)
	}
	if got, want := endsOf(els), []netip.Addr{netip.MustParseAddr("2001:db8:aa:bc::")}; !slices.Equal(got, want) {
		t.Errorf("end %v, want %v", got, want)
	}
	for _, e := range els {
		if e.IntervalEnd && e.Timeout != 0 {
			t.Errorf("end element has timeout %v", e.Timeout)
		}
	}
	// Other addresses of the /64 fall inside the kernel's range.
	spans := spansFromElements(els)
	for _, a := range []string{"2001:db8:aa:bb::1", "2001:db8:aa:bb:ffff:ffff:ffff:ffff", "2001:db8:aa:bb:1234::5"} {
		if ip := netip.MustParseAddr(a); len(spans) != 1 || !spans[0].contains(ip, ip) {
			t.Errorf("%s not inside the banned range %v", a, spans)
		}
	}
	if ip := netip.MustParseAddr("2001:db8:aa:bc::1"); spans[0].contains(ip, ip) {
		t.Errorf("%s is inside the banned range %v", ip, spans)
	}
}

func TestBanEndOfAddressSpace(t *testing.T) {
	ns := newNetNS(t)
	n := openNFT(t, ns, NFTablesConfig{})
	mustBan(t, n, "255.255.255.255/32", time.Hour)
	mustBan(t, n, "ffff:ffff:ffff:ffff::/64", time.Hour)
	mustBan(t, n, "255.255.255.255/32", 2*time.Hour) // re-ban takes the slow path
	wantOnly(t, n, map[string][2]time.Duration{
		"255.255.255.255/32":       {119 * time.Minute, 2 * time.Hour},
		"ffff:ffff:ffff:ffff::/64": {59 * time.Minute, time.Hour},
	})
	for _, k := range []string{"255.255.255.255/32", "ffff:ffff:ffff:ffff::1/128"} {
		if _, err := n.Unblock(netip.MustParsePrefix(k)); err != nil {
			t.Errorf("Unblock %s: %v", k, err)
		}
	}
	wantOnly(t, n, nil)
}

func TestBanExtendsNeverShortens(t *testing.T) {
	for _, key := range []string{"192.0.2.10/32", "2001:db8:5::/64"} {
		t.Run(key, func(t *testing.T) {
			ns := newNetNS(t)
			n := openNFT(t, ns, NFTablesConfig{ManageChain: true})
			mustBan(t, n, key, 10*time.Minute)
			mustBan(t, n, key, time.Hour)
			wantOnly(t, n, map[string][2]time.Duration{key: {59 * time.Minute, time.Hour}})
			mustBan(t, n, key, time.Minute)
			wantOnly(t, n, map[string][2]time.Duration{key: {59 * time.Minute, time.Hour}})
			// A new process (empty record) does not shorten it either.
			n2 := openNFT(t, ns, NFTablesConfig{})
			mustBan(t, n2, key, time.Minute)
			wantOnly(t, n, map[string][2]time.Duration{key: {59 * time.Minute, time.Hour}})
			want := 2 // start and end of the range
			if setName(key) == Set4 {
				want = 1
			}
			if got := len(rawElements(t, ns, "sentry", setName(key))); got != want {
				t.Errorf("%d elements after re-bans, want %d", got, want)
			}
		})
	}
}

func setName(key string) string {
	if netip.MustParsePrefix(key).Addr().Is4() {
		return Set4
	}
	return Set6
}

func TestBanInsideActiveRange(t *testing.T) {
	ns := newNetNS(t)
	n := openNFT(t, ns, NFTablesConfig{ManageChain: true})
	mustBan(t, n, "2001:db8:7:7::/64", 10*time.Minute)
	mustBan(t, n, "2001:db8:7:7::99/128", 5*time.Minute) // already banned, shorter
	wantOnly(t, n, map[string][2]time.Duration{"2001:db8:7:7::/64": {9 * time.Minute, 10 * time.Minute}})
	mustBan(t, n, "2001:db8:7:7::99/128", time.Hour) // extends the /64
	wantOnly(t, n, map[string][2]time.Duration{"2001:db8:7:7::/64": {59 * time.Minute, time.Hour}})
}

func TestBanAroundActiveRanges(t *testing.T) {
	ns := newNetNS(t)
	n := openNFT(t, ns, NFTablesConfig{ManageChain: true})
	mustBan(t, n, "2001:db8:9:1::/64", time.Hour)
	mustBan(t, n, "2001:db8:9:2::/64", 2*time.Minute)
	mustBan(t, n, "2001:db8:9::/48", 10*time.Minute)
	// The /48 replaces both and keeps the longest remaining time.
	wantOnly(t, n, map[string][2]time.Duration{"2001:db8:9::/48": {59 * time.Minute, time.Hour}})
	if got := len(rawElements(t, ns, "sentry", Set6)); got != 2 {
		t.Errorf("%d elements, want 2", got)
	}
}

// TestBanUnknownOverlap: a ban this process does not know of (made by
// another) makes the fast path fail with EEXIST; Ban then reads and resolves.
func TestBanUnknownOverlap(t *testing.T) {
	ns := newNetNS(t)
	a := openNFT(t, ns, NFTablesConfig{ManageChain: true})
	b := openNFT(t, ns, NFTablesConfig{})
	mustBan(t, a, "2001:db8:c::/64", time.Hour)
	mustBan(t, b, "2001:db8:c::/48", time.Minute)
	mustBan(t, b, "2001:db8:c::5/128", 2*time.Hour)
	wantOnly(t, a, map[string][2]time.Duration{"2001:db8:c::/48": {119 * time.Minute, 2 * time.Hour}})
}

func TestUnblock(t *testing.T) {
	ns := newNetNS(t)
	n := openNFT(t, ns, NFTablesConfig{ManageChain: true})
	mustBan(t, n, "192.0.2.1/32", time.Hour)
	mustBan(t, n, "192.0.2.2/32", time.Hour)
	mustBan(t, n, "2001:db8:1:1::/64", time.Hour)
	mustBan(t, n, "2001:db8:2:1::/64", time.Hour)
	mustBan(t, n, "2001:db8:2:2::/64", time.Hour)

	tests := []struct {
		key  string
		want []string
	}{
		{"192.0.2.1/32", []string{"192.0.2.1/32"}},
		{"2001:db8:1:1::abcd/128", []string{"2001:db8:1:1::/64"}},
		{"2001:db8:2::/48", []string{"2001:db8:2:1::/64", "2001:db8:2:2::/64"}},
	}
	for _, tt := range tests {
		got, err := n.Unblock(netip.MustParsePrefix(tt.key))
		if err != nil {
			t.Errorf("Unblock(%s): %v", tt.key, err)
			continue
		}
		var gs []string
		for _, p := range got {
			gs = append(gs, p.String())
		}
		if !slices.Equal(gs, tt.want) {
			t.Errorf("Unblock(%s) = %v, want %v", tt.key, gs, tt.want)
		}
	}
	for _, k := range []string{"192.0.2.1/32", "2001:db8:1:1::/64", "10.0.0.1/32"} {
		if _, err := n.Unblock(netip.MustParsePrefix(k)); !errors.Is(err, ErrNotBanned) {
			t.Errorf("Unblock(%s) again = %v, want ErrNotBanned", k, err)
		}
	}
	wantOnly(t, n, map[string][2]time.Duration{"192.0.2.2/32": {59 * time.Minute, time.Hour}})
	if got := len(rawElements(t, ns, "sentry", Set6)); got != 0 {
		t.Errorf("%d IPv6 elements left, want 0", got)
	}
	// Unblocked keys take the fast path again.
	mustBan(t, n, "192.0.2.1/32", time.Minute)
	mustBan(t, n, "2001:db8:1:1::/64", time.Minute)
}

func TestTimeoutsExpire(t *testing.T) {
	ns := newNetNS(t)
	n := openNFT(t, ns, NFTablesConfig{ManageChain: true})
	mustBan(t, n, "192.0.2.50/32", time.Second)
	mustBan(t, n, "2001:db8:e::/64", 1500*time.Millisecond)
	mustBan(t, n, "192.0.2.51/32", time.Hour)
	got := list(t, n)
	if e := got[netip.MustParsePrefix("192.0.2.50/32")]; e.Timeout != time.Second || e.Expires <= 0 || e.Expires > time.Second {
		t.Errorf("List entry %+v, want timeout 1s and time left", e)
	}
	deadline := time.Now().Add(6 * time.Second)
	for {
		got = list(t, n)
		if len(got) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bans did not expire: %v", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, ok := got[netip.MustParsePrefix("192.0.2.51/32")]; !ok {
		t.Errorf("the 1h ban expired too: %v", got)
	}
	// The expired key can be banned again (fast path, then a leftover end
	// element must not get in the way).
	mustBan(t, n, "192.0.2.50/32", time.Hour)
	mustBan(t, n, "2001:db8:e::/64", time.Hour)
	if len(list(t, n)) != 3 {
		t.Errorf("re-ban after expiry: %v", list(t, n))
	}
}

func TestBansStayAfterClose(t *testing.T) {
	ns := newNetNS(t)
	n := openNFT(t, ns, NFTablesConfig{ManageChain: true})
	mustBan(t, n, "192.0.2.9/32", time.Hour)
	mustBan(t, n, "2001:db8:f::/64", time.Hour)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := n.Ban(netip.MustParsePrefix("192.0.2.10/32"), time.Hour); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Ban after Close = %v, want net.ErrClosed", err)
	}
	n2 := openNFT(t, ns, NFTablesConfig{ManageChain: true})
	if got := list(t, n2); len(got) != 2 {
		t.Errorf("after Close: %v, want both bans", got)
	}
}

func TestPresentReportsMissing(t *testing.T) {
	ns := newNetNS(t)
	n, err := OpenNFTables(NFTablesConfig{ManageChain: true, NetNSFd: ns.fd})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if ok, missing, err := n.Present(); ok || err != nil || !slices.Equal(missing, []string{"table inet sentry"}) {
		t.Errorf("before Setup: Present = %t %v %v", ok, missing, err)
	}
	if err := n.Setup(); err != nil {
		t.Fatal(err)
	}
	c := raw(t, ns)
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}
	c.FlushChain(&nftables.Chain{Name: "input", Table: tbl})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if ok, missing, err := n.Present(); ok || err != nil || !slices.Equal(missing, []string{"rule input @blocked4", "rule input @blocked6", "rule input @strike6"}) {
		t.Errorf("after flushing the chain: Present = %t %v %v", ok, missing, err)
	}
	c.DelChain(&nftables.Chain{Name: "input", Table: tbl})
	c.DelSet(&nftables.Set{Name: "blocked6", Table: tbl})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if ok, missing, err := n.Present(); ok || err != nil || !slices.Equal(missing, []string{"set blocked6", "chain input"}) {
		t.Errorf("after deleting: Present = %t %v %v", ok, missing, err)
	}
	if err := n.Setup(); err != nil {
		t.Fatal(err)
	}
	if ok, missing, err := n.Present(); !ok || err != nil {
		t.Errorf("after repair: Present = %t %v %v", ok, missing, err)
	}
}

func TestConcurrentBans(t *testing.T) {
	ns := newNetNS(t)
	n := openNFT(t, ns, NFTablesConfig{ManageChain: true})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				if err := n.Ban(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(g), byte(i)}), 32), time.Hour); err != nil {
					t.Errorf("Ban: %v", err)
				}
				k := netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(g), 0, byte(i)}), 64)
				if err := n.Ban(k, time.Hour); err != nil {
					t.Errorf("Ban: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if got := len(list(t, n)); got != 400 {
		t.Errorf("%d bans, want 400", got)
	}
}

// trafficPair is a server namespace with a TCP listener on every address
// and a client namespace, joined by a veth pair.
type trafficPair struct {
	srv, cli netNS
	port     int
}

func newTrafficPair(t *testing.T, srvAddrs, cliAddrs []string) *trafficPair {
	t.Helper()
	p := &trafficPair{srv: newNetNS(t), cli: newNetNS(t)}
	vethPair(t, p.srv, p.cli, "snt0", "snt1")
	for _, a := range srvAddrs {
		addrAdd(t, p.srv, a, "snt0")
	}
	for _, a := range cliAddrs {
		addrAdd(t, p.cli, a, "snt1")
	}
	var ln net.Listener
	p.srv.do(t, func() {
		var err error
		if ln, err = net.Listen("tcp", "[::]:0"); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	p.port = ln.Addr().(*net.TCPAddr).Port
	return p
}

func addrAdd(t *testing.T, ns netNS, a, dev string) {
	t.Helper()
	if netip.MustParsePrefix(a).Addr().Is4() {
		ns.ip(t, "addr", "add", a, "dev", dev)
	} else {
		ns.ip(t, "-6", "addr", "add", a, "dev", dev, "nodad")
	}
}

func (p *trafficPair) dial(t *testing.T, src, dst string, timeout time.Duration) error {
	t.Helper()
	var err error
	p.cli.do(t, func() {
		d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		var c net.Conn
		if c, err = d.Dial("tcp", net.JoinHostPort(dst, fmt.Sprint(p.port))); err == nil {
			c.Close()
		}
	})
	return err
}

type path struct{ src, dst string }

// wantConnect waits (while the link comes up) until each path connects.
func (p *trafficPair) wantConnect(t *testing.T, paths []path) {
	t.Helper()
	for _, pa := range paths {
		var err error
		for range 20 {
			if err = p.dial(t, pa.src, pa.dst, 500*time.Millisecond); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("%s -> %s: %v", pa.src, pa.dst, err)
		}
	}
}

// wantDropped checks that each path times out (dropped, not refused).
func (p *trafficPair) wantDropped(t *testing.T, paths []path) {
	t.Helper()
	for _, pa := range paths {
		if err := p.dial(t, pa.src, pa.dst, 700*time.Millisecond); err == nil {
			t.Errorf("banned %s -> %s connected", pa.src, pa.dst)
		} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Errorf("banned %s -> %s: %v, want a timeout", pa.src, pa.dst, err)
		}
	}
}

// TestBanDropsTraffic bans one IPv4 address and one IPv6 /64 in a
// namespace with a TCP listener and connects from a second namespace: from
// two addresses inside the /64 and the banned IPv4 address the connection
// times out; from addresses outside it connects.
func TestBanDropsTraffic(t *testing.T) {
	p := newTrafficPair(t, []string{"10.77.0.1/24", "fd00:77::1/48"},
		[]string{"10.77.0.2/24", "10.77.0.3/24", "fd00:77:0:1::10/48", "fd00:77:0:1::20/48", "fd00:77:0:2::10/48"})
	n := openNFT(t, p.srv, NFTablesConfig{ManageChain: true})
	banned := []path{{"10.77.0.2", "10.77.0.1"}, {"fd00:77:0:1::10", "fd00:77::1"}, {"fd00:77:0:1::20", "fd00:77::1"}}
	allowed := []path{{"10.77.0.3", "10.77.0.1"}, {"fd00:77:0:2::10", "fd00:77::1"}}
	p.wantConnect(t, append(slices.Clone(banned), allowed...))
	mustBan(t, n, "10.77.0.2/32", time.Minute)
	mustBan(t, n, "fd00:77:0:1::/64", time.Minute)
	p.wantDropped(t, banned)
	p.wantConnect(t, allowed)
	c, err := n.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.Packets4 == 0 || c.Packets6 < 2 || c.Bytes4 == 0 || c.Bytes6 == 0 {
		t.Errorf("Counters = %+v, want drops in both families", c)
	}
	// Unblocking by an address inside the /64 lets it through again.
	if _, err := n.Unblock(netip.MustParsePrefix("fd00:77:0:1::10/128")); err != nil {
		t.Fatal(err)
	}
	if err := p.dial(t, "fd00:77:0:1::20", "fd00:77::1", 2*time.Second); err != nil {
		t.Errorf("after Unblock: %v", err)
	}
}

// TestBan4PrefixDropsTraffic bans an IPv4 /24 with IPv4Prefix 24: the
// masked rule drops an address of the /24 that was never named, lets
// another /24 through, and Unblock by a single address lifts the ban.
func TestBan4PrefixDropsTraffic(t *testing.T) {
	p := newTrafficPair(t, []string{"10.78.0.1/16"}, []string{"10.78.1.2/16", "10.78.1.3/16", "10.78.2.5/16"})
	n := openNFT(t, p.srv, NFTablesConfig{ManageChain: true, IPv4Prefix: 24})
	banned := []path{{"10.78.1.2", "10.78.0.1"}, {"10.78.1.3", "10.78.0.1"}}
	allowed := []path{{"10.78.2.5", "10.78.0.1"}}
	p.wantConnect(t, append(slices.Clone(banned), allowed...))
	mustBan(t, n, "10.78.1.0/24", time.Minute)
	if els := rawElements(t, p.srv, "sentry", Set4); len(els) != 1 || !slices.Equal(els[0].Key, []byte{10, 78, 1, 0}) {
		t.Errorf("blocked4 = %+v, want the one element 10.78.1.0", els)
	}
	p.wantDropped(t, banned)
	p.wantConnect(t, allowed)
	if c, err := n.Counters(); err != nil || c.Packets4 < 2 {
		t.Errorf("Counters = %+v, %v; want drops from both addresses", c, err)
	}
	got, err := n.Unblock(netip.MustParsePrefix("10.78.1.3/32"))
	if err != nil || !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("10.78.1.0/24")}) {
		t.Errorf("Unblock(10.78.1.3/32) = %v, %v; want [10.78.1.0/24]", got, err)
	}
	p.wantConnect(t, banned)
}

// TestBan4Prefix: with IPv4Prefix 24 Ban takes /24 keys only, List returns
// /24s, re-bans never shorten, and Unblock takes an address or any prefix.
func TestBan4Prefix(t *testing.T) {
	ns := newNetNS(t)
	n := openNFT(t, ns, NFTablesConfig{ManageChain: true, IPv4Prefix: 24})
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}
	checkRulesMask(t, raw(t, ns), tbl, &nftables.Chain{Name: "input", Table: tbl}, []byte{255, 255, 255, 0})
	if ok, missing, err := n.Present(); !ok || err != nil {
		t.Errorf("Present = %t %v %v", ok, missing, err)
	}
	for _, k := range []string{"192.0.2.7/32", "192.0.0.0/16"} {
		if err := n.Ban(netip.MustParsePrefix(k), time.Hour); err == nil || !strings.Contains(err.Error(), "/24") {
			t.Errorf("Ban(%s) = %v, want an error naming /24", k, err)
		}
	}
	mustBan(t, n, "192.0.2.77/24", 10*time.Minute) // masked to 192.0.2.0/24
	mustBan(t, n, "198.51.100.0/24", time.Hour)
	mustBan(t, n, "203.0.113.0/24", time.Hour)
	mustBan(t, n, "192.0.2.0/24", time.Hour)   // extends
	mustBan(t, n, "192.0.2.0/24", time.Minute) // never shortens
	wantOnly(t, n, map[string][2]time.Duration{
		"192.0.2.0/24":    {59 * time.Minute, time.Hour},
		"198.51.100.0/24": {59 * time.Minute, time.Hour},
		"203.0.113.0/24":  {59 * time.Minute, time.Hour},
	})
	if got := len(rawElements(t, ns, "sentry", Set4)); got != 3 {
		t.Errorf("%d elements, want 3", got)
	}
	tests := []struct {
		key  string
		want []string
	}{
		{"192.0.2.200/32", []string{"192.0.2.0/24"}},
		{"198.51.100.0/24", []string{"198.51.100.0/24"}},
		{"203.0.0.0/8", []string{"203.0.113.0/24"}},
	}
	for _, tt := range tests {
		got, err := n.Unblock(netip.MustParsePrefix(tt.key))
		var gs []string
		for _, p := range got {
			gs = append(gs, p.String())
		}
		if err != nil || !slices.Equal(gs, tt.want) {
			t.Errorf("Unblock(%s) = %v, %v; want %v", tt.key, gs, err, tt.want)
		}
	}
	if _, err := n.Unblock(netip.MustParsePrefix("192.0.2.1/32")); !errors.Is(err, ErrNotBanned) {
		t.Errorf("Unblock again = %v, want ErrNotBanned", err)
	}
	wantOnly(t, n, nil)
	mustBan(t, n, "192.0.2.0/24", time.Minute) // the fast path again
	wantOnly(t, n, map[string][2]time.Duration{"192.0.2.0/24": {50 * time.Second, time.Minute}})
}

// TestIPv4PrefixChange restarts with a shorter, then the full prefix:
// Setup rewrites the rule each time, and on shortening merges the /32
// elements of a /24 into its network address with the longest time left.
func TestIPv4PrefixChange(t *testing.T) {
	ns := newNetNS(t)
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}
	input := &nftables.Chain{Name: "input", Table: tbl}
	n := openNFT(t, ns, NFTablesConfig{ManageChain: true})
	mustBan(t, n, "192.0.2.7/32", time.Hour)
	mustBan(t, n, "192.0.2.9/32", 10*time.Minute)
	mustBan(t, n, "198.51.100.0/32", 2*time.Hour) // already a network address
	mustBan(t, n, "198.51.100.5/32", time.Minute)

	n24 := openNFT(t, ns, NFTablesConfig{ManageChain: true, IPv4Prefix: 24})
	checkRulesMask(t, raw(t, ns), tbl, input, []byte{255, 255, 255, 0})
	wantOnly(t, n24, map[string][2]time.Duration{
		"192.0.2.0/24":    {59 * time.Minute, time.Hour},
		"198.51.100.0/24": {119 * time.Minute, 2 * time.Hour},
	})
	if got := len(rawElements(t, ns, "sentry", Set4)); got != 2 {
		t.Errorf("%d elements after realigning, want 2", got)
	}
	if ok, missing, err := n.Present(); ok || err != nil || !slices.Equal(missing, []string{"rule input @blocked4"}) {
		t.Errorf("Present for /32 with the /24 rule = %t %v %v", ok, missing, err)
	}

	n32 := openNFT(t, ns, NFTablesConfig{ManageChain: true, IPv4Prefix: 32})
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
		els = append(els, rangeElements(p.Addr(), lastAddr(p), d)...)
	}
	if err := c.AddSet(old, els); err != nil {
		t.Fatal(err)
	}
	if chain {
		accept := nftables.ChainPolicyAccept
		ch := c.AddChain(&nftables.Chain{Name: "input", Table: tbl, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput,
			Priority: nftables.ChainPriorityRef(-10), Policy: &accept})
		c.AddRule(dropRule(tbl, ch, old, unix.NFPROTO_IPV4, 12, 4, nil))
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("create the old blocked4: %v", err)
	}
}

// TestSetupMigratesIntervalSet4 starts over a blocked4 made by the previous
// version: Setup replaces it with the plain set, keeping the active
// single-prefix bans with their remaining time, and rewrites the chain.
func TestSetupMigratesIntervalSet4(t *testing.T) {
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
			n := openNFT(t, ns, NFTablesConfig{ManageChain: true, IPv4Prefix: tt.prefix})
			mustBan(t, n, "2001:db8::/64", time.Hour)
			c := raw(t, ns)
			tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}
			s, err := c.GetSetByName(tbl, Set4)
			if err != nil || s.Interval || !s.HasTimeout {
				t.Fatalf("blocked4 after Setup = %+v, %v; want flags timeout", s, err)
			}
			checkRulesMask(t, c, tbl, &nftables.Chain{Name: "input", Table: tbl}, tt.mask)
			tt.want["2001:db8::/64"] = [2]time.Duration{59 * time.Minute, time.Hour}
			wantOnly(t, n, tt.want)
			if ok, missing, err := n.Present(); !ok || err != nil {
				t.Errorf("Present = %t %v %v", ok, missing, err)
			}
			// A second Setup finds the plain set and keeps it.
			openNFT(t, ns, NFTablesConfig{ManageChain: true, IPv4Prefix: tt.prefix})
			wantOnly(t, n, tt.want)
		})
	}
}

// TestSetupMigrationBusy: a rule Setup does not manage still uses the old
// blocked4, so the kernel refuses to delete it; the error says what to run
// and nothing changes.
func TestSetupMigrationBusy(t *testing.T) {
	ns := newNetNS(t)
	addOldSet4(t, ns, true, map[string]time.Duration{"192.0.2.1/32": time.Hour})
	n, err := OpenNFTables(NFTablesConfig{NetNSFd: ns.fd}) // ManageChain false: input is not ours
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	err = n.Setup()
	if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "`nft delete set inet sentry blocked4`") {
		t.Fatalf("Setup = %v, want EBUSY saying to run nft delete set inet sentry blocked4", err)
	}
	s, err := raw(t, ns).GetSetByName(&nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}, Set4)
	if err != nil || !s.Interval || len(rawElements(t, ns, "sentry", Set4)) != 2 {
		t.Errorf("old blocked4 changed: %+v, %v", s, err)
	}
}

// TestPermissionError runs this test binary as nobody (a copy readable by
// all), which opens the current namespace and calls Setup: netlink answers
// EPERM, which must read as os.ErrPermission and name CAP_NET_ADMIN.
func TestPermissionError(t *testing.T) {
	requireRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "snt-perm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "actions.test")
	if err := copyFile(self, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestPermissionChild$", "-test.v")
	cmd.Env = append(os.Environ(), "SENTRY_NFT_PERM_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("child output:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestPermissionChild") {
		t.Errorf("child as nobody: %v\n%s", err, out)
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func TestPermissionChild(t *testing.T) {
	if os.Getenv("SENTRY_NFT_PERM_CHILD") != "1" {
		t.Skip("helper for TestPermissionError")
	}
	n, err := OpenNFTables(NFTablesConfig{Table: fmt.Sprintf("snt-perm-%d", os.Getpid()), ManageChain: true})
	if err == nil {
		defer n.Close()
		err = n.Setup()
	}
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Fatalf("Setup without privilege = %v, want os.ErrPermission naming CAP_NET_ADMIN", err)
	}
	t.Logf("error: %v", err)
	if n != nil {
		if _, err := n.List(); !errors.Is(err, os.ErrPermission) {
			t.Errorf("List without privilege = %v, want os.ErrPermission", err)
		}
	}
}

// The tests below need no kernel.

func TestNormalizeKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.77/24", "192.0.2.0/24"},
		{"::ffff:192.0.2.1/128", "192.0.2.1/32"},
		{"2001:db8::1:2:3:4/64", "2001:db8::/64"},
	}
	for _, tt := range tests {
		got, err := normalizeKey(netip.MustParsePrefix(tt.in))
		if err != nil || got.String() != tt.want {
			t.Errorf("normalizeKey(%s) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	if _, err := normalizeKey(netip.Prefix{}); err == nil {
		t.Error("normalizeKey(invalid) succeeded")
	}
}

func TestRangePrefixes(t *testing.T) {
	tests := []struct {
		first, last string
		want        []string
	}{
		{"192.0.2.0", "192.0.2.255", []string{"192.0.2.0/24"}},
		{"192.0.2.1", "192.0.2.1", []string{"192.0.2.1/32"}},
		{"192.0.2.1", "192.0.2.6", []string{"192.0.2.1/32", "192.0.2.2/31", "192.0.2.4/31", "192.0.2.6/32"}},
		{"255.255.255.0", "255.255.255.255", []string{"255.255.255.0/24"}},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", []string{"::/0"}},
	}
	for _, tt := range tests {
		var got []string
		for _, p := range rangePrefixes(netip.MustParseAddr(tt.first), netip.MustParseAddr(tt.last)) {
			got = append(got, p.String())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("rangePrefixes(%s, %s) = %v, want %v", tt.first, tt.last, got, tt.want)
		}
	}
}

func TestSpansFromElements(t *testing.T) {
	k := func(s string) []byte { return netip.MustParseAddr(s).AsSlice() }
	els := []nftables.SetElement{
		// Kernel dumps come in descending order.
		{Key: k("10.0.0.9"), IntervalEnd: true},
		{Key: k("10.0.0.8"), Timeout: time.Hour, Expires: time.Minute},
		{Key: k("10.0.0.8"), IntervalEnd: true}, // adjacent range's end
		{Key: k("10.0.0.4"), Timeout: time.Hour, Expires: time.Hour},
		{Key: k("10.0.0.3"), IntervalEnd: true},                           // end of the expired range
		{Key: k("10.0.0.1"), Timeout: time.Second, Expires: 0},            // expired
		{Key: k("10.0.0.0"), IntervalEnd: true},                           // leftover: its start is gone
		{Key: k("255.255.255.0"), Timeout: time.Hour, Expires: time.Hour}, // to the end
	}
	var got []string
	for _, s := range spansFromElements(els) {
		got = append(got, fmt.Sprintf("%s %v", s, s.expires))
	}
	want := []string{"10.0.0.4/30 1h0m0s", "10.0.0.8/32 1m0s", "255.255.255.0/24 1h0m0s"}
	if !slices.Equal(got, want) {
		t.Errorf("spans = %v, want %v", got, want)
	}
}

func TestErrnoOf(t *testing.T) {
	tests := []struct {
		err  error
		want syscall.Errno
	}{
		{fmt.Errorf("receiveAckAware: %v", syscall.EPERM), syscall.EPERM},
		{fmt.Errorf("conn.Receive: %w", errors.Join(syscall.EEXIST)), syscall.EEXIST},
		{errors.New("receiveAckAware: netlink receive: no such file or directory"), syscall.ENOENT},
		{errors.New("something else"), 0},
	}
	for _, tt := range tests {
		if got := errnoOf(tt.err); got != tt.want {
			t.Errorf("errnoOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	err := kernelError("add", fmt.Errorf("x: %v", syscall.EPERM))
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Errorf("kernelError(EPERM) = %v", err)
	}
}

func TestRecordOverlaps(t *testing.T) {
	var r record
	r.init()
	now := time.Now()
	r.put(netip.MustParsePrefix("2001:db8:1:1::/64"), now, time.Hour)
	r.put(netip.MustParsePrefix("192.0.2.1/32"), now, time.Hour)
	r.put(netip.MustParsePrefix("192.0.2.2/32"), now, -time.Second) // expired
	tests := []struct {
		key  string
		want bool
	}{
		{"2001:db8:1:1::/64", true},
		{"2001:db8:1:1::5/128", true},
		{"2001:db8:1::/48", true},
		{"2001:db8:1:2::/64", false},
		{"192.0.2.1/32", true},
		{"192.0.2.2/32", false},
		{"192.0.2.0/24", true},
		{"192.0.3.0/24", false},
	}
	for _, tt := range tests {
		if got := r.overlaps(netip.MustParsePrefix(tt.key), now); got != tt.want {
			t.Errorf("overlaps(%s) = %t, want %t", tt.key, got, tt.want)
		}
	}
	for i := range 5000 {
		r.put(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32), now, -time.Second)
	}
	r.sweep(now)
	if len(r.until) != 2 || r.lens[0][32] != 1 {
		t.Errorf("after sweep: %d entries, %d /32s; want 2 and 1", len(r.until), r.lens[0][32])
	}
	// The sweeps that puts trigger forget only what has expired, not
	// bans ending before the newest one.
	for i := range 5000 {
		r.put(v4Key(i), now.Add(time.Duration(i)*time.Millisecond), time.Hour)
	}
	for _, k := range []netip.Prefix{v4Key(0), netip.MustParsePrefix("192.0.2.1/32")} {
		if !r.overlaps(k, now.Add(time.Minute)) {
			t.Errorf("after 5000 puts the record forgot %s", k)
		}
	}
}

func TestOpenNFTablesValidates(t *testing.T) {
	if _, err := OpenNFTables(NFTablesConfig{Hooks: []string{"output"}}); err == nil || !strings.Contains(err.Error(), "output") {
		t.Errorf("hook output: %v", err)
	}
	if _, err := OpenNFTables(NFTablesConfig{Table: strings.Repeat("x", 300)}); err == nil {
		t.Error("long table name accepted")
	}
	for _, p := range []int{-1, 33} {
		if _, err := OpenNFTables(NFTablesConfig{IPv4Prefix: p}); err == nil {
			t.Errorf("IPv4Prefix %d accepted", p)
		}
	}
	_ = unix.NFPROTO_INET
}
