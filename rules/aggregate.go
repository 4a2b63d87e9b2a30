package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// aggregates tracks wide prefixes (Config.Aggregate): for each, the
// distinct ban keys inside it with a matching event in the window. Its
// memory is bounded: at most max prefixes, each holding at most
// DistinctKeys keys. When full, a prefix is forgotten for the new one: the
// first, from a hand that goes round the slots, whose last event is older
// than the window (its evidence is spent), else the one at the hand.
type aggregates struct {
	cfg Aggregate
	// on and bits say, per family (IPv4, IPv6), whether it aggregates and
	// to which length.
	on    [2]bool
	bits  [2]int
	index [2]*table[int32]
	// Each slot's record holds its state and then its keys: DistinctKeys
	// values and times, starting at words keyVals and keyTimes.
	slots             records[aggState]
	keyVals, keyTimes int
	free              []int32
	hand              int32
	max               int
	valve             valve
}

type aggState struct {
	key   words
	keys  distinct[uint32] // the keys' bits under the wide prefix: nkeys
	first int64
	last  int64
	hits  uint32
	nkeys uint16
	used  bool
	v6    bool
	// covers says the wide prefix holds an ignored address: never banned.
	covers  bool
	flags   parsers.TCPFlags
	listed  [MaxListedPorts]uint16
	nlisted uint8
}

// newAggregates returns the aggregates of cfg for ban keys of keyBits
// (IPv4, IPv6) bits.
func newAggregates(cfg Aggregate, maxSources int, keyBits [2]int) aggregates {
	n := cfg.DistinctKeys
	a := aggregates{cfg: cfg, max: max(256, maxSources/8), valve: newValve(cfg.MaxNewPerMinute),
		index: [2]*table[int32]{newTable[int32](), newTable[int32]()}, slots: newRecords[aggState](wordsFor(n, 4) + n),
		keyVals: headWords[aggState](), keyTimes: headWords[aggState]() + wordsFor(n, 4)}
	// A family aggregates when its wide prefix is shorter than its keys.
	for f, bits := range [2]int{cfg.IPv4Prefix, cfg.IPv6Prefix} {
		a.on[f], a.bits[f] = bits > 0 && keyBits[f] > bits, bits
	}
	return a
}

func (a *aggregates) len() int { return a.index[0].n + a.index[1].n }

func checkAggregate(a *Aggregate, b *BanPolicy) error {
	if !a.Enabled() {
		return nil
	}
	switch {
	case a.IPv4Prefix < 0 || a.IPv4Prefix >= b.IPv4Prefix && a.IPv4Prefix != 0:
		return fmt.Errorf("rules: aggregate ipv4_prefix %d must be shorter than ipv4_prefix %d", a.IPv4Prefix, b.IPv4Prefix)
	case a.IPv6Prefix < 0 || a.IPv6Prefix >= b.IPv6Prefix && a.IPv6Prefix != 0:
		return fmt.Errorf("rules: aggregate ipv6_prefix %d must be shorter than ipv6_prefix %d", a.IPv6Prefix, b.IPv6Prefix)
	case a.DistinctKeys < 2 || a.DistinctKeys > MaxDistinctPorts:
		return fmt.Errorf("rules: aggregate distinct_keys %d out of range 2-%d", a.DistinctKeys, MaxDistinctPorts)
	case a.Within <= 0 || a.Ban <= 0:
		return fmt.Errorf("rules: aggregate needs a positive within and ban")
	case a.MaxNewPerMinute < 0:
		return fmt.Errorf("rules: aggregate max_new_per_minute %d is negative", a.MaxNewPerMinute)
	}
	return nil
}

