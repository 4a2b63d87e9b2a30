//go:build linux

package actions

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/nftables"
)

// addRaw adds elements to a set of the table as an administrator would
// (`nft add element`): no comment.
func addRaw(t *testing.T, ns netNS, set string, els ...nftables.SetElement) {
	t.Helper()
	c := raw(t, ns)
	s := &nftables.Set{Table: &nftables.Table{Family: nftables.TableFamilyINet, Name: "sentry"}, Name: set, KeyType: nftables.TypeIPAddr, HasTimeout: true}
	if set == Set6 {
		s.KeyType, s.Interval = nftables.TypeIP6Addr, true
	}
	if err := c.SetAddElements(s, els); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("add to %s: %v", set, err)
	}
}

// manualSpec has first strike, so that blocked4 holds kernel bans too: a
// provisional one (no comment, its timeout) must still read as the
// kernel's, anything else without the comment as manual.
func manualSpec() TableSpec {
	return TableSpec{ManageChain: true, FirstStrike: &FirstStrikeConfig{Group: 7, Rules: []FirstStrikeRule{synRule(5)}, Provisional: time.Minute}}
}

// TestManualElementsAreNeverChanged: elements an administrator added by
// hand are listed as manual, a ban inside or equal to one leaves it as it
// is (never extended, never replaced), and unblocking an address inside
// one does not remove it.
func TestManualElementsAreNeverChanged(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, manualSpec())
	a := func(s string) []byte { return netip.MustParseAddr(s).AsSlice() }
	// A 10-minute /32 in blocked6, a permanent address in blocked4, a
	// 2-hour one, and a kernel strike (provisional timeout).
	addRaw(t, ns, Set6, nftables.SetElement{Key: a("2001:db8::"), Timeout: 10 * time.Minute},
		nftables.SetElement{Key: a("2001:db9::"), IntervalEnd: true})
	addRaw(t, ns, Set4, nftables.SetElement{Key: a("192.0.2.1")},
		nftables.SetElement{Key: a("192.0.2.2"), Timeout: 2 * time.Hour},
		nftables.SetElement{Key: a("192.0.2.3"), Timeout: time.Minute})

	got := list(t, n)
	for k, want := range map[string]string{
		"2001:db8::/32": OriginManual, "192.0.2.1/32": OriginManual, "192.0.2.2/32": OriginManual, "192.0.2.3/32": OriginKernel,
	} {
		if e, ok := got[netip.MustParsePrefix(k)]; !ok || e.Origin != want {
			t.Errorf("%s listed as %+v (present %v), want origin %s", k, e, ok, want)
		}
	}
	if e := got[netip.MustParsePrefix("192.0.2.1/32")]; e.Timeout != 0 || e.Expires != 0 {
		t.Errorf("a permanent element listed with times: %+v", e)
	}

	// Bans the daemon decides inside or equal to them.
	mustBan(t, n, "2001:db8:1:2::/64", time.Hour)
	mustBan(t, n, "192.0.2.2/32", time.Hour)
	mustBan(t, n, "192.0.2.1/32", time.Hour)
	mustBan(t, n, "192.0.2.3/32", time.Hour) // replaces the kernel's
	s6 := startsOf(rawElements(t, ns, "sentry", Set6))
	if e := s6[netip.MustParseAddr("2001:db8::")]; e.Timeout != 10*time.Minute || e.Comment != "" || len(s6) != 1 {
		t.Errorf("blocked6 after a /64 ban inside the admin's /32: %+v", s6)
	}
	s4 := startsOf(rawElements(t, ns, "sentry", Set4))
	if e := s4[netip.MustParseAddr("192.0.2.2")]; e.Timeout != 2*time.Hour || e.Comment != "" {
		t.Errorf("the admin's 2h element was changed: %+v", e)
	}
	if e := s4[netip.MustParseAddr("192.0.2.1")]; e.Timeout != 0 || e.Comment != "" {
		t.Errorf("the admin's permanent element was changed: %+v", e)
	}
	if e := s4[netip.MustParseAddr("192.0.2.3")]; e.Timeout != time.Hour || e.Comment != BanComment {
		t.Errorf("the kernel's provisional ban was not replaced by the daemon's: %+v", e)
	}

	// Unblocking inside the admin's /32 removes nothing of it.
	removed, err := n.Unblock(netip.MustParsePrefix("2001:db8:1:2::5/128"))
	if !errors.Is(err, ErrNotBanned) || len(removed) != 0 {
		t.Errorf("Unblock inside the admin's /32 = %v, %v; want ErrNotBanned and nothing removed", removed, err)
	}
	if s6 := startsOf(rawElements(t, ns, "sentry", Set6)); len(s6) != 1 {
		t.Errorf("blocked6 after the unblock: %+v", s6)
	}
	if _, err := n.Unblock(netip.MustParsePrefix("192.0.2.1/32")); !errors.Is(err, ErrNotBanned) {
		t.Errorf("Unblock of the admin's permanent element: %v", err)
	}
	if _, ok := startsOf(rawElements(t, ns, "sentry", Set4))[netip.MustParseAddr("192.0.2.1")]; !ok {
		t.Error("the admin's permanent element was removed")
	}
}

// TestBanAroundAManualElement: a daemon ban of a /64 holding an
// administrator's single address bans the rest of the /64 around it and
// leaves the address's own element as it is.
func TestBanAroundAManualElement(t *testing.T) {
	ns := newNetNS(t)
	n := openTable(t, ns, TableSpec{ManageChain: true})
	a := func(s string) []byte { return netip.MustParseAddr(s).AsSlice() }
	addRaw(t, ns, Set6, nftables.SetElement{Key: a("2001:db8:1:2::5"), Timeout: 10 * time.Minute},
		nftables.SetElement{Key: a("2001:db8:1:2::6"), IntervalEnd: true})
	mustBan(t, n, "2001:db8:1:2::/64", time.Hour)
	got := list(t, n)
	if e := got[netip.MustParsePrefix("2001:db8:1:2::5/128")]; e.Origin != OriginManual || e.Timeout != 10*time.Minute {
		t.Errorf("the admin's address: %+v", e)
	}
	for _, k := range []string{"2001:db8:1:2::/126", "2001:db8:1:2::4/128", "2001:db8:1:2::6/127", "2001:db8:1:2:8000::/65"} {
		if e, ok := got[netip.MustParsePrefix(k)]; !ok || e.Origin != OriginDaemon || e.Timeout != time.Hour {
			t.Errorf("%s: %+v (present %v), want the daemon's 1h ban", k, e, ok)
		}
	}
}
