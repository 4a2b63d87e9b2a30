//go:build linux

package actions

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestBanFromKeepsItsOrigin: a remote ban's element carries its origin,
// which List reports (IPv4 and IPv6), a longest-allowed origin fits the
// kernel's comment, and the element is never taken for a provisional
// first-strike ban.
func TestBanFromKeepsItsOrigin(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true})
	long := strings.Repeat("h", 64)
	if err := n.BanFrom(netip.MustParsePrefix("192.0.2.1/32"), time.Hour, "web1"); err != nil {
		t.Fatal(err)
	}
	if err := n.BanFrom(netip.MustParsePrefix("2001:db8:bad:1::/64"), time.Hour, long); err != nil {
		t.Fatal(err)
	}
	mustBan(t, n, "192.0.2.2/32", time.Hour)
	for _, bad := range []string{"", "a b", strings.Repeat("x", maxCommentLen)} {
		if err := n.BanFrom(netip.MustParsePrefix("192.0.2.9/32"), time.Hour, bad); err == nil {
			t.Errorf("BanFrom with origin %q accepted", bad)
		}
	}
	// A fresh Table reads the kernel, as `list` does.
	bans, err := openTable(t, ns, TableSpec{ManageChain: true}).List()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"192.0.2.1/32": "fleet:web1", "192.0.2.2/32": OriginDaemon, "2001:db8:bad:1::/64": "fleet:" + long}
	if len(bans) != len(want) {
		t.Fatalf("bans %+v, want %v", bans, want)
	}
	for _, b := range bans {
		if want[b.Key.String()] != b.Origin {
			t.Errorf("%s: origin %q, want %q", b.Key, b.Origin, want[b.Key.String()])
		}
	}
	// A shorter ban of the remote key, local or remote, leaves it as it
	// is: the element is ours, not provisional.
	mustBan(t, n, "192.0.2.1/32", time.Minute)
	if err := n.BanFrom(netip.MustParsePrefix("192.0.2.1/32"), time.Minute, "web2"); err != nil {
		t.Fatal(err)
	}
	if b, ok := list(t, n)[netip.MustParsePrefix("192.0.2.1/32")]; !ok || b.Origin != "fleet:web1" || b.Expires < 59*time.Minute {
		t.Errorf("after shorter bans: %+v (present %v), want fleet:web1 with about an hour left", b, ok)
	}
	// A longer remote ban of the daemon's key extends it, and says so.
	if err := n.BanFrom(netip.MustParsePrefix("192.0.2.2/32"), 2*time.Hour, "web2"); err != nil {
		t.Fatal(err)
	}
	if b, ok := list(t, n)[netip.MustParsePrefix("192.0.2.2/32")]; !ok || b.Origin != "fleet:web2" || b.Expires < 119*time.Minute {
		t.Errorf("after a longer remote ban: %+v (present %v), want fleet:web2 with about 2h left", b, ok)
	}
}

// TestBanFromMany: a fleet's bans applied together, in a few batches, as
// BanFrom applies each: the keys a batch can take go in it, a key the
// daemon bans longer keeps its ban, a batch holding a key inside a range
// this Table does not know of (someone else's) is refused by the kernel
// and applied ban by ban, and a bad origin fails alone.
func TestBanFromMany(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true})
	mustBan(t, n, "10.0.0.5/32", 2*time.Hour)
	// After n has read the sets: a range n's record does not know of.
	mustBan(t, openTable(t, ns, TableSpec{}), "2001:db8:ff::/48", time.Minute)
	var bans []RemoteBan
	for i := range 600 {
		bans = append(bans, RemoteBan{Key: v4Key(i), Timeout: time.Hour, Origin: "web1"})
	}
	for i := range 300 {
		bans = append(bans, RemoteBan{Key: v6Key(i), Timeout: time.Hour, Origin: "web2"})
	}
	inside := len(bans)
	bans = append(bans, RemoteBan{Key: netip.MustParsePrefix("2001:db8:ff:1::/64"), Timeout: time.Hour, Origin: "web2"})
	bad := len(bans)
	bans = append(bans, RemoteBan{Key: netip.MustParsePrefix("192.0.2.9/32"), Timeout: time.Hour, Origin: "a b"})
	before := n.flushes
	errs := n.BanFromMany(bans)
	for i, err := range errs {
		if (err != nil) != (i == bad) {
			t.Errorf("ban %d (%s): %v", i, bans[i].Key, err)
		}
	}
	// Three batches of 256 taken, then the last batch (133 bans, with
	// the key inside the unknown range) refused and applied ban by ban:
	// 136 transactions, a few more if a ban of the last batch took the
	// slow path, against 900 ban by ban.
	if d := n.flushes - before; d < 136 || d > 140 {
		t.Errorf("%d transactions for %d bans, want 136-140", d, len(bans))
	}
	got := list(t, openTable(t, ns, TableSpec{ManageChain: true}))
	for i, b := range bans[:inside] {
		e, ok := got[b.Key]
		want := "fleet:" + b.Origin
		if i == 5 {
			want = OriginDaemon // banned for longer before
		}
		if !ok || e.Origin != want || e.Expires < 59*time.Minute {
			t.Errorf("%s: %+v (present %v), want %s with about an hour or more left", b.Key, e, ok, want)
		}
	}
	if e := got[v4Key(5)]; e.Expires < 119*time.Minute {
		t.Errorf("the daemon's longer ban was shortened: %+v", e)
	}
	// Ban's own rule for a key inside a range someone else made: the
	// range and the key become one, with the longer time.
	if e, ok := got[netip.MustParsePrefix("2001:db8:ff::/48")]; !ok || e.Expires < 59*time.Minute {
		t.Errorf("2001:db8:ff::/48 after a ban of a /64 inside it: %+v (present %v), want it held an hour", e, ok)
	}
	if _, ok := got[netip.MustParsePrefix("192.0.2.9/32")]; ok {
		t.Error("the ban with a bad origin was applied")
	}
}
