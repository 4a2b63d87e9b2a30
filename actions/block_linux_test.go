//go:build linux

package actions

import (
	"net/netip"
	"testing"
	"time"
)

func mustBanManual(tb testing.TB, n *Table, key string, d time.Duration) {
	tb.Helper()
	if err := n.BanManual(netip.MustParsePrefix(key), d); err != nil {
		tb.Fatalf("BanManual(%s, %v): %v", key, d, err)
	}
}

// TestBanManual: a manual ban is listed as OriginBlock, with its comment;
// the daemon's shorter ban of the key leaves it as it is, a manual ban
// over the daemon's longer one takes the element over with the longer
// time, and Unblock lifts it (it is sentry-nflog's, not an
// administrator's).
func TestBanManual(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, manualSpec())
	mustBanManual(t, n, "203.0.113.7/32", 2*time.Hour)
	mustBanManual(t, n, "2001:db8:bad::/48", time.Hour)
	mustBan(t, n, "203.0.113.8/32", 3*time.Hour)
	mustBan(t, n, "2001:db8:1:2::/64", 3*time.Hour)

	mustBan(t, n, "203.0.113.7/32", time.Hour)       // shorter: left as it is
	mustBanManual(t, n, "203.0.113.8/32", time.Hour) // takes over, keeps 3h
	mustBanManual(t, n, "2001:db8:1:2::/64", time.Hour)
	mustBan(t, n, "2001:db8:bad:5::/64", time.Minute) // inside the manual /48: covered

	got := list(t, n)
	for k, want := range map[string]struct {
		origin  string
		timeout time.Duration
	}{
		"203.0.113.7/32":    {OriginBlock, 2 * time.Hour},
		"203.0.113.8/32":    {OriginBlock, 3 * time.Hour},
		"2001:db8:bad::/48": {OriginBlock, time.Hour},
		"2001:db8:1:2::/64": {OriginBlock, 3 * time.Hour},
	} {
		// A takeover keeps the daemon's element's time left, which is
		// the 3h it was given less the milliseconds since.
		if e, ok := got[netip.MustParsePrefix(k)]; !ok || e.Origin != want.origin || e.Timeout > want.timeout || e.Timeout < want.timeout-5*time.Second {
			t.Errorf("%s: %+v (present %v), want origin %s for %v", k, e, ok, want.origin, want.timeout)
		}
	}
	if len(got) != 4 {
		t.Errorf("listed %v, want 4 bans", got)
	}
	if e := startsOf(rawElements(t, ns, "sentry", Set4))[netip.MustParseAddr("203.0.113.7")]; e.Comment != BlockComment {
		t.Errorf("element comment %q, want %q", e.Comment, BlockComment)
	}

	for _, k := range []string{"203.0.113.7/32", "2001:db8:bad:5::1/128"} {
		removed, err := n.Unblock(netip.MustParsePrefix(k))
		if err != nil || len(removed) != 1 {
			t.Errorf("Unblock(%s) = %v, %v; want the manual ban removed", k, removed, err)
		}
	}
	got = list(t, n)
	for _, k := range []string{"203.0.113.7/32", "2001:db8:bad::/48"} {
		if _, ok := got[netip.MustParsePrefix(k)]; ok {
			t.Errorf("%s still listed after Unblock", k)
		}
	}
}
