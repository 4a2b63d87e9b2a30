//go:build linux

package actions

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

// fullSpec has everything: the managed ban chains on both hooks, first
// strike with a distinct-ports and a hits rule, advanced mode, allow
// entries and listening ports.
func fullSpec() TableSpec {
	adv := advancedTestConfig()
	return TableSpec{
		ManageChain: true,
		Hooks:       []string{HookInput, HookForward},
		Allow:       []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("192.0.2.0/24")},
		FirstStrike: &FirstStrikeConfig{Group: 7, MaxPerMinute: 60, Rules: []FirstStrikeRule{
			synRule(5),
			{Name: "udp", Proto: 17, Hits: 3, Window: time.Minute, Ports: []rules.PortRange{{Lo: 161, Hi: 162}}},
		}},
		Advanced: &adv,
		Listen:   ListenPorts{TCP: []uint16{22, 443}, UDP: []uint16{53}},
	}
}

// tableText is `nft list table inet sentry` in ns, the bans' time left
// blanked.
func tableText(t *testing.T, ns netNS) string {
	t.Helper()
	return expiresRE.ReplaceAllString(nftList(t, ns.name, "table", "inet", "sentry"), "expires X")
}

// canonical sorts the sets and chains of a table listing: nft lists them
// in the order they were made, which a repair changes.
func canonical(text string) string {
	var blocks []string
	var cur []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "set ") || strings.HasPrefix(l, "chain ") {
			cur = []string{l}
			continue
		}
		if cur != nil {
			cur = append(cur, l)
			if l == "}" {
				blocks = append(blocks, strings.Join(cur, "\n"))
				cur = nil
			}
		}
	}
	slices.Sort(blocks)
	return strings.Join(blocks, "\n")
}

// TestApplyIsOneBatchAndIdempotent: Apply sends one batch, a second Apply
// of the same spec changes nothing, and each rule is there once.
func TestApplyIsOneBatchAndIdempotent(t *testing.T) {
	ns := newNetNS(t)
	spec := fullSpec()
	n, err := OpenTable(spec, ns.fd)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if m := missing(t, n); !slices.Equal(m, []string{"table inet sentry"}) {
		t.Errorf("OpenTable changed the kernel: Missing = %v", m)
	}
	var texts []string
	for i := range 3 {
		before := n.flushes
		if err := n.Apply(spec); err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
		if n.flushes != before+1 {
			t.Errorf("Apply %d sent %d batches, want 1", i, n.flushes-before)
		}
		texts = append(texts, tableText(t, ns))
		if i == 0 {
			mustBan(t, n, "198.51.100.7/32", time.Hour)
			texts[0] = tableText(t, ns)
		}
	}
	if texts[1] != texts[0] || texts[2] != texts[0] {
		t.Errorf("Apply again changed the table:\n%s\nwas\n%s", texts[2], texts[0])
	}
	for _, once := range []string{
		"ip saddr @blocked4 ip saddr != @allow4 counter", "ip6 saddr @blocked6 ip6 saddr != @allow6 counter", "jump fs0", "jump fs1",
		`log prefix "SENTRY-FS" group 7`, "ip saddr @allow4 return", "tcp dport @listen_tcp return",
		"elements = { 127.0.0.0/8, 192.0.2.0/24 }", "elements = { 22, 443 }", "elements = { 53 }",
	} {
		// Two ban chains hold each drop rule once each.
		want := 1
		if strings.Contains(once, "@blocked") || strings.Contains(once, "@listen") || strings.Contains(once, "SENTRY-FS") {
			// input and forward; first strike and advanced mode; the
			// strikes that ban and those that only drop (in ::/64, which
			// holds the allowed ::1)
			want = 2
		}
		if got := strings.Count(texts[2], once); got != want {
			t.Errorf("%d copies of %q, want %d:\n%s", got, once, want, texts[2])
		}
	}
	if m := missing(t, n); len(m) != 0 {
		t.Errorf("Missing = %v", m)
	}
	wantOnly(t, n, map[string][2]time.Duration{"198.51.100.7/32": {59 * time.Minute, time.Hour}})
	if got := n.Spec(); got.FirstStrike == nil || got.FirstStrike.Prefix != DefaultFirstStrikePrefix || got.IPv4Prefix != 32 {
		t.Errorf("Spec() = %+v, want the applied spec with defaults", got)
	}
	other := fullSpec()
	other.Table = "other"
	if err := n.Apply(other); err == nil || !strings.Contains(err.Error(), "owns table inet sentry") {
		t.Errorf("Apply of another table's spec: %v", err)
	}
}

