package rules

import (
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// The engine's compiled selectors pick exactly the rules Rule.match does,
// for every protocol, flag combination, fragment and port, and for log
// prefixes and interfaces that come and go (more than its caches hold).
func TestSelectorsAgreeWithRuleMatch(t *testing.T) {
	cfg := testConfig()
	cfg.Rules = append(defaultRulesForTest(),
		Rule{Name: "ufw", Prefixes: []Pattern{"[UFW *", "filter_IN_*"}, DistinctPorts: 3, Within: time.Minute, Ban: time.Hour},
		Rule{Name: "eth1", Interfaces: []Pattern{"eth1", "wg*"}, Protos: []uint8{parsers.ProtoTCP, parsers.ProtoUDP}, Ports: NewPortSet(PortRange{20, 30}), Hits: 3, Within: time.Minute, Ban: time.Hour},
		Rule{Name: "any-prefix", Prefixes: []Pattern{"*"}, Interfaces: []Pattern{"eth0"}, Flags: ClassSYN | ClassRST, Hits: 9, Within: time.Minute, Ban: time.Hour},
		Rule{Name: "empty-prefix", Prefixes: []Pattern{""}, Hits: 2, Within: time.Minute, Ban: time.Hour},
	)
	e := newEngine(t, cfg)
	prefixes := []string{"", "SENTRY", "[UFW BLOCK]", "filter_IN_public_REJECT", "other", "[UFW ALLOW]", "x"}
	ifaces := []string{"", "eth0", "eth1", "wg0", "lo", "wlan0"}
	protos := []uint8{parsers.ProtoTCP, parsers.ProtoUDP, parsers.ProtoSCTP, parsers.ProtoICMP, 47, 0, 255}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000; i++ {
		ev := parsers.Event{
			Src:        netip.MustParseAddr("203.0.113.1"),
			Proto:      protos[r.IntN(len(protos))],
			Flags:      parsers.TCPFlags(r.IntN(256)),
			DstPort:    uint16(r.IntN(40000)),
			NoL4Header: r.IntN(8) == 0,
			Prefix:     prefixes[r.IntN(len(prefixes))],
			InIface:    ifaces[r.IntN(len(ifaces))],
		}
		if r.IntN(4) == 0 {
			ev.DstPort = uint16(18 + r.IntN(15))
		}
		var want uint64
		for j := range e.rules {
			if e.rules[j].match(&ev) {
				want |= 1 << j
			}
		}
		if got := e.match(&ev); got != want {
			for j := range e.rules {
				if (got^want)&(1<<j) != 0 {
					t.Errorf("%+v: rule %s: compiled %v, Rule.match %v", ev, e.rules[j].Name, got&(1<<j) != 0, want&(1<<j) != 0)
				}
			}
			t.FailNow()
		}
	}
}

// Events matched by the same rules in a row are counted together; Stats
// counts those of the run not yet added.
func TestRuleEventsCountedAcrossRuns(t *testing.T) {
	e := newEngine(t, testConfig())
	want := make([]uint64, len(e.rules))
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 2000; i++ {
		ev := syn("203.0.113.1", uint16(r.IntN(3)), time.Duration(i)*time.Millisecond)
		switch r.IntN(3) {
		case 0:
			ev.Proto, ev.Flags = parsers.ProtoUDP, 0
		case 1:
			ev.Flags = parsers.FIN
		}
		e.Step(&ev)
		for m := e.match(&ev); m != 0; m &= m - 1 {
			want[bits.TrailingZeros64(m)]++
		}
		if i%7 == 0 || i > 1990 {
			got := e.Stats().RuleEvents
			for j := range want {
				if got[j] != want[j] {
					t.Fatalf("after %d events: rule %s counted %d, want %d", i+1, e.rules[j].Name, got[j], want[j])
				}
			}
		}
	}
}

func TestStringCache(t *testing.T) {
	var c stringCache
	for i, s := range []string{"a", "b", "c", "d", "e"} {
		c.put(s, uint64(i))
	}
	// "a" was the oldest of five in a cache of four.
	if _, ok := c.get("a"); ok {
		t.Error(`"a" still held`)
	}
	for i, s := range []string{"b", "c", "d", "e"} {
		if v, ok := c.get(s); !ok || v != uint64(i+1) {
			t.Errorf("get(%q) = %d %v, want %d", s, v, ok, i+1)
		}
	}
	if _, ok := c.get(""); ok {
		t.Error(`the empty string held though never put`)
	}
}
