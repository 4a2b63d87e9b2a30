package actions

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestLastAddr(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"192.0.2.0/24", "192.0.2.255"},
		{"192.0.2.7/32", "192.0.2.7"},
		{"0.0.0.0/0", "255.255.255.255"},
		{"2001:db8:aa:bb::/64", "2001:db8:aa:bb:ffff:ffff:ffff:ffff"},
		{"::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	} {
		if got := lastAddr(netip.MustParsePrefix(tt.in)); got.String() != tt.want {
			t.Errorf("lastAddr(%s) = %s, want %s", tt.in, got, tt.want)
		}
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
	a := netip.MustParseAddr
	els := []element{
		// Kernel dumps come in descending order.
		{addr: a("10.0.0.9"), end: true},
		{addr: a("10.0.0.8"), timeout: time.Hour, expires: time.Minute},
		{addr: a("10.0.0.8"), end: true}, // adjacent range's end
		{addr: a("10.0.0.4"), timeout: time.Hour, expires: time.Hour},
		{addr: a("10.0.0.3"), end: true},                                   // end of the expired range
		{addr: a("10.0.0.1"), timeout: time.Second, expires: 0},            // expired
		{addr: a("10.0.0.0"), end: true},                                   // leftover: its start is gone
		{addr: a("255.255.255.0"), timeout: time.Hour, expires: time.Hour}, // to the end
	}
	var got []string
	for _, s := range spansFromElements(els) {
		got = append(got, fmt.Sprintf("%s %v", s, s.expires))
	}
	want := []string{"10.0.0.4/30 1h0m0s", "10.0.0.8/32 1m0s", "255.255.255.0/24 1h0m0s"}
	if !slices.Equal(got, want) {
		t.Errorf("spans = %v, want %v", got, want)
	}
	// A range that is not one prefix prints as first-last.
	sp := span{first: a("10.0.0.1"), last: a("10.0.0.6")}
	if got := sp.String(); got != "10.0.0.1-10.0.0.6" {
		t.Errorf("span %s", got)
	}
}

func TestSpanRelations(t *testing.T) {
	a := netip.MustParseAddr
	sp := span{first: a("2001:db8:1::"), last: a("2001:db8:1::ffff")}
	for _, tt := range []struct {
		first, last                string
		overlaps, contains, within bool
	}{
		{"2001:db8:1::5", "2001:db8:1::5", true, true, false},
		{"2001:db8::", "2001:db8:ffff::", true, false, true},
		{"2001:db8:1::ff00", "2001:db8:1::1:0", true, false, false},
		{"2001:db8:2::", "2001:db8:2::1", false, false, false},
	} {
		f, l := a(tt.first), a(tt.last)
		if sp.overlaps(f, l) != tt.overlaps || sp.contains(f, l) != tt.contains || sp.within(f, l) != tt.within {
			t.Errorf("%s-%s: overlaps %t contains %t within %t, want %t %t %t", tt.first, tt.last,
				sp.overlaps(f, l), sp.contains(f, l), sp.within(f, l), tt.overlaps, tt.contains, tt.within)
		}
	}
}

func TestMergePrefixes(t *testing.T) {
	var ps []netip.Prefix
	for _, s := range []string{"10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/8", "127.0.0.0/8", "255.255.255.255/32", "::1/128", "2001:db8::/32", "2001:db8:1::/48"} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	v4, v6 := mergePrefixes(ps)
	str := func(rs []addrRange) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.first.String()+"-"+r.last.String())
		}
		return fmt.Sprint(out)
	}
	// Overlapping (10.1/16 in 10/8) and adjacent (10/8, 11/8) prefixes merge.
	if got, want := str(v4), "[10.0.0.0-11.255.255.255 127.0.0.0-127.255.255.255 255.255.255.255-255.255.255.255]"; got != want {
		t.Errorf("v4 %s, want %s", got, want)
	}
	if got, want := str(v6), "[::1-::1 2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]"; got != want {
		t.Errorf("v6 %s, want %s", got, want)
	}
}
