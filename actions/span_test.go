package actions

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
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

// planBan never merges a manual ban with the daemon's, never makes a range
// last longer than its own bans ask, and never shortens one.
func TestPlanBan(t *testing.T) {
	const h = time.Hour
	sp := func(p string, expires time.Duration, comment string) span {
		k := netip.MustParsePrefix(p)
		return span{first: k.Addr(), last: lastAddr(k), timeout: expires, expires: expires, comment: comment, manual: !ownComment(comment)}
	}
	daemon, block, fleet, admin := BanComment, BlockComment, FleetComment("b"), "by hand"
	str := func(p banPlan) string {
		var b strings.Builder
		if p.held != nil {
			fmt.Fprintf(&b, "held by %s; ", *p.held)
		}
		for _, s := range p.del {
			fmt.Fprintf(&b, "del %s; ", s)
		}
		for _, a := range p.add {
			for _, k := range rangePrefixes(a.first, a.last) {
				fmt.Fprintf(&b, "add %s %v %q; ", k, a.timeout, a.comment)
			}
		}
		return strings.TrimSuffix(b.String(), "; ")
	}
	for _, tt := range []struct {
		name    string
		spans   []span
		key     string
		timeout time.Duration
		comment string
		want    string // "error" for an error
	}{
		{"nothing there", nil, "2001:db8::/64", h, daemon, `add 2001:db8::/64 1h0m0s "sentry-nflog"`},
		{"held as long", []span{sp("2001:db8::/64", 2*h, daemon)}, "2001:db8::/64", h, daemon, "held by 2001:db8::/64"},
		{"held shorter", []span{sp("2001:db8::/64", h, daemon)}, "2001:db8::/64", 2 * h, daemon, `del 2001:db8::/64; add 2001:db8::/64 2h0m0s "sentry-nflog"`},
		{"a manual ban takes the daemon's key over", []span{sp("2001:db8::/64", 2*h, daemon)}, "2001:db8::/64", h, block,
			`del 2001:db8::/64; add 2001:db8::/64 2h0m0s "sentry-nflog manual"`},
		{"inside the daemon's longer range", []span{sp("2001:db8::/48", 2*h, fleet)}, "2001:db8::/64", h, daemon, "held by 2001:db8::/48"},
		{"inside the daemon's shorter range: extended", []span{sp("2001:db8::/48", h, fleet)}, "2001:db8::/64", 2 * h, daemon,
			`del 2001:db8::/48; add 2001:db8::/48 2h0m0s "sentry-nflog"`},
		{"inside a longer manual ban", []span{sp("2001:db8::/48", 720*h, block)}, "2001:db8::/64", h, daemon, "held by 2001:db8::/48"},
		{"inside a shorter manual ban: split", []span{sp("2001:db8::/62", h, block)}, "2001:db8::/64", 2 * h, daemon,
			`del 2001:db8::/62; add 2001:db8:0:1::/64 1h0m0s "sentry-nflog manual"; add 2001:db8:0:2::/63 1h0m0s "sentry-nflog manual"; add 2001:db8::/64 2h0m0s "sentry-nflog"`},
		{"a manual ban inside the daemon's range: split", []span{sp("198.51.100.0/24", h, daemon)}, "198.51.100.0/26", 720 * h, block,
			`del 198.51.100.0/24; add 198.51.100.64/26 1h0m0s "sentry-nflog"; add 198.51.100.128/25 1h0m0s "sentry-nflog"; add 198.51.100.0/26 720h0m0s "sentry-nflog manual"`},
		{"the daemon's range around a longer manual ban", []span{sp("198.51.100.0/26", 720*h, block)}, "198.51.100.0/24", h, daemon,
			`add 198.51.100.64/26 1h0m0s "sentry-nflog"; add 198.51.100.128/25 1h0m0s "sentry-nflog"`},
		{"the daemon's range around a shorter manual ban: taken in", []span{sp("198.51.100.0/26", h/2, block)}, "198.51.100.0/24", h, daemon,
			`del 198.51.100.0/26; add 198.51.100.0/24 1h0m0s "sentry-nflog"`},
		{"a manual ban around the daemon's", []span{sp("2001:db8:0:1::/64", 720*h, daemon)}, "2001:db8::/48", h, block,
			`add 2001:db8::/64 1h0m0s "sentry-nflog manual"; add 2001:db8:0:2::/63 1h0m0s "sentry-nflog manual"; add 2001:db8:0:4::/62 1h0m0s "sentry-nflog manual"; add 2001:db8:0:8::/61 1h0m0s "sentry-nflog manual"; add 2001:db8:0:10::/60 1h0m0s "sentry-nflog manual"; add 2001:db8:0:20::/59 1h0m0s "sentry-nflog manual"; add 2001:db8:0:40::/58 1h0m0s "sentry-nflog manual"; add 2001:db8:0:80::/57 1h0m0s "sentry-nflog manual"; add 2001:db8:0:100::/56 1h0m0s "sentry-nflog manual"; add 2001:db8:0:200::/55 1h0m0s "sentry-nflog manual"; add 2001:db8:0:400::/54 1h0m0s "sentry-nflog manual"; add 2001:db8:0:800::/53 1h0m0s "sentry-nflog manual"; add 2001:db8:0:1000::/52 1h0m0s "sentry-nflog manual"; add 2001:db8:0:2000::/51 1h0m0s "sentry-nflog manual"; add 2001:db8:0:4000::/50 1h0m0s "sentry-nflog manual"; add 2001:db8:0:8000::/49 1h0m0s "sentry-nflog manual"`},
		{"the same owner's inside: taken in, the longest time kept", []span{sp("198.51.100.0/26", 3*h, fleet), sp("198.51.100.128/26", h, daemon)}, "198.51.100.0/24", h, daemon,
			`del 198.51.100.0/26; del 198.51.100.128/26; add 198.51.100.0/24 3h0m0s "sentry-nflog"`},
		{"an administrator's inside: left around", []span{sp("2001:db8::/64", h, admin)}, "2001:db8::/63", h, daemon, `add 2001:db8:0:1::/64 1h0m0s "sentry-nflog"`},
		{"an administrator's around", []span{sp("2001:db8::/48", h, admin)}, "2001:db8::/64", 2 * h, daemon, "held by 2001:db8::/48"},
		{"a range across the key's edge", []span{sp("2001:db8::/64", h, daemon), {first: netip.MustParseAddr("2001:db8::1:0:0:0"), last: netip.MustParseAddr("2001:db8:0:2::"), expires: h, timeout: h, comment: daemon}},
			"2001:db8::/63", h, daemon, "error"},
	} {
		k := netip.MustParsePrefix(tt.key)
		p, err := planBan(tt.spans, k.Addr(), lastAddr(k), tt.timeout, tt.comment, true)
		got := str(p)
		if err != nil {
			got = "error"
		}
		if got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
	// wide4 refuses an administrator's range anywhere near the key.
	if _, err := planBan([]span{sp("198.51.100.0/26", h, admin)}, netip.MustParseAddr("198.51.100.0"), netip.MustParseAddr("198.51.100.255"), h, daemon, false); err == nil {
		t.Error("an administrator's range inside the key, without holes: no error")
	}
}

// A key is covered when every address of it is banned, by one ban or by
// the pieces of a split range and the ban they were split around.
func TestCoverage(t *testing.T) {
	c := NewCoverage([]netip.Prefix{
		netip.MustParsePrefix("198.51.100.0/26"), netip.MustParsePrefix("198.51.100.64/26"), netip.MustParsePrefix("198.51.100.128/25"),
		netip.MustParsePrefix("203.0.113.7/32"),
		netip.MustParsePrefix("2001:db8::/48"), netip.MustParsePrefix("2001:db8:1::/64"),
	})
	for k, want := range map[string]bool{
		"198.51.100.0/24":   true,
		"198.51.100.64/26":  true,
		"198.51.100.200/32": true,
		"198.51.100.0/23":   false,
		"198.51.101.0/24":   false,
		"203.0.113.7/32":    true,
		"203.0.113.6/31":    false,
		"203.0.113.8/32":    false,
		"2001:db8:0:5::/64": true,
		"2001:db8::/47":     false,
		"2001:db8:1::/64":   true,
		"2001:db8:1::/63":   false,
		"198.51.100.7/32":   true,
		"0.0.0.0/0":         false,
		"::/0":              false,
	} {
		if got := c.Covers(netip.MustParsePrefix(k)); got != want {
			t.Errorf("Covers(%s) = %v, want %v", k, got, want)
		}
	}
	if NewCoverage(nil).Covers(netip.MustParsePrefix("192.0.2.1/32")) {
		t.Error("nothing covers a key")
	}
}
