//go:build linux

package actions

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/scanner"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// probe sends one raw TCP segment from src in the attacker.
func (l *fsLab) probe(t *testing.T, src, dst netip.Addr, port uint16, flags uint8) {
	t.Helper()
	if err := l.p.Attacker.Do(func() error {
		return scanner.RawProbe(context.Background(), src, dst, port, flags)
	}); err != nil {
		t.Fatal(err)
	}
}

// TestFirstStrikeMatchesEveryFlagCombination sends each of the 64
// combinations of the six flags, each from its own source, to a tripwire
// of one flag class at a time: the kernel strikes exactly the sources
// whose combination the engine puts in that class.
func TestFirstStrikeMatchesEveryFlagCombination(t *testing.T) {
	l := newFSLab(t, FirstStrikeConfig{Rules: []FirstStrikeRule{{Name: "c", Proto: 6, TCPFlags: rules.ClassSYN, Hits: 1}}})
	src := func(class, f int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(100 + class), 0, byte(1 + f)}) }
	var all []netip.Addr
	for c := 0; c < 10; c++ {
		for f := 0; f < 64; f++ {
			all = append(all, src(c, f))
		}
	}
	l.p.AddAttackerAddrs(t, all...)
	for c := 0; c < 10; c++ {
		class := rules.FlagClass(1) << c
		spec := l.spec
		fs := *spec.FirstStrike
		fs.Rules = []FirstStrikeRule{{Name: class.String(), Proto: 6, TCPFlags: class, Hits: 1}}
		spec.FirstStrike = &fs
		l.apply(t, spec)
		for f := 0; f < 64; f++ {
			l.probe(t, src(c, f), l.p.VictimIP4, 31337, uint8(f))
		}
		bans := l.bansOf(t)
		for f := 0; f < 64; f++ {
			want := rules.Classify(parsers.TCPFlags(f)) == class
			if _, got := bans[netip.PrefixFrom(src(c, f), 32)]; got != want {
				t.Errorf("class %v, flags %q: struck %v, want %v", class, parsers.TCPFlags(f).String(), got, want)
			}
		}
	}
}

// TestFirstStrikeSlowProbesStillCount: probes spaced so that a refilling
// bucket would never run out (the old per-minute rate) are struck at the
// threshold, as the engine's sliding window bans them.
func TestFirstStrikeSlowProbesStillCount(t *testing.T) {
	rule := synRule(5)
	rule.Window = 10 * time.Second
	l := newFSLab(t, FirstStrikeConfig{Rules: []FirstStrikeRule{rule}})
	src, dst := l.p.AttackerIP4, l.p.VictimIP4
	key := netip.PrefixFrom(src, 32)
	for i := 0; i < 5; i++ {
		if i > 0 {
			// 4 gaps of 1.5s and a scan's quiet period: 8s, inside the
			// 10s window.
			time.Sleep(1500 * time.Millisecond)
		}
		r := l.synScan(t, src, dst, []uint16{uint16(100 + i)})
		_, struck := l.bansOf(t)[key]
		if want := i == 4; struck != want || (replies(r) == 1) == want {
			t.Fatalf("probe %d: %d replies, struck %v; want the 5th struck", i+1, replies(r), struck)
		}
	}
}