// wide returns the wide prefix around addr, of family v6 and words w,
// and whether the family aggregates. Keys are never narrowed here: the
// engine tracks and aggregates sources by their configured key (a key
// narrowed around an ignored address exists only in decisions).
func (a *aggregates) wide(w words, v6 bool) (words, bool) {
	f := b2i(v6)
	if !a.on[f] {
		return words{}, false
	}
	return w.mask(a.bits[f], v6), true
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// subKey returns the bits of key (of keyBits bits) under its wide prefix,
// the low 32 of them (two keys that differ only above are counted as one,
// which can only make the threshold later).
func subKey(key words, v6 bool, keyBits int) uint32 {
	if !v6 {
		return uint32(key.lo >> (32 - keyBits))
	}
	shift := 128 - keyBits
	switch {
	case shift >= 64:
		return uint32(key.hi >> (shift - 64))
	case shift == 0:
		return uint32(key.lo)
	}
	return uint32(key.lo>>shift | key.hi<<(64-shift))
}

// aggregate adds one matching event of the key kw (not banned, no rule
// crossed) to its wide prefix ww and, when the prefix crosses its
// threshold, writes the decision to d and reports true.
func (e *Engine) aggregate(ww words, v6 bool, ev *parsers.Event, kw words, t, tg int64, d *Decision) bool {
	a := &e.agg
	f := b2i(v6)
	var i int32
	if p := a.index[f].get(ww); p != nil {
		i = *p
	} else {
		// Room first: forgetting a prefix moves entries of the index.
		i = a.take(t)
		p, _ := a.index[f].put(ww)
		*p = i
		s := a.slots.head(i)
		wide := netip.PrefixFrom(ww.addr(v6), a.bits[f])
		s.key, s.v6, s.used, s.hits, s.covers = ww, v6, true, 0, e.overlapsIgnore(wide)
		s.keys.reset(&s.nkeys)
	}
	s, rec := a.slots.at(i)
	if s.covers {
		return false
	}
	within := int64(a.cfg.Within)
	if t < s.last && s.last-t <= within {
		t = s.last
	}
	if s.hits == 0 || t-s.last > within || t < s.last {
		s.hits, s.flags, s.nlisted, s.first = 0, 0, 0, t
		s.keys.reset(&s.nkeys)
	}
	s.hits++
	s.last = t
	s.flags |= ev.Flags
	if int(s.nlisted) < len(s.listed) && !slices.Contains(s.listed[:s.nlisted], ev.DstPort) {
		s.listed[s.nlisted] = ev.DstPort
		s.nlisted++
	}
	if s.keys.add(&s.nkeys, u32s(rec, a.keyVals, a.cfg.DistinctKeys), i64s(rec, a.keyTimes, a.cfg.DistinctKeys), subKey(kw, v6, e.keyBits[f]), t, t-within) < a.cfg.DistinctKeys {
		return false
	}
	*d = Decision{
		Time: ev.Time, Key: netip.PrefixFrom(ww.addr(v6), a.bits[f]), Source: ev.Src, Rule: AggregateRule,
		FirstSeen: time.Unix(0, s.first).In(ev.Time.Location()), LastSeen: ev.Time,
		Hits: s.hits, Flags: s.flags, Proto: ev.Proto,
		DistinctPorts: uint32(s.nlisted),
	}
	d.NPorts = uint8(copy(d.Ports[:], s.listed[:s.nlisted]))
	e.conclude(d, a.cfg.Ban, &a.valve, tg)
	s.hits = 0
	return true
}

// take returns a free slot for a new wide prefix, forgetting another
// prefix when full; t is the event's time.
func (a *aggregates) take(t int64) int32 {
	if a.len() >= a.max {
		a.evict(t)
	}
	if n := len(a.free); n > 0 {
		i := a.free[n-1]
		a.free = a.free[:n-1]
		return i
	}
	return a.slots.add()
}

// evict forgets one wide prefix (see aggregates): the first of the next
// few slots from the hand whose evidence is spent at t, else the first in
// use.
func (a *aggregates) evict(t int64) {
	within := int64(a.cfg.Within)
	pick, n := none, a.slots.len()
	for k, i := int32(0), a.hand; k < n && k < 16; k, i = k+1, (i+1)%n {
		s := a.slots.head(i)
		if !s.used {
			continue
		}
		if pick < 0 {
			pick = i
		}
		if s.hits == 0 || t-s.last > within {
			pick = i
			break
		}
	}
	if pick == none {
		return
	}
	s := a.slots.head(pick)
	a.index[b2i(s.v6)].delete(s.key)
	s.used = false
	a.free = append(a.free, pick)
	a.hand = (pick + 1) % n
}

// reset forgets every wide prefix, as when the ignore list changes (a
// prefix's covering an ignored address is kept with it).
func (a *aggregates) reset() {
	for f := range a.index {
		a.index[f] = newTable[int32]()
	}
	a.free = a.free[:0]
	for i := range a.slots.len() {
		a.slots.head(i).used = false
		a.free = append(a.free, i)
	}
}
