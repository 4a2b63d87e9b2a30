package actions

import (
	"net/netip"
	"testing"
	"time"
)

func TestRecordOverlaps(t *testing.T) {
	var r record
	r.init()
	now := time.Now()
	r.put(netip.MustParsePrefix("2001:db8:1:1::/64"), now, time.Hour)
	r.put(netip.MustParsePrefix("192.0.2.1/32"), now, time.Hour)
	r.put(netip.MustParsePrefix("192.0.2.2/32"), now, -time.Second) // expired
	tests := []struct {
		key  string
		want bool
	}{
		{"2001:db8:1:1::/64", true},
		{"2001:db8:1:1::5/128", true},
		{"2001:db8:1::/48", true},
		{"2001:db8:1:2::/64", false},
		{"192.0.2.1/32", true},
		{"192.0.2.2/32", false},
		{"192.0.2.0/24", true},
		{"192.0.3.0/24", false},
	}
	for _, tt := range tests {
		if got := r.overlaps(netip.MustParsePrefix(tt.key), now); got != tt.want {
			t.Errorf("overlaps(%s) = %t, want %t", tt.key, got, tt.want)
		}
	}
	for i := range 5000 {
		r.put(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32), now, -time.Second)
	}
	r.sweep(now)
	if len(r.until) != 2 || r.lens[0][32] != 1 {
		t.Errorf("after sweep: %d entries, %d /32s; want 2 and 1", len(r.until), r.lens[0][32])
	}
	// The sweeps that puts trigger forget only what has expired, not
	// bans ending before the newest one.
	for i := range 5000 {
		r.put(v4Key(i), now.Add(time.Duration(i)*time.Millisecond), time.Hour)
	}
	for _, k := range []netip.Prefix{v4Key(0), netip.MustParsePrefix("192.0.2.1/32")} {
		if !r.overlaps(k, now.Add(time.Minute)) {
			t.Errorf("after 5000 puts the record forgot %s", k)
		}
	}
}

func TestRecordSpans(t *testing.T) {
	var r record
	r.init()
	now := time.Now()
	a := netip.MustParseAddr
	// A range of two prefixes is recorded as both; a permanent one lasts.
	sp := span{first: a("2001:db8::"), last: a("2001:db8:0:1:ffff:ffff:ffff:ffff"), timeout: time.Hour, expires: time.Minute}
	r.putSpan(sp, now)
	perm := span{first: a("2001:db8:9::"), last: a("2001:db8:9::ffff")}
	r.putSpan(perm, now)
	for _, k := range []string{"2001:db8::/64", "2001:db8:0:1::/64", "2001:db8:9::/112"} {
		if !r.overlaps(netip.MustParsePrefix(k), now.Add(30*time.Second)) {
			t.Errorf("%s not recorded", k)
		}
	}
	if r.overlaps(netip.MustParsePrefix("2001:db8::/64"), now.Add(2*time.Minute)) {
		t.Error("the 1m span is still recorded after 2m")
	}
	if !r.overlaps(netip.MustParsePrefix("2001:db8:9::1/128"), now.Add(365*24*time.Hour)) {
		t.Error("a span without timeout expired")
	}
	r.delSpan(sp)
	if r.overlaps(netip.MustParsePrefix("2001:db8::/63"), now) {
		t.Error("delSpan left a prefix")
	}
	if left(0, 0) != farFuture || left(time.Hour, time.Minute) != time.Minute {
		t.Error("left")
	}
	r.reset()
	if len(r.until) != 0 || r.synced || r.lens[1][64] != 0 {
		t.Errorf("after reset: %d entries, synced %t", len(r.until), r.synced)
	}
}