// TestApplyAfterFlushRuleset: the table deleted behind our back (what `nft
// flush ruleset` does to it) is reported as missing and comes back whole
// with one Apply of Spec(): ban chains, first strike with its allow and
// listen sets filled, advanced mode. Partial damage is named and repaired
// the same way.
func TestApplyAfterFlushRuleset(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, fullSpec())
	want := tableText(t, ns)
	if c := "\n" + canonical(want); strings.Count(c, "\nchain ") != 8 || strings.Count(c, "\nset ") != 17 {
		t.Fatalf("canonical form of the table has not 8 chains and 17 sets:\n%s", c)
	}
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: DefaultTable}

	c := raw(t, ns)
	c.DelTable(tbl)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if m := missing(t, n); !slices.Equal(m, []string{"table inet sentry"}) {
		t.Errorf("after deleting the table: Missing = %v", m)
	}
	if err := n.Apply(n.Spec()); err != nil {
		t.Fatalf("Apply after the flush: %v", err)
	}
	if got := tableText(t, ns); got != want {
		t.Errorf("after the flush and Apply:\n%s\nwant\n%s", got, want)
	}
	if m := missing(t, n); len(m) != 0 {
		t.Errorf("after repair: Missing = %v", m)
	}

	// Partial damage: a chain deleted, another flushed, sets deleted.
	c.FlushChain(&nftables.Chain{Name: StrikeChain, Table: tbl})
	c.FlushChain(&nftables.Chain{Name: "forward", Table: tbl})
	c.DelChain(&nftables.Chain{Name: AdvancedChain, Table: tbl})
	c.DelSet(&nftables.Set{Name: SetWatchUDP, Table: tbl})
	c.FlushChain(&nftables.Chain{Name: FirstStrikeChain, Table: tbl})
	c.DelChain(&nftables.Chain{Name: FirstStrikeChain, Table: tbl})
	c.FlushChain(&nftables.Chain{Name: "fs1", Table: tbl})
	c.DelChain(&nftables.Chain{Name: "fs1", Table: tbl})
	c.DelSet(&nftables.Set{Name: "fs1_hits6", Table: tbl})
	// (allow4 cannot go: the input chain's drop rules read it.)
	c.DelSet(&nftables.Set{Name: SetWatchTCP, Table: tbl})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	wantMissing := []string{"set fs1_hits6", "set watch_tcp", "set watch_udp",
		"rule forward @blocked4", "rule forward @blocked6", "rule forward @strike6", "rule forward @wide4",
		"chain firststrike", "rules of chain strike", "chain fs1", "chain advanced"}
	if m := missing(t, n); !slices.Equal(m, wantMissing) {
		t.Errorf("after partial damage: Missing =\n%v\nwant\n%v", m, wantMissing)
	}
	if err := n.Apply(n.Spec()); err != nil {
		t.Fatalf("Apply after partial damage: %v", err)
	}
	if got := tableText(t, ns); canonical(got) != canonical(want) {
		t.Errorf("after partial damage and Apply:\n%s\nwant\n%s", got, want)
	}
	// A base chain moved to another priority is not ours as it stands.
	c.DelChain(&nftables.Chain{Name: AdvancedChain, Table: tbl})
	c.AddChain(baseChain(tbl, AdvancedChain, nftables.ChainHookInput, 3))
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if m := missing(t, n); !slices.Equal(m, []string{"chain advanced"}) {
		t.Errorf("after moving the advanced chain: Missing = %v", m)
	}
	if err := n.Apply(n.Spec()); err != nil {
		t.Fatal(err)
	}
	if got := tableText(t, ns); canonical(got) != canonical(want) {
		t.Errorf("after moving the advanced chain and Apply:\n%s\nwant\n%s", got, want)
	}
}

