//go:build linux

package actions

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// openTable opens a Table in ns and applies spec.
func openTable(tb testing.TB, ns netNS, spec TableSpec) *Table {
	tb.Helper()
	return openTableFd(tb, ns.fd, spec)
}

// openTableFd opens a Table in the namespace fd and applies spec.
func openTableFd(tb testing.TB, fd int, spec TableSpec) *Table {
	tb.Helper()
	n, err := OpenTable(spec, fd)
	if err != nil {
		tb.Fatalf("OpenTable: %v", err)
	}
	tb.Cleanup(func() { n.Close() })
	if err := n.Apply(spec); err != nil {
		tb.Fatalf("Apply: %v", err)
	}
	return n
}

// missing returns n.Missing(), failing the test on an error.
func missing(tb testing.TB, n *Table) []string {
	tb.Helper()
	m, err := n.Missing()
	if err != nil {
		tb.Fatalf("Missing: %v", err)
	}
	return m
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

func list(tb testing.TB, n *Table) map[netip.Prefix]BanEntry {
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

func mustBan(tb testing.TB, n *Table, key string, d time.Duration) {
	tb.Helper()
	if err := n.Ban(netip.MustParsePrefix(key), d); err != nil {
		tb.Fatalf("Ban(%s, %v): %v", key, d, err)
	}
}

// wantOnly checks that List holds exactly the given keys, each with Expires
// within [lo, hi].
func wantOnly(tb testing.TB, n *Table, want map[string][2]time.Duration) {
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

func TestApplyCreatesTableSetsChains(t *testing.T) {
	ns := newNetNS(t)
	openTable(t, ns, TableSpec{ManageChain: true, Hooks: []string{"input", "forward"}})
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
	if m := missing(t, openTable(t, ns, TableSpec{ManageChain: true, Hooks: []string{"forward", "input"}})); len(m) != 0 {
		t.Errorf("Missing = %v, want nothing", m)
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
				if e.Invert {
					parts = append(parts, "!@"+e.SetName)
				} else {
					parts = append(parts, "@"+e.SetName)
				}
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
		// Each drops a banned source unless it is on the allow list.
		fmt.Sprintf("meta%d cmp[2] payload1@12/4%s @blocked4 payload1@12/4 !@allow4 counter verdict%d", expr.MetaKeyNFPROTO, and, expr.VerdictDrop),
		fmt.Sprintf("meta%d cmp[10] payload1@8/16 @blocked6 payload1@8/16 !@allow6 counter verdict%d", expr.MetaKeyNFPROTO, expr.VerdictDrop),
		// First strike's IPv6 bans, masked to the default /64.
		fmt.Sprintf("meta%d cmp[10] payload1@8/16 and[255 255 255 255 255 255 255 255 0 0 0 0 0 0 0 0]^[0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0] @strike6 payload1@8/16 !@allow6 counter verdict%d", expr.MetaKeyNFPROTO, expr.VerdictDrop),
		// IPv4 bans wider than the key length (aggregates).
		fmt.Sprintf("meta%d cmp[2] payload1@12/4 @wide4 payload1@12/4 !@allow4 counter verdict%d", expr.MetaKeyNFPROTO, expr.VerdictDrop),
	}
	if !slices.Equal(got, want) {
		tb.Errorf("chain %s rules:\n%s\nwant:\n%s", ch.Name, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestApplyTwiceKeepsOneCopyAndElements(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true})
	mustBan(t, n, "192.0.2.7/32", time.Hour)
	mustBan(t, n, "2001:db8:1:2::/64", time.Hour)
	if err := n.Apply(n.Spec()); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	n2 := openTable(t, ns, TableSpec{ManageChain: true}) // a restart
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}
	checkRules(t, raw(t, ns), tbl, &nftables.Chain{Name: "input", Table: tbl})
	wantOnly(t, n2, map[string][2]time.Duration{
		"192.0.2.7/32":      {59 * time.Minute, time.Hour},
		"2001:db8:1:2::/64": {59 * time.Minute, time.Hour},
	})
}

func TestApplyPriorityAndHookChange(t *testing.T) {
	ns := newNetNS(t)
	openTable(t, ns, TableSpec{ManageChain: true, Hooks: []string{"input", "forward"}})
	openTable(t, ns, TableSpec{ManageChain: true, Hooks: []string{"forward"}, Priority: 5})
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

func TestApplySetsOnly(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{})
	mustBan(t, n, "198.51.100.1/32", time.Hour)
	chains, err := raw(t, ns).ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	if len(chains) != 0 {
		t.Errorf("ManageChain false created chains: %v", chains[0].Name)
	}
	if m := missing(t, n); len(m) != 0 {
		t.Errorf("Missing = %v", m)
	}
	// A managed chain made earlier survives an Apply without ManageChain.
	openTable(t, ns, TableSpec{ManageChain: true})
	openTable(t, ns, TableSpec{})
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}
	checkRules(t, raw(t, ns), tbl, &nftables.Chain{Name: "input", Table: tbl})
}

func TestApplyLeavesOtherTablesAlone(t *testing.T) {
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
	n := openTable(t, ns, TableSpec{ManageChain: true})
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

func TestApplyRejectsIncompatibleSet(t *testing.T) {
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
	n, err := OpenTable(TableSpec{}, ns.fd)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	err = n.Apply(n.Spec())
	if !errors.Is(err, syscall.EEXIST) || !strings.Contains(err.Error(), "`nft delete set inet sentry blocked4`") {
		t.Errorf("Apply over a blocked4 without timeout = %v, want EEXIST saying what to delete", err)
	}
	if m := missing(t, n); !slices.Equal(m, []string{"set blocked4", "set blocked6", "set strike6", "set wide4", "set allow4", "set allow6"}) {
		t.Errorf("Missing = %v, want blocked4 wrong, blocked6 and strike6 missing", m)
	}
}

func TestMissingReportsWhatIsGone(t *testing.T) {
	ns := newNetNS(t)
	n, err := OpenTable(TableSpec{ManageChain: true}, ns.fd)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if m := missing(t, n); !slices.Equal(m, []string{"table inet sentry"}) {
		t.Errorf("before Apply: Missing = %v", m)
	}
	if err := n.Apply(n.Spec()); err != nil {
		t.Fatal(err)
	}
	c := raw(t, ns)
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}
	c.FlushChain(&nftables.Chain{Name: "input", Table: tbl})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if m := missing(t, n); !slices.Equal(m, []string{"rule input @blocked4", "rule input @blocked6", "rule input @strike6", "rule input @wide4"}) {
		t.Errorf("after flushing the chain: Missing = %v", m)
	}
	c.DelChain(&nftables.Chain{Name: "input", Table: tbl})
	c.DelSet(&nftables.Set{Name: "blocked6", Table: tbl})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if m := missing(t, n); !slices.Equal(m, []string{"set blocked6", "chain input"}) {
		t.Errorf("after deleting: Missing = %v", m)
	}
	if err := n.Apply(n.Spec()); err != nil {
		t.Fatal(err)
	}
	if m := missing(t, n); len(m) != 0 {
		t.Errorf("after repair: Missing = %v", m)
	}
}

// TestPermissionError runs this test binary as nobody (a copy readable by
// all), which opens the current namespace and calls Apply: netlink answers
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
	n, err := OpenTable(TableSpec{Table: fmt.Sprintf("snt-perm-%d", os.Getpid()), ManageChain: true}, 0)
	if err == nil {
		defer n.Close()
		err = n.Apply(n.Spec())
	}
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Fatalf("Apply without privilege = %v, want os.ErrPermission naming CAP_NET_ADMIN", err)
	}
	t.Logf("error: %v", err)
	if n != nil {
		if _, err := n.List(); !errors.Is(err, os.ErrPermission) {
			t.Errorf("List without privilege = %v, want os.ErrPermission", err)
		}
	}
}
