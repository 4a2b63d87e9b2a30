package replay

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// refTable is the per-source count as replay kept it before: one map by
// prefix, sorted whole.
type refTable struct {
	m         map[netip.Prefix]*sourceCount
	uncounted uint64
}

func (r *refTable) event(k netip.Prefix) {
	c := r.m[k]
	if c == nil {
		if len(r.m) >= maxCountedSources {
			r.uncounted++
			return
		}
		c = &sourceCount{key: k}
		r.m[k] = c
	}
	c.events++
}

func (r *refTable) decided(k netip.Prefix, what decisionKind) {
	c := r.m[k]
	if c == nil {
		c = &sourceCount{key: k}
		r.m[k] = c
	}
	if c.decisions == nil {
		c.decisions = map[decisionKind]int{}
	}
	c.decisions[what]++
}

func (r *refTable) top(n int) []string {
	var rows []*sourceCount
	for _, c := range r.m {
		rows = append(rows, c)
	}
	sort.Slice(rows, func(i, j int) bool { return before(rows[i], rows[j]) })
	return fmtRows(rows[:min(n, len(rows))])
}

func fmtRows(rows []*sourceCount) []string {
	var s []string
	for _, c := range rows {
		s = append(s, fmt.Sprintf("%s %d %v", c.key, c.events, c.decisions))
	}
	return s
}

// TestSourceTable counts random sources (IPv4, IPv6, IPv4-mapped, the
// unspecified and invalid addresses) and decisions with the engine's keys
// and narrower ones, past maxCountedSources, for several prefix lengths,
// and compares counts and top sources with one map by prefix that counts
// each event and then its decision, in order. The table counts them so
// too, or as replay does: a chunk's events first (chunk), then the
// chunk's decisions as its events are stepped.
func TestSourceTable(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) { testSourceTable(t, chunked) })
	}
}

func testSourceTable(t *testing.T, chunked bool) {
	for _, bits := range [][2]int{{32, 64}, {24, 48}, {32, 128}, {1, 1}, {16, 96}} {
		engine, err := rules.NewEngine(rules.Config{
			Rules:             []rules.Rule{{Name: "trip", Hits: 1, Ban: time.Hour}},
			Bans:              rules.BanPolicy{IPv4Prefix: bits[0], IPv6Prefix: bits[1], RepeatFactor: 1},
			MaxTrackedSources: 16,
		})
		if err != nil {
			t.Fatal(err)
		}
		tab, ref := newSourceTable(engine), &refTable{m: map[netip.Prefix]*sourceCount{}}
		r := rand.New(rand.NewPCG(uint64(bits[0]), uint64(bits[1])))
		addr := func() netip.Addr {
			switch r.IntN(8) {
			case 0:
				return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(r.IntN(4)), 0, 0, 0, byte(r.IntN(4)), 15: byte(r.IntN(300))})
			case 1:
				return netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 198, 13: 51, 14: 100, 15: byte(r.IntN(4))})
			case 2:
				return []netip.Addr{{}, netip.IPv4Unspecified(), netip.IPv6Unspecified()}[r.IntN(3)]
			}
			return netip.AddrFrom4([4]byte{203, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))})
		}
		var evs []parsers.Event
		for i := 0; i < 3*maxCountedSources; {
			// A chunk of up to 5,000 events, as replay steps them.
			evs = evs[:0]
			for n := 1 + r.IntN(5000); n > 0 && i < 3*maxCountedSources; n, i = n-1, i+1 {
				evs = append(evs, parsers.Event{Src: addr()})
			}
			counted := chunked && tab.chunk(engine, evs)
			for _, ev := range evs {
				a := ev.Src
				if !counted {
					tab.event(engine, a)
				}
				ref.event(engine.Key(a))
				if r.IntN(50) == 0 {
					k := engine.Key(a)
					if r.IntN(2) == 0 && a.IsValid() {
						k = netip.PrefixFrom(a, a.BitLen()) // an ignored address's narrower key
					}
					d := rules.Decision{Key: k, Action: rules.Action(r.IntN(3)), Rule: "trip"}
					tab.decided(&d)
					ref.decided(k, decisionKind{d.Action, "trip"})
				}
			}
		}
		name := fmt.Sprintf("/%d /%d", bits[0], bits[1])
		if tab.len() != len(ref.m) || tab.uncounted != ref.uncounted {
			t.Errorf("%s: %d sources, %d uncounted; one map: %d, %d", name, tab.len(), tab.uncounted, len(ref.m), ref.uncounted)
		}
		if bits[0] == 32 && ref.uncounted == 0 {
			t.Errorf("%s: the test never went past maxCountedSources", name)
		}
		for _, n := range []int{0, 1, 10, 1000, len(ref.m) + 5} {
			got, want := fmtRows(tab.top(n)), ref.top(n)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: top %d differs:\n%v\nwant\n%v", name, n, got[:min(len(got), 5)], want[:min(len(want), 5)])
			}
		}
	}
}
