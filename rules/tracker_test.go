package rules

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// refDistinct is the distinct counter as first written: one pass that
// drops the expired values and refreshes v, then v appended if new and
// there is room. distinct must count as it does.
type refDistinct struct {
	v []uint32
	t []int64
}

func (d *refDistinct) add(v uint32, t, cutoff int64, capacity int, known bool) int {
	var kv []uint32
	var kt []int64
	found := false
	for i := range d.v {
		if d.t[i] < cutoff {
			continue
		}
		tt := d.t[i]
		if known && d.v[i] == v {
			tt, found = t, true
		}
		kv, kt = append(kv, d.v[i]), append(kt, tt)
	}
	if known && !found && len(kv) < capacity {
		kv, kt = append(kv, v), append(kt, t)
	}
	d.v, d.t = kv, kt
	return len(d.v)
}

func TestDistinctAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, capacity := range []int{2, 5, 15} {
		for _, within := range []int64{10, 100, 1000} {
			var d distinct[uint32]
			var n uint16
			d.reset(&n)
			var ref refDistinct
			vals, times := make([]uint32, capacity), make([]int64, capacity)
			now := int64(1e9)
			for i := 0; i < 20000; i++ {
				now += int64(r.IntN(int(within / 4)))
				if r.IntN(500) == 0 {
					d.reset(&n)
					ref = refDistinct{}
				}
				v := uint32(r.IntN(2 * capacity))
				known := r.IntN(10) != 0
				want := ref.add(v, now, now-within, capacity, known)
				var got int
				if known {
					got = d.add(&n, vals, times, v, now, now-within)
				} else {
					got = d.count(&n, vals, times, now-within)
				}
				if got != want {
					t.Fatalf("cap %d within %d, step %d: %d values, want %d", capacity, within, i, got, want)
				}
			}
		}
	}
}

// When the wide prefixes fill their table, the one forgotten for a new one
// is one whose evidence is spent, when the next few from the hand hold
// one, else the one at the hand: the same one on every run.
func TestAggregatesForgetSpentPrefixFirst(t *testing.T) {
	cfg := testConfig()
	cfg.Aggregate = DefaultAggregate()
	cfg.Aggregate.Within = 10 * time.Minute
	cfg.MaxTrackedSources = 100 // room for 256 wide prefixes
	e := newEngine(t, cfg)
	step := func(a, b, c byte, at time.Duration) {
		ev := syn(netip.AddrFrom4([4]byte{10, a, b, c}).String(), 1, at)
		if d, ok := e.Step(&ev); ok {
			t.Fatalf("a decision: %+v", d)
		}
	}
	held := func(a, b byte) bool {
		w, _ := addrWords(netip.AddrFrom4([4]byte{10, a, b, 0}))
		return e.agg.index[0].get(w) != nil
	}
	for i := 0; i < 256; i++ {
		step(0, byte(i), 1, 0)
	}
	for i := 0; i < 256; i++ {
		if i != 5 {
			step(0, byte(i), 2, time.Minute)
		}
	}
	// At 10.5 minutes only 10.0.5.0/24 is spent: it goes, not the first.
	step(1, 0, 1, 10*time.Minute+30*time.Second)
	if held(0, 5) || !held(0, 0) || !held(1, 0) || e.agg.len() != 256 {
		t.Fatalf("spent /24 kept %v, first /24 kept %v, new one %v, %d held", held(0, 5), held(0, 0), held(1, 0), e.agg.len())
	}
	// Nothing else spent: the one at the hand goes (the one after 5).
	step(1, 1, 1, 10*time.Minute+31*time.Second)
	if held(0, 6) || !held(0, 7) || !held(1, 1) {
		t.Errorf("with none spent: 10.0.6.0/24 kept %v, 10.0.7.0/24 %v, new %v", held(0, 6), held(0, 7), held(1, 1))
	}
}

// A source keeps the trackers of rules past the first inlineRules apart
// from its slot; they count, and are given back and reset with the rest.
func TestTrackersPastTheInlineRules(t *testing.T) {
	cfg := testConfig()
	cfg.Rules = nil
	for i := range inlineRules + 3 {
		// Rules 0 to inlineRules+1 never decide; the last one does, at 3
		// distinct ports.
		cfg.Rules = append(cfg.Rules, Rule{Name: fmt.Sprintf("r%d", i), DistinctPorts: 100, Within: time.Minute, Ban: time.Hour})
	}
	last := &cfg.Rules[len(cfg.Rules)-1]
	last.DistinctPorts = 3
	cfg.MaxTrackedSources = 2
	e := newEngine(t, cfg)
	var d Decision
	var ok bool
	for i, src := range []string{"192.0.2.50", "192.0.2.60", "192.0.2.70", "192.0.2.50", "192.0.2.50", "192.0.2.50"} {
		// The third source evicts the first, whose later events start
		// afresh in a reused slot: its first port is forgotten.
		ev := syn(src, uint16(10+i), time.Duration(i)*time.Second)
		if d, ok = e.Step(&ev); ok {
			break
		}
	}
	if !ok || d.Rule != last.Name || d.DistinctPorts != 3 || d.Ports != [MaxListedPorts]uint16{13, 14, 15} {
		t.Errorf("decision %v %+v, want %s at ports 13, 14, 15", ok, d, last.Name)
	}
	if s := e.Stats(); s.Evicted != 2 || s.RuleEvents[inlineRules+1] != 6 {
		t.Errorf("evicted %d, rule %d counted %d events; want 2 and 6", s.Evicted, inlineRules+1, s.RuleEvents[inlineRules+1])
	}
}
