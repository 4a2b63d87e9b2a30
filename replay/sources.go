package replay

import (
	"container/heap"
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// maxCountedSources bounds the per-source event counts of the summary, so
// a replay of a forged flood stays small too.
const maxCountedSources = 100000

// sourceTable counts events and decisions per ban key, for the summary's
// top sources. Every event is counted, so the common keys (an IPv4 address
// masked to the engine's IPv4 prefix length, an IPv6 prefix of up to 64
// bits) are counted by integer in countTables, several times faster than a
// map by netip.Prefix; any other key (a decision's narrower one, an IPv6
// prefix longer than 64 bits) is counted by prefix.
type sourceTable struct {
	bits4, bits6 int
	mask4        uint32
	mask6        uint64
	// fast6 says IPv6 keys fit in their top 64 bits.
	fast6 bool

	by4   *countTable[uint32] // IPv4 keys
	by6   *countTable[uint64] // the top 64 bits of IPv6 keys
	byPfx map[netip.Prefix]uint64
	// decisions counts decisions per key, by action and rule; every key in
	// it has an entry (perhaps of 0 events) in the maps above.
	decisions map[netip.Prefix]map[decisionKind]int
	// uncounted counts events of sources beyond maxCountedSources.
	uncounted uint64
}

// sourceCount is one source of the summary.
type sourceCount struct {
	key       netip.Prefix
	events    uint64
	decisions map[decisionKind]int
}

// decisionKind is what a decision did and under which rule.
type decisionKind struct {
	action rules.Action
	rule   string
}

// String is the summary's "ban tcp-portscan".
func (k decisionKind) String() string { return k.action.String() + " " + k.rule }

// newSourceTable returns a table keyed like engine.Key, whose prefix
// lengths it learns from the keys of the unspecified addresses.
func newSourceTable(engine *rules.Engine) *sourceTable {
	t := &sourceTable{
		by4:       newCountTable[uint32](),
		by6:       newCountTable[uint64](),
		byPfx:     map[netip.Prefix]uint64{},
		decisions: map[netip.Prefix]map[decisionKind]int{},
	}
	if engine == nil {
		return t
	}
	t.bits4 = engine.Key(netip.IPv4Unspecified()).Bits()
	t.bits6 = engine.Key(netip.IPv6Unspecified()).Bits()
	t.mask4 = ^uint32(0) << (32 - t.bits4)
	if t.bits4 == 0 {
		t.mask4 = 0
	}
	t.fast6 = t.bits6 >= 0 && t.bits6 <= 64
	if t.fast6 {
		t.mask6 = ^uint64(0) << (64 - t.bits6)
		if t.bits6 == 0 {
			t.mask6 = 0
		}
	}
	return t
}

// len is the number of sources counted (and the decisions' keys).
func (t *sourceTable) len() int { return t.by4.len() + t.by6.len() + len(t.byPfx) }

// event counts one event from addr, whose key is engine.Key(addr).
func (t *sourceTable) event(engine *rules.Engine, addr netip.Addr) {
	full := t.len() >= maxCountedSources
	switch {
	case addr.Is4():
		a := addr.As4()
		k := binary.BigEndian.Uint32(a[:]) & t.mask4
		if !t.by4.add(k, 1, !full) {
			t.uncounted++
		}
	case addr.Is6() && t.fast6:
		a := addr.As16()
		k := binary.BigEndian.Uint64(a[:8]) & t.mask6
		if !t.by6.add(k, 1, !full) {
			t.uncounted++
		}
	default:
		k := engine.Key(addr)
		if !full {
			t.byPfx[k]++
		} else if n, ok := t.byPfx[k]; ok {
			t.byPfx[k] = n + 1
		} else {
			t.uncounted++
		}
	}
}

// chunk counts the events of a chunk at once, before they are stepped,
// and reports whether it did; when it did not, each event is counted as
// it is stepped. At once, the table's lookups for a run of events are
// under way together rather than one between two engine steps, each
// waiting for its cache miss alone: counting went from 7.5% of a
// replay's CPU to 4.9%. It is done only while the table is far enough from
// maxCountedSources that neither the chunk's events nor its decisions
// (at most one per event) can fill it: then which sources are counted
// does not depend on whether an event's key is added before a decision's
// or after.
func (t *sourceTable) chunk(engine *rules.Engine, evs []parsers.Event) bool {
	if t.len()+2*len(evs) >= maxCountedSources {
		return false
	}
	for i := range evs {
		t.event(engine, evs[i].Src)
	}
	return true
}

// decided counts a decision for key, which is the key of its event or a
// narrower one (an ignored address inside the /64). A decision's key is
// counted even beyond maxCountedSources: decisions are bounded by the
// engine's valve, not by the input.
func (t *sourceTable) decided(d *rules.Decision) {
	c := t.decisions[d.Key]
	if c == nil {
		c = map[decisionKind]int{}
		t.decisions[d.Key] = c
		t.add(d.Key)
	}
	c[decisionKind{d.Action, d.Rule}]++
}

// add gives key an entry of 0 events, unless it has one.
func (t *sourceTable) add(key netip.Prefix) {
	a := key.Addr()
	switch {
	case a.Is4() && key.Bits() == t.bits4:
		b := a.As4()
		t.by4.add(binary.BigEndian.Uint32(b[:]), 0, true)
	case a.Is6() && t.fast6 && key.Bits() == t.bits6 && binary.BigEndian.Uint64(a.AsSlice()[8:]) == 0:
		b := a.As16()
		t.by6.add(binary.BigEndian.Uint64(b[:8]), 0, true)
	default:
		t.byPfx[key] += 0
	}
}

func addr4(k uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], k)
	return netip.AddrFrom4(b)
}

