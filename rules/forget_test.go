package rules

import (
	"net/netip"
	"testing"
	"time"
)

// The history is bounded: the oldest offences go first, active bans never.
func TestForgetOldestKeepsActiveBans(t *testing.T) {
	e, err := NewEngine(Config{Rules: []Rule{{Name: "fin", Hits: 1, Ban: time.Hour}}, Bans: DefaultBanPolicy(), MaxTrackedSources: 16})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)
	key := func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32)
	}
	for i := range 100 {
		o := Offence{Key: key(i), Count: 1, LastBan: now.Add(-time.Duration(i) * time.Hour)}
		if i >= 90 {
			// The oldest ten are still banned (a long escalated ban).
			o.BannedUntil = now.Add(time.Hour)
		}
		e.Restore(o)
	}
	if n := e.ForgetOldest(100, now); n != 0 {
		t.Fatalf("forgot %d at the bound", n)
	}
	n := e.ForgetOldest(64, now)
	if n != 100-60 {
		t.Errorf("forgot %d, want 40 (down to 64-64/16)", n)
	}
	kept := map[netip.Prefix]bool{}
	for _, o := range e.Offences() {
		kept[o.Key] = true
	}
	for i := range 100 {
		want := i < 50 || i >= 90
		if kept[key(i)] != want {
			t.Errorf("offence %d (%d h old): kept %v, want %v", i, i, kept[key(i)], want)
		}
	}
	// All active: nothing can go.
	e2, _ := NewEngine(Config{Rules: []Rule{{Name: "fin", Hits: 1, Ban: time.Hour}}, Bans: DefaultBanPolicy(), MaxTrackedSources: 16})
	for i := range 10 {
		e2.Restore(Offence{Key: key(i), Count: 1, LastBan: now, BannedUntil: now.Add(time.Hour)})
	}
	if n := e2.ForgetOldest(4, now); n != 0 {
		t.Errorf("forgot %d active bans", n)
	}
}

func TestActiveBans(t *testing.T) {
	e, err := NewEngine(Config{Rules: []Rule{{Name: "fin", Hits: 1, Ban: time.Hour}}, Bans: DefaultBanPolicy(), MaxTrackedSources: 16})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)
	on := Offence{Key: netip.MustParsePrefix("203.0.113.7/32"), Count: 2, LastBan: now, BannedUntil: now.Add(time.Minute)}
	e.Restore(on)
	e.Restore(Offence{Key: netip.MustParsePrefix("203.0.113.8/32"), Count: 1, LastBan: now.Add(-2 * time.Hour), BannedUntil: now.Add(-time.Hour)})
	got := e.ActiveBans(now, nil)
	if len(got) != 1 || got[0] != on {
		t.Errorf("ActiveBans = %+v, want only %+v", got, on)
	}
}
