package actions

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func keepString(k keep4) string {
	var out []string
	for _, a := range k.addrs() {
		out = append(out, fmt.Sprintf("%s=%v", a, k[a]))
	}
	return fmt.Sprint(out)
}

func TestKeep4Merge(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.0")
	k := make(keep4)
	k.merge(a, time.Hour, 10*time.Minute)
	k.merge(a, time.Hour, 5*time.Minute) // shorter: kept at 10m
	if k[a] != 10*time.Minute {
		t.Errorf("after a shorter merge: %v", k[a])
	}
	k.merge(a, time.Hour, 20*time.Minute)
	if k[a] != 20*time.Minute {
		t.Errorf("after a longer merge: %v", k[a])
	}
	k.merge(a, 0, 0) // without timeout: wins for good
	k.merge(a, time.Hour, time.Hour)
	if d, ok := k[a]; !ok || d != 0 {
		t.Errorf("after an element without timeout: %v %t", d, ok)
	}
}

// TestMigrate4: the ranges of an old interval blocked4 that are one prefix
// at least as long as the key become network addresses; wider or irregular
// ones are dropped.
func TestMigrate4(t *testing.T) {
	a := netip.MustParseAddr
	spans := []span{
		{first: a("192.0.2.1"), last: a("192.0.2.1"), timeout: time.Hour, expires: time.Hour},
		{first: a("192.0.2.2"), last: a("192.0.2.2"), timeout: time.Hour, expires: 10 * time.Minute},
		{first: a("198.51.100.0"), last: a("198.51.100.255"), timeout: 2 * time.Hour, expires: 2 * time.Hour},
		{first: a("10.0.0.0"), last: a("10.255.255.255"), timeout: time.Hour, expires: time.Hour}, // wider than any key
		{first: a("203.0.113.1"), last: a("203.0.113.6"), timeout: time.Hour, expires: time.Hour}, // not one prefix
	}
	for _, tt := range []struct {
		bits int
		want string
	}{
		{32, "[192.0.2.1=1h0m0s 192.0.2.2=10m0s]"},
		{24, "[192.0.2.0=1h0m0s 198.51.100.0=2h0m0s]"},
	} {
		if got := keepString(migrate4(spans, tt.bits)); got != tt.want {
			t.Errorf("migrate4 /%d = %s, want %s", tt.bits, got, tt.want)
		}
	}
}

func TestCarry4(t *testing.T) {
	a := netip.MustParseAddr
	els := []element{
		{addr: a("192.0.2.1"), timeout: time.Hour, expires: time.Hour},
		{addr: a("192.0.2.2"), timeout: time.Hour, expires: 10 * time.Minute},
		{addr: a("192.0.2.3"), timeout: time.Hour, expires: 0}, // expired
		{addr: a("2001:db8::1")}, // not IPv4
	}
	if got, want := keepString(carry4(els, 32)), "[192.0.2.1=1h0m0s 192.0.2.2=10m0s]"; got != want {
		t.Errorf("carry4 /32 = %s, want %s", got, want)
	}
	if got, want := keepString(carry4(els, 24)), "[192.0.2.0=1h0m0s]"; got != want {
		t.Errorf("carry4 /24 = %s, want %s", got, want)
	}
}

// TestRealign4: after the key was shortened to /24, the elements of each
// network not at its network address move onto it with the longest time
// left; networks already aligned, and expired elements, stay as they are.
func TestRealign4(t *testing.T) {
	a := netip.MustParseAddr
	els := []element{
		{addr: a("192.0.2.7"), timeout: time.Hour, expires: time.Hour},
		{addr: a("192.0.2.9"), timeout: time.Hour, expires: 10 * time.Minute},
		{addr: a("198.51.100.0"), timeout: 2 * time.Hour, expires: 2 * time.Hour},
		{addr: a("198.51.100.5"), timeout: time.Hour, expires: time.Minute},
		{addr: a("203.0.113.0"), timeout: time.Hour, expires: time.Hour}, // aligned, alone
		{addr: a("203.0.114.9"), timeout: time.Hour, expires: 0},         // expired
	}
	del, add := realign4(els, 24)
	wantDel := []netip.Addr{a("192.0.2.7"), a("192.0.2.9"), a("198.51.100.0"), a("198.51.100.5")}
	if !slices.Equal(del, wantDel) {
		t.Errorf("del = %v, want %v", del, wantDel)
	}
	if got, want := keepString(add), "[192.0.2.0=1h0m0s 198.51.100.0=2h0m0s]"; got != want {
		t.Errorf("add = %s, want %s", got, want)
	}
	// Nothing to move at the elements' own length.
	if del, add := realign4(els, 32); del != nil || add != nil {
		t.Errorf("realign4 /32 = %v %v, want nothing", del, slices.Collect(maps.Keys(add)))
	}
}