func addr6(hi uint64) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	return netip.AddrFrom16(b)
}

// each calls f for every source.
func (t *sourceTable) each(f func(c *sourceCount)) {
	var c sourceCount
	for k, n := range t.by4.all {
		c.key, c.events = netip.PrefixFrom(addr4(uint32(k)), t.bits4), n
		f(&c)
	}
	for k, n := range t.by6.all {
		c.key, c.events = netip.PrefixFrom(addr6(k), t.bits6), n
		f(&c)
	}
	for k, n := range t.byPfx {
		c.key, c.events = k, n
		f(&c)
	}
}

// before orders the summary's sources: most events first, then by address
// and prefix length, so that the order does not depend on the input's.
func before(a, b *sourceCount) bool {
	if a.events != b.events {
		return a.events > b.events
	}
	if c := a.key.Addr().Compare(b.key.Addr()); c != 0 {
		return c < 0
	}
	return a.key.Bits() < b.key.Bits()
}

// top returns the first n sources in summary order. It keeps the n best
// seen so far in a heap whose root is the worst of them, so a top-10 of
// 100,000 sources costs a pass rather than a sort.
func (t *sourceTable) top(n int) []*sourceCount {
	if n <= 0 {
		return nil
	}
	h := &worstFirst{}
	t.each(func(c *sourceCount) {
		switch {
		case len(h.s) < n:
			cc := *c
			heap.Push(h, &cc)
		case before(c, h.s[0]):
			*h.s[0] = *c
			heap.Fix(h, 0)
		}
	})
	for _, c := range h.s {
		c.decisions = t.decisions[c.key]
	}
	slices.SortFunc(h.s, func(a, b *sourceCount) int {
		switch {
		case before(a, b):
			return -1
		case before(b, a):
			return 1
		}
		return 0
	})
	return h.s
}

// worstFirst is a heap of sources with the one that sorts last at the root.
type worstFirst struct{ s []*sourceCount }

func (h *worstFirst) Len() int           { return len(h.s) }
func (h *worstFirst) Less(i, j int) bool { return before(h.s[j], h.s[i]) }
func (h *worstFirst) Swap(i, j int)      { h.s[i], h.s[j] = h.s[j], h.s[i] }
func (h *worstFirst) Push(x any)         { h.s = append(h.s, x.(*sourceCount)) }
func (h *worstFirst) Pop() any {
	x := h.s[len(h.s)-1]
	h.s = h.s[:len(h.s)-1]
	return x
}