// TestApplyDropsOneFeatureKeepsShared: an Apply without first strike takes
// its chains and sets, keeps the bans, and keeps the listen sets advanced
// mode reads; an Apply without advanced mode likewise keeps them for first
// strike. Missing, of a Table that still wants the dropped feature, names
// what went.
func TestApplyDropsOneFeatureKeepsShared(t *testing.T) {
	ns := newNetNS(t)
	full := fullSpec()
	n := openTable(t, ns, full)
	mustBan(t, n, "198.51.100.7/32", time.Hour)
	mustBan(t, n, "2001:db8:7::/64", time.Hour)
	bans := map[string][2]time.Duration{"198.51.100.7/32": {59 * time.Minute, time.Hour}, "2001:db8:7::/64": {59 * time.Minute, time.Hour}}
	// A second Table, as `sentry-nflog list` opens one, wanting it all.
	wants, err := OpenTable(full, ns.fd)
	if err != nil {
		t.Fatal(err)
	}
	defer wants.Close()

	noFS := full
	noFS.FirstStrike = nil
	if err := n.Apply(noFS); err != nil {
		t.Fatal(err)
	}
	text := tableText(t, ns)
	for _, gone := range []string{"firststrike", "chain strike", "chain fs", "fs0_", "fs1_"} {
		if strings.Contains(text, gone) {
			t.Errorf("without first strike %q is left:\n%s", gone, text)
		}
	}
	// The allow sets stay: they guard the drop rules too.
	for _, kept := range []string{"set listen_tcp", "set listen_udp", "chain advanced", "set watch_tcp", "chain input", "chain forward", "set strike6", "set allow4", "set allow6"} {
		if !strings.Contains(text, kept) {
			t.Errorf("without first strike %q is gone:\n%s", kept, text)
		}
	}
	wantOnly(t, n, bans)
	if m := missing(t, n); len(m) != 0 {
		t.Errorf("Missing of the applied spec = %v", m)
	}
	wantGone := []string{"set fs_struck6", "set fs0_probes4", "set fs0_rate4", "set fs0_probes6", "set fs0_rate6",
		"set fs1_hits4", "set fs1_hits6", "chain firststrike", "chain strike", "chain strike_narrow", "chain fs0", "chain fs1"}
	if m := missing(t, wants); !slices.Equal(m, wantGone) {
		t.Errorf("Missing of the full spec =\n%v\nwant\n%v", m, wantGone)
	}

	noAdv := full
	noAdv.Advanced = nil
	if err := n.Apply(noAdv); err != nil {
		t.Fatal(err)
	}
	text = tableText(t, ns)
	for _, gone := range []string{"chain advanced", "watch_tcp", "watch_udp"} {
		if strings.Contains(text, gone) {
			t.Errorf("without advanced mode %q is left:\n%s", gone, text)
		}
	}
	for _, kept := range []string{"set listen_tcp", "set listen_udp", "chain firststrike", "jump fs0", "set allow4", "elements = { 22, 443 }"} {
		if !strings.Contains(text, kept) {
			t.Errorf("without advanced mode %q is gone:\n%s", kept, text)
		}
	}
	wantOnly(t, n, bans)
	if m := missing(t, wants); !slices.Equal(m, []string{"set watch_tcp", "set watch_udp", "chain advanced"}) {
		t.Errorf("Missing of the full spec = %v, want advanced mode's objects", m)
	}
	if m := missing(t, n); len(m) != 0 {
		t.Errorf("Missing of the applied spec = %v", m)
	}
}

