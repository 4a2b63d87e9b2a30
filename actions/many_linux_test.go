//go:build linux

package actions

import (
	"testing"
	"time"

	"github.com/google/nftables"
)

// TestBanMany: the daemon's own bans put back together, as Ban puts each:
// a first strike's provisional ban of a key (IPv4 in blocked4, IPv6 in
// strike6), made behind this Table's back, gives way to the daemon's.
func TestBanMany(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true})
	mustBan(t, n, "192.0.2.99/32", time.Hour) // n has read the sets
	addRaw(t, ns, Set4, nftables.SetElement{Key: v4Key(3).Addr().AsSlice(), Timeout: 10 * time.Minute})
	c := raw(t, ns)
	strike6 := &nftables.Set{Table: &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}, Name: SetStrike6, KeyType: nftables.TypeIP6Addr}
	if err := c.SetAddElements(strike6, []nftables.SetElement{{Key: v6Key(4).Addr().AsSlice(), Timeout: 10 * time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	var bans []KeyBan
	for i := range 300 {
		bans = append(bans, KeyBan{Key: v4Key(i), Timeout: time.Hour}, KeyBan{Key: v6Key(i), Timeout: time.Hour})
	}
	before := n.flushes
	for i, err := range n.BanMany(bans) {
		if err != nil {
			t.Errorf("ban %d (%s): %v", i, bans[i].Key, err)
		}
	}
	if d := n.flushes - before; d != 3 {
		t.Errorf("%d transactions for 600 bans, want 3", d)
	}
	got := list(t, openTable(t, ns, TableSpec{ManageChain: true}))
	for _, b := range bans {
		if e, ok := got[b.Key]; !ok || e.Origin != OriginDaemon || e.Timeout != time.Hour {
			t.Errorf("%s: %+v (present %v), want the daemon's 1h ban", b.Key, e, ok)
		}
	}
	if els := rawElements(t, ns, "sentry", SetStrike6); len(els) != 0 {
		t.Errorf("strike6 still holds %d elements", len(els))
	}
}
