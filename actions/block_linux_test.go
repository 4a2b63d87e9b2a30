//go:build linux

package actions

import (
	"errors"
	"fmt"
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

// TestPardonKeepsBlocks: Pardon lifts what Unblock lifts but the manual
// bans made with `block`, IPv4, IPv6 and a wide IPv4 one, in the same
// batch: they are never out of the kernel.
func TestPardonKeepsBlocks(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, manualSpec())
	mustBanManual(t, n, "203.0.113.7/32", time.Hour)
	mustBan(t, n, "203.0.113.8/32", time.Hour)
	mustBanManual(t, n, "198.51.100.0/24", time.Hour)
	mustBan(t, n, "198.51.101.0/24", time.Hour)
	mustBanManual(t, n, "2001:db8:bad::/48", time.Hour)
	mustBan(t, n, "2001:db8:1:2::/64", time.Hour)

	for _, tt := range []struct {
		key  string
		want []string
	}{
		{"203.0.113.0/24", []string{"203.0.113.8/32"}},
		{"198.51.100.0/23", []string{"198.51.101.0/24"}},
		{"2001:db8::/32", []string{"2001:db8:1:2::/64"}},
	} {
		got, err := n.Pardon(netip.MustParsePrefix(tt.key))
		if err != nil || fmt.Sprint(got) != fmt.Sprint(prefixes(tt.want...)) {
			t.Errorf("Pardon(%s) = %v, %v; want %v", tt.key, got, err, tt.want)
		}
	}
	got := list(t, n)
	for _, k := range []string{"203.0.113.7/32", "198.51.100.0/24", "2001:db8:bad::/48"} {
		if e, ok := got[netip.MustParsePrefix(k)]; !ok || e.Origin != OriginBlock {
			t.Errorf("%s after the pardons: %+v (present %v), want the manual ban", k, e, ok)
		}
	}
	if len(got) != 3 {
		t.Errorf("listed %v, want the 3 manual bans", got)
	}
	if _, err := n.Pardon(netip.MustParsePrefix("203.0.113.7/32")); !errors.Is(err, ErrNotBanned) {
		t.Errorf("Pardon of a manual ban alone: %v, want ErrNotBanned", err)
	}
	if removed, err := n.Unblock(netip.MustParsePrefix("203.0.113.7/32")); err != nil || len(removed) != 1 {
		t.Errorf("Unblock of the manual ban: %v, %v; want it removed", removed, err)
	}
}

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// TestManualAndDaemonRangesStayApart: a manual ban and a wider or narrower
// ban of the daemon's over the same addresses are never merged into one
// range, which would last as long as the longer of the two over the whole
// of the wider: each keeps its addresses and its time, in a real table.
func TestManualAndDaemonRangesStayApart(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, manualSpec())
	mustBanManual(t, n, "198.51.100.0/26", 720*time.Hour)
	mustBan(t, n, "198.51.100.0/24", time.Hour) // an aggregate around it
	mustBan(t, n, "2001:db8:5::/48", time.Hour)
	mustBanManual(t, n, "2001:db8:5:1::/64", 720*time.Hour) // blocked inside it
	got := list(t, n)
	for k, want := range map[string]struct {
		origin  string
		timeout time.Duration
	}{
		"198.51.100.0/26":      {OriginBlock, 720 * time.Hour},
		"198.51.100.64/26":     {OriginDaemon, time.Hour},
		"198.51.100.128/25":    {OriginDaemon, time.Hour},
		"2001:db8:5:1::/64":    {OriginBlock, 720 * time.Hour},
		"2001:db8:5::/64":      {OriginDaemon, time.Hour},
		"2001:db8:5:8000::/49": {OriginDaemon, time.Hour},
	} {
		if e, ok := got[netip.MustParsePrefix(k)]; !ok || e.Origin != want.origin || e.Timeout != want.timeout {
			t.Errorf("%s: %+v (present %v), want origin %s for %v", k, e, ok, want.origin, want.timeout)
		}
	}
	if _, ok := got[netip.MustParsePrefix("198.51.100.0/24")]; ok {
		t.Error("the aggregate took the manual /26 in")
	}
	keys := make([]netip.Prefix, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	if c := NewCoverage(keys); !c.Covers(netip.MustParsePrefix("198.51.100.0/24")) || !c.Covers(netip.MustParsePrefix("2001:db8:5::/48")) {
		t.Errorf("the split ranges do not cover their keys: %v", keys)
	}
	// The daemon's ban again finds its pieces and the manual ban: nothing
	// changes (no merge on a second look).
	mustBan(t, n, "198.51.100.0/24", time.Hour)
	if e := list(t, n)[netip.MustParsePrefix("198.51.100.0/26")]; e.Origin != OriginBlock || e.Timeout != 720*time.Hour {
		t.Errorf("after the daemon's ban again: %+v", e)
	}
}