// TestApplyKeepsCountingState: first strike's counting sets go on across an
// Apply that changes something else (here the allow list), and start over
// when first strike changes, or at a new process's first Apply.
func TestApplyKeepsCountingState(t *testing.T) {
	ns := newNetNS(t)
	spec := fullSpec()
	n := openTable(t, ns, spec)
	probes := &nftables.Set{Table: &nftables.Table{Family: nftables.TableFamilyINet, Name: DefaultTable}, Name: "fs0_probes4",
		KeyType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService), HasTimeout: true}
	count := func() {
		t.Helper()
		c := raw(t, ns)
		if err := c.SetAddElements(probes, []nftables.SetElement{{Key: []byte{203, 0, 113, 9, 0, 22, 0, 0}, Timeout: time.Minute}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatalf("add to fs0_probes4: %v", err)
		}
	}
	count()
	spec.Allow = append(spec.Allow, netip.MustParsePrefix("203.0.113.0/24"))
	if err := n.Apply(spec); err != nil {
		t.Fatal(err)
	}
	if got := len(rawElements(t, ns, DefaultTable, "fs0_probes4")); got != 1 {
		t.Errorf("after an Apply changing the allow list: %d counted, want 1 kept", got)
	}
	if !strings.Contains(nftList(t, ns.name, "set", "inet", "sentry", SetAllow4), "203.0.113.0/24") {
		t.Error("the new allow entry is not in allow4")
	}
	spec.FirstStrike.MaxPerMinute = 30
	if err := n.Apply(spec); err != nil {
		t.Fatal(err)
	}
	if got := len(rawElements(t, ns, DefaultTable, "fs0_probes4")); got != 0 {
		t.Errorf("after an Apply changing first strike: %d counted, want 0", got)
	}
	count()
	openTable(t, ns, spec) // a new process
	if got := len(rawElements(t, ns, DefaultTable, "fs0_probes4")); got != 0 {
		t.Errorf("after a new process's first Apply: %d counted, want 0", got)
	}
}

// TestStickyMarshalError pins the google/nftables behaviour Table.discard
// guards against: after one message fails to marshal, every later Flush
// of that Conn fails, whatever it holds.
func TestStickyMarshalError(t *testing.T) {
	c, err := nftables.New() // not lasting: nothing is dialled before a Flush
	if err != nil {
		t.Fatal(err)
	}
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: "snt-sticky"}
	queueUnmarshalable(c, tbl)
	err1 := c.Flush()
	c.AddTable(tbl)
	err2 := c.Flush()
	if err1 == nil || err2 == nil || err1.Error() != err2.Error() {
		t.Errorf("Flush after a marshalling error = %v, then %v; want the same error twice", err1, err2)
	}
}

// queueUnmarshalable queues a rule whose log prefix is too long for a
// netlink attribute: google/nftables records the error and fails every
// later Flush of c.
func queueUnmarshalable(c *nftables.Conn, tbl *nftables.Table) {
	c.AddRule(&nftables.Rule{Table: tbl, Chain: &nftables.Chain{Name: "input", Table: tbl},
		Exprs: []expr.Any{&expr.Log{Key: 1 << unix.NFTA_LOG_PREFIX, Data: make([]byte, 65531)}}})
}

// TestFailedBatchIsDiscarded: an Apply that fails while its batch is being
// built changes nothing, and the Ban after it succeeds and sends none of
// the failed batch's messages, whether the failure left google/nftables'
// sticky marshalling error behind or not.
func TestFailedBatchIsDiscarded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sticky bool
	}{{"build error", false}, {"marshalling error", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNetNS(t)
			n := openTable(t, ns, TableSpec{ManageChain: true})
			want := tableText(t, ns)
			injected := errors.New("injected build failure")
			n.beforeFlush = func(c *nftables.Conn) error {
				if tc.sticky {
					queueUnmarshalable(c, n.table)
				}
				return injected
			}
			if err := n.Apply(fullSpec()); !errors.Is(err, injected) {
				t.Fatalf("Apply = %v, want the injected error", err)
			}
			n.beforeFlush = nil
			if got := tableText(t, ns); got != want {
				t.Errorf("a failed Apply changed the table:\n%s\nwas\n%s", got, want)
			}
			if s := n.Spec(); s.FirstStrike != nil || len(s.Hooks) != 1 {
				t.Errorf("a failed Apply changed Spec(): %+v", s)
			}
			mustBan(t, n, "198.51.100.7/32", time.Hour)
			mustBan(t, n, "2001:db8:7::/64", time.Hour)
			text := tableText(t, ns)
			for _, leaked := range []string{"firststrike", "forward", "advanced", "listen_tcp"} {
				if strings.Contains(text, leaked) {
					t.Errorf("the failed batch's %q reached the kernel with the next one:\n%s", leaked, text)
				}
			}
			wantOnly(t, n, map[string][2]time.Duration{"198.51.100.7/32": {59 * time.Minute, time.Hour}, "2001:db8:7::/64": {59 * time.Minute, time.Hour}})
			// And the failed spec applies when nothing gets in the way.
			if err := n.Apply(fullSpec()); err != nil {
				t.Fatal(err)
			}
			if m := missing(t, n); len(m) != 0 {
				t.Errorf("Missing = %v", m)
			}
		})
	}
}

