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