// TestFirstStrikeNeverCutsOffTheLAN: this host's own /64 holds its
// neighbours. A scanner among them is struck by its own address, never the
// /64 (the kernel keys sources there as the engine does), and no ban, even
// one of the whole /64, drops this host's own address.
func TestFirstStrikeNeverCutsOffTheLAN(t *testing.T) {
	self := netip.PrefixFrom(netip.MustParseAddr("2001:db8:51::1"), 128)
	l := newFSLab(t, FirstStrikeConfig{Rules: []FirstStrikeRule{synRule(5)}}, self)
	neighbour := netip.MustParseAddr("2001:db8:51::3")
	l.p.AddAttackerAddrs(t, neighbour)
	r := l.synScan(t, l.p.AttackerIP6, l.p.VictimIP6, portRange(1, 1000))
	if replies(r) > 4 || len(r.Open) > 0 {
		t.Errorf("the scanner on the LAN learned %d answers, open %v; want at most 4", replies(r), r.Open)
	}
	for k := range l.bansOf(t) {
		if k.Contains(self.Addr()) {
			t.Errorf("a ban %s holds this host's own address", k)
		}
	}
	// A neighbour's single SYN to a closed port is answered.
	if r := l.synScan(t, neighbour, l.p.VictimIP6, []uint16{2000}); replies(r) != 1 {
		t.Errorf("the neighbour's SYN got %d answers: struck for the scanner's probes", replies(r))
	}
	// A ban of the whole /64, however it came, leaves this host reaching
	// itself at its own address.
	mustBan(t, l.tbl, "2001:db8:51::/64", time.Hour)
	if err := l.p.Victim.Do(func() error {
		c, err := net.DialTimeout("tcp", "[2001:db8:51::1]:22", 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Errorf("this host cannot reach itself under a ban of its /64: %v", err)
	}
}

// TestFirstStrikeFullSet: a flood of forged sources that fills the
// counting sets leaves a scanner nothing to learn (the probes first strike
// cannot count are dropped), the full rules count it, and EvictFull
// empties the sets so that counting resumes.
func TestFirstStrikeFullSet(t *testing.T) {
	// A small set, so that few forged sources fill it (thousands would
	// overflow the victim's neighbour table, which is not under test).
	l := newFSLab(t, FirstStrikeConfig{SetSize: 64, Rules: []FirstStrikeRule{synRule(5)}})
	var flood []netip.Addr
	for i := 0; i < 80; i++ {
		flood = append(flood, netip.AddrFrom4([4]byte{10, 50, byte(i >> 8), byte(i)}))
	}
	l.p.AddAttackerAddrs(t, flood...)
	for _, a := range flood {
		l.probe(t, a, l.p.VictimIP4, 9999, scanner.SYN)
	}
	full, err := l.tbl.StrikeFull()
	if err != nil {
		t.Fatal(err)
	}
	if full["fs0_probes4"] == 0 {
		t.Fatalf("full counters %v: the flood did not fill fs0_probes4", full)
	}
	sets, err := l.tbl.StrikeSets()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(sets, func(s StrikeSet) bool { return s.Name == "fs0_probes4" })
	if i < 0 || !sets[i].Full() || sets[i].FullDrops == 0 {
		t.Errorf("StrikeSets: %+v, want fs0_probes4 full", sets)
	}
	// While full: nothing answered.
	if r := l.synScan(t, l.p.AttackerIP4, l.p.VictimIP4, portRange(100, 199)); replies(r) != 0 {
		t.Errorf("while the set is full a scan learned %d answers", replies(r))
	}
	evicted, err := l.tbl.EvictFull([]string{"fs0_probes4"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(evicted) != "[fs0_probes4 fs0_rate4]" {
		t.Errorf("evicted %v", evicted)
	}
	if r := l.synScan(t, l.p.AttackerIP4, l.p.VictimIP4, portRange(200, 299)); replies(r) > 4 || replies(r) == 0 {
		t.Errorf("after eviction a scan learned %d answers, want 1-4", replies(r))
	}
	if _, ok := l.bansOf(t)[netip.PrefixFrom(l.p.AttackerIP4, 32)]; !ok {
		t.Error("after eviction the scanner was not struck")
	}
}

// TestFirstStrikeAggregate: a scanner taking a new /64 of its /48 for
// every probe is struck from the DistinctKeys-th /64 on, each probe of a
// new /64 after it too.
func TestFirstStrikeAggregate(t *testing.T) {
	l := newFSLab(t, FirstStrikeConfig{Rules: []FirstStrikeRule{{Name: "aggregate", DistinctKeys: 8, Wide4: 24, Wide6: 48, Window: time.Minute}}})
	var srcs []netip.Addr
	for i := 0; i < 20; i++ {
		srcs = append(srcs, netip.MustParseAddr(fmt.Sprintf("2001:db8:bad:%x::1", i+1)))
	}
	l.p.AddAttackerAddrs(t, srcs...)
	answered := 0
	for i, src := range srcs {
		answered += replies(l.synScan(t, src, l.p.VictimIP6, []uint16{uint16(100 + i)}))
	}
	if answered != 7 {
		t.Errorf("%d of 20 probes from 20 /64s of one /48 answered, want 7", answered)
	}
}