// TestForgetWithoutSpec: a Table opened with no first strike in its spec
// (as `sentry-nflog unblock` opens one) finds the counting sets by name
// and deletes the key's elements, at the key lengths of its spec, and
// nothing else; nothing to forget, or no table, is not an error.
func TestForgetWithoutSpec(t *testing.T) {
	ns := newNetNS(t)
	full := fullSpec()
	full.IPv4Prefix = 24
	openTable(t, ns, full)
	tbl := &nftables.Table{Family: nftables.TableFamilyINet, Name: DefaultTable}
	c := raw(t, ns)
	add := func(set string, keys ...[]byte) {
		t.Helper()
		s := &nftables.Set{Table: tbl, Name: set, HasTimeout: true}
		var els []nftables.SetElement
		for _, k := range keys {
			els = append(els, nftables.SetElement{Key: k, Timeout: time.Minute})
		}
		if err := c.SetAddElements(s, els); err != nil {
			t.Fatal(err)
		}
	}
	v6 := func(s string) []byte { return netip.MustParseAddr(s).AsSlice() }
	// Keys are network addresses at the key length: /24 and /64.
	add("fs0_probes4", []byte{192, 0, 2, 0, 0, 22, 0, 0}, []byte{192, 0, 2, 0, 0, 23, 0, 0}, []byte{198, 51, 100, 0, 0, 22, 0, 0})
	add("fs0_rate4", []byte{192, 0, 2, 0}, []byte{198, 51, 100, 0})
	add("fs1_hits4", []byte{192, 0, 2, 0})
	add("fs0_rate6", v6("2001:db8:1::"), v6("2001:db8:2::"))
	add("fs1_hits6", v6("2001:db8:1::"))
	if err := c.Flush(); err != nil {
		t.Fatalf("fill the counting sets: %v", err)
	}

	n, err := OpenTable(TableSpec{IPv4Prefix: 24}, ns.fd)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, k := range []string{"192.0.2.7/32", "2001:db8:1::5/128"} {
		if err := n.Forget(netip.MustParsePrefix(k)); err != nil {
			t.Fatalf("Forget(%s): %v", k, err)
		}
	}
	for set, want := range map[string]int{"fs0_probes4": 1, "fs0_rate4": 1, "fs1_hits4": 0, "fs0_rate6": 1, "fs1_hits6": 0} {
		if got := len(rawElements(t, ns, DefaultTable, set)); got != want {
			t.Errorf("%s holds %d elements after Forget, want %d", set, got, want)
		}
	}
	before := n.flushes
	if err := n.Forget(netip.MustParsePrefix("192.0.2.7/32")); err != nil || n.flushes != before {
		t.Errorf("Forget with nothing to forget = %v and %d batches, want nil and none", err, n.flushes-before)
	}
	empty, err := OpenTable(TableSpec{}, newNetNS(t).fd)
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	if err := empty.Forget(netip.MustParsePrefix("192.0.2.7/32")); err != nil {
		t.Errorf("Forget without a table: %v", err)
	}
}
