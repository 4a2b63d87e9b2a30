package rules

import (
	"fmt"
	"math/bits"
	"net/netip"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// MaxRules is the number of rules an engine takes: a matched-rule set is one
// machine word on the hot path.
const MaxRules = 64

// Stats counts what the engine has done. RuleEvents is indexed like
// Config.Rules, Decisions by Action.
type Stats struct {
	// Events is every event stepped.
	Events uint64
	// Accepted events carried an accept prefix and were not evidence.
	Accepted uint64
	// Unmatched events matched no rule.
	Unmatched uint64
	// WhileBanned events came from a key already banned (in replay: packets
	// the kernel would have dropped) or pardoned after the event's time.
	WhileBanned uint64
	// RuleEvents counts events matched, per rule.
	RuleEvents []uint64
	// Decisions counts decisions per Action.
	Decisions [NumActions]uint64
	// Aggregates counts the decisions on wide prefixes (also counted in
	// Decisions).
	Aggregates uint64
	// Tracked is the number of sources with state now; Evicted were dropped
	// to stay under MaxTrackedSources, Expired for being idle.
	Tracked          int
	Evicted, Expired uint64
	// Offenders is the number of keys with a remembered offence.
	Offenders int
	// ClockJumps counts events whose time disagreed with the engine's
	// clock by more than ClockSkew (see ClockSkew): each event ahead, and
	// each run of events behind, once.
	ClockJumps uint64
}

// Engine applies the rules to events, one at a time. It is not safe for
// concurrent use: one goroutine owns it and feeds it events in order.
//
// Its state is in slabs and tables without pointers (see table), so that
// the garbage collector has nothing to scan in it however many sources it
// tracks, and a step touches few cache lines.
type Engine struct {
	rules  []Rule
	ignore []netip.Prefix
	accept []acceptPattern
	bans   BanPolicy
	max    int
	// keyBits is the ban key length of IPv4 and IPv6 sources.
	keyBits [2]int

	// Prefixes come from a few rules, so their verdicts are kept.
	acceptedCache stringCache

	sel selectors

	// Events matched by the same set of rules in a row are counted
	// together (runN of runMask), and added to stats.RuleEvents when the
	// set changes: a counter per matched rule per event costs more than
	// the matching.
	runMask, runN uint64

	// Tracked sources live in a slab of slots chained in LRU order (head is
	// the most recent), so eviction and idle expiry are O(1); index finds
	// a source's slot by its key, per family (IPv4, IPv6).
	slots      pages[source]
	free       []int32
	index      [2]*sourceIndex
	head, tail int32
	maxWindow  int64
	// A source's tracker of rule i is in trs[i] (see source.at; atMore
	// holds the indexes of rules past inlineRules).
	atMore pages[int32]
	trs    []trackers

	offences  prefixMap[offence]
	nextSweep int64

	// The valves: multi-packet evidence, single-packet evidence, and the
	// short drops beyond either (and beyond the aggregates' own).
	valve, single, over valve
	agg                 aggregates

	// The engine's clock (see ClockSkew): now, a forward jump waiting for
	// the next event, the key it decided on, and whether events run behind.
	now, pending int64
	pendingKey   netip.Prefix
	behind       bool
	stats        Stats
}

type source struct {
	key        words
	prev, next int32
	// seen is the engine's clock at the source's last event: idle expiry
	// is measured on it, not on the source's own times.
	seen int64
	// at[i] is the index of the source's tracker in trs[i], or -1: a
	// source has trackers only for the rules it matched. The first
	// inlineRules rules' are here, in the source's cache line.
	at [inlineRules]int32
	v6 bool
}

// inlineRules is the number of rules whose trackers a source finds in its
// own 64 bytes; it holds the shipped config's seven.
const inlineRules = 7

// trackerAt returns where the source s in slot i keeps the index of its
// tracker of rule r.
func (e *Engine) trackerAt(s *source, i int32, r int) *int32 {
	if r < inlineRules {
		return &s.at[r]
	}
	return &e.atMore.item(i)[r-inlineRules]
}

type offence struct {
	lastBan     int64
	bannedUntil int64
	pardonedAt  int64
	count       uint32
}

const none = int32(-1)

// NewEngine compiles cfg into an engine. cfg is expected to come from the
// config loader; NewEngine re-checks what the engine's safety depends on.
func NewEngine(cfg Config) (*Engine, error) {
	if len(cfg.Rules) == 0 {
		return nil, fmt.Errorf("rules: no rules")
	}
	if len(cfg.Rules) > MaxRules {
		return nil, fmt.Errorf("rules: %d rules, at most %d", len(cfg.Rules), MaxRules)
	}
	seen := map[string]bool{}
	var maxWindow time.Duration
	for i := range cfg.Rules {
		r := &cfg.Rules[i]
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("rules: two rules named %s", r.Name)
		}
		seen[r.Name] = true
		if !r.Tripwire() && r.Within > maxWindow {
			maxWindow = r.Within
		}
	}
	b := cfg.Bans
	switch {
	case b.IPv4Prefix < 1 || b.IPv4Prefix > 32:
		return nil, fmt.Errorf("rules: ipv4_prefix %d out of range 1-32", b.IPv4Prefix)
	case b.IPv6Prefix < 1 || b.IPv6Prefix > 128:
		return nil, fmt.Errorf("rules: ipv6_prefix %d out of range 1-128", b.IPv6Prefix)
	case b.RepeatFactor < 1:
		return nil, fmt.Errorf("rules: repeat_factor %g below 1", b.RepeatFactor)
	case b.MaxNewPerMinute < 0 || b.OverValvePerMinute < 0 || b.SinglePacketPerMinute < 0:
		return nil, fmt.Errorf("rules: a valve (max_new_per_minute) is negative")
	case b.OverValveBan < 0 || b.SinglePacketBan < 0:
		return nil, fmt.Errorf("rules: a negative ban")
	case cfg.MaxTrackedSources < 1:
		return nil, fmt.Errorf("rules: max_tracked_sources must be at least 1")
	}
	accept, err := compileAccept(cfg.AcceptPrefixes)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if err := checkAggregate(&cfg.Aggregate, &b); err != nil {
		return nil, err
	}
	if cfg.Aggregate.Enabled() && cfg.Aggregate.Within > maxWindow {
		maxWindow = cfg.Aggregate.Within
	}
	keyBits := [2]int{b.IPv4Prefix, b.IPv6Prefix}
	e := &Engine{
		rules:     append([]Rule(nil), cfg.Rules...),
		ignore:    append([]netip.Prefix(nil), cfg.Ignore...),
		accept:    accept,
		bans:      b,
		max:       cfg.MaxTrackedSources,
		keyBits:   keyBits,
		index:     [2]*sourceIndex{newSourceIndex(), newSourceIndex()},
		slots:     newPages[source](1),
		atMore:    newPages[int32](max(0, len(cfg.Rules)-inlineRules)),
		head:      none,
		tail:      none,
		maxWindow: int64(maxWindow),
		valve:     newValve(b.MaxNewPerMinute),
		single:    newValve(b.SinglePacketPerMinute),
		over:      newValve(b.OverValvePerMinute),
		agg:       newAggregates(cfg.Aggregate, cfg.MaxTrackedSources, keyBits),
	}
	e.sel = newSelectors(e.rules)
	for i := range e.rules {
		e.trs = append(e.trs, newTrackers(&e.rules[i]))
	}
	e.stats.RuleEvents = make([]uint64, len(e.rules))
	return e, nil
}

// Rules returns the engine's rules (shared; do not modify).
func (e *Engine) Rules() []Rule { return e.rules }

// Key returns the ban key of addr: addr masked to the configured prefix
// length of its family.
func (e *Engine) Key(addr netip.Addr) netip.Prefix {
	bits := e.bans.IPv4Prefix
	if addr.Is6() {
		bits = e.bans.IPv6Prefix
	}
	p, _ := addr.Prefix(bits)
	return p
}

// Step feeds one event to the engine and returns the decision it causes, if
// any. At most one decision comes from one event: the first rule, in config
// order, whose threshold the event crosses, else the wide prefix's
// (Config.Aggregate). Allocation-free for a source already tracked.
func (e *Engine) Step(ev *parsers.Event) (d Decision, ok bool) {
	ok = e.StepInto(ev, &d)
	return d, ok
}

// StepInto is Step writing the decision, if any, to d: for a caller that
// steps many events, a Decision (about 200 bytes) is not copied out for
// every one. d is written only when StepInto returns true.
func (e *Engine) StepInto(ev *parsers.Event, d *Decision) bool {
	ok := e.step(ev, d)
	e.sweep()
	return ok
}

func (e *Engine) step(ev *parsers.Event, d *Decision) bool {
	e.stats.Events++
	t := ev.Time.UnixNano()
	tg := e.clock(t)

	if ev.Prefix != "" && e.accepted(ev.Prefix) {
		e.stats.Accepted++
		return false
	}
	matched := e.match(ev)
	if matched != 0 {
		if matched != e.runMask {
			e.flushRun()
			e.runMask = matched
		}
		e.runN++
	}
	if matched == 0 || !ev.Src.IsValid() {
		e.stats.Unmatched++
		return false
	}
	w, v6 := addrWords(ev.Src)
	f := b2i(v6)
	kw := w.mask(e.keyBits[f], v6)
	// Either hold ends the event: the wide prefix first, since a banned
	// one holds every key inside it.
	ww, aggOn := e.agg.wide(w, v6)
	if aggOn && e.held(ww, v6, e.agg.bits[f], tg) || e.held(kw, v6, e.keyBits[f], tg) {
		e.stats.WhileBanned++
		return false
	}

	slot := e.track(kw, v6)
	src := e.slots.at(slot)
	for m := matched; m != 0; m &= m - 1 {
		i := bits.TrailingZeros64(m)
		r, p := &e.rules[i], &e.trs[i]
		at := e.trackerAt(src, slot, i)
		j := *at
		if j < 0 {
			j = p.get()
			*at = j
		}
		if !p.observe(j, r, ev, t) {
			continue
		}
		key := netip.PrefixFrom(kw.addr(v6), e.keyBits[f])
		e.decide(r, p.recs.head(j), ev, key, tg, d)
		if d.Action.Drops() {
			for i := range e.rules {
				if j := *e.trackerAt(src, slot, i); j >= 0 {
					e.trs[i].recs.head(j).reset()
				}
			}
		} else {
			p.recs.head(j).reset()
		}
		e.decided(d, tg)
		return true
	}
	if aggOn && e.aggregate(ww, v6, ev, kw, t, tg, d) {
		e.decided(d, tg)
		e.stats.Aggregates++
		return true
	}
	return false
}

// flushRun adds the run of events matched by the same rules to the rules'
// counts.
func (e *Engine) flushRun() {
	for m := e.runMask; m != 0; m &= m - 1 {
		e.stats.RuleEvents[bits.TrailingZeros64(m)] += e.runN
	}
	e.runN = 0
}

// decided counts a decision and remembers its key while its time is a
// candidate jump (see ClockSkew).
func (e *Engine) decided(d *Decision, tg int64) {
	e.stats.Decisions[d.Action]++
	if e.pending != 0 && tg == e.pending {
		e.pendingKey = d.Key
	}
}

// held reports whether the prefix w/bits of the family is banned (or
// throttled) at engine time tg, or pardoned after it.
func (e *Engine) held(w words, v6 bool, bits int, tg int64) bool {
	off := e.offences.lookup(w, v6, bits)
	return off != nil && (tg < off.bannedUntil || tg <= off.pardonedAt)
}

// Held reports whether the engine holds addr's key (or its wide prefix)
// banned or throttled at t: what the daemon asks of a kernel strike that
// gave no decision. Allocation-free.
func (e *Engine) Held(addr netip.Addr, t time.Time) bool {
	if !addr.IsValid() {
		return false
	}
	tg := e.clockAt(t.UnixNano())
	w, v6 := addrWords(addr)
	f := b2i(v6)
	if e.held(w.mask(e.keyBits[f], v6), v6, e.keyBits[f], tg) || e.held(w, v6, addr.BitLen(), tg) {
		return true
	}
	ww, ok := e.agg.wide(w, v6)
	return ok && e.held(ww, v6, e.agg.bits[f], tg)
}

// clockAt is clock without its effects: the time an event at t would get.
func (e *Engine) clockAt(t int64) int64 {
	if e.now != 0 && t < e.now-int64(ClockSkew) {
		return e.now
	}
	return t
}

// accepted reports whether prefix matches an accept pattern.
func (e *Engine) accepted(prefix string) bool {
	if v, ok := e.acceptedCache.get(prefix); ok {
		return v != 0
	}
	var v uint64
	for i := range e.accept {
		if e.accept[i].match(prefix) {
			v = 1
			break
		}
	}
	e.acceptedCache.put(prefix, v)
	return v != 0
}

// decide turns a crossed threshold into a decision at engine time tg,
// written to d.
func (e *Engine) decide(r *Rule, tr *tracker, ev *parsers.Event, key netip.Prefix, tg int64, d *Decision) {
	*d = Decision{
		Time:         ev.Time,
		Key:          key,
		Source:       ev.Src,
		Rule:         r.Name,
		FirstSeen:    time.Unix(0, tr.first).In(ev.Time.Location()),
		LastSeen:     ev.Time,
		Hits:         tr.hits,
		Flags:        tr.flags,
		Proto:        ev.Proto,
		SinglePacket: r.Tripwire(),
	}
	d.NPorts = uint8(copy(d.Ports[:], tr.listed[:tr.nlisted]))
	d.DistinctPorts = uint32(d.NPorts)
	if r.DistinctPorts > 1 {
		d.DistinctPorts = uint32(tr.nports)
	}
	if e.ignored(ev.Src) {
		d.Offence = e.offenceCount(key, tg) + 1
		d.Action = Ignored
		return
	}
	// A key that would cover an ignored address shrinks to the single
	// source address: banning a /64 must not drop a host we never ban.
	if e.overlapsIgnore(key) {
		d.Key = netip.PrefixFrom(ev.Src, ev.Src.BitLen())
	}
	v := &e.valve
	if d.SinglePacket && len(e.single.ring) > 0 {
		v = &e.single
	}
	e.conclude(d, r.Ban, v, tg)
}

// offenceCount is the number of key's offences still remembered at tg.
func (e *Engine) offenceCount(key netip.Prefix, tg int64) uint32 {
	off := e.offences.get(key)
	if off == nil || off.count > 0 && tg-off.lastBan > int64(e.bans.ForgetAfter) {
		return 0
	}
	return off.count
}

// conclude sets the decision's action and ban through valve v, records
// the offence, and falls back to a short drop when v is closed.
func (e *Engine) conclude(d *Decision, base time.Duration, v *valve, tg int64) {
	d.Offence = e.offenceCount(d.Key, tg) + 1
	if v.open(tg) {
		d.Action = Ban
		d.Ban = e.banFor(base, d.Offence, d.SinglePacket)
		off := e.offences.put(d.Key)
		off.count = d.Offence
		off.lastBan = tg
		off.bannedUntil = max(off.bannedUntil, tg+int64(d.Ban))
		v.push(min(tg, e.now))
		return
	}
	if e.bans.OverValveBan <= 0 || !e.over.open(tg) {
		d.Action = RateLimited
		return
	}
	// Beyond the valve: a short drop, no offence. The key's events are
	// not evidence while it lasts, as for a ban.
	d.Action = Throttled
	d.Ban = min(e.bans.OverValveBan, e.banFor(base, d.Offence, d.SinglePacket))
	off := e.offences.put(d.Key)
	off.bannedUntil = max(off.bannedUntil, tg+int64(d.Ban))
	e.over.push(min(tg, e.now))
}

func (e *Engine) ignored(a netip.Addr) bool {
	for _, p := range e.ignore {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (e *Engine) overlapsIgnore(key netip.Prefix) bool {
	for _, p := range e.ignore {
		if p.Overlaps(key) {
			return true
		}
	}
	return false
}

// tracked is the number of sources tracked.
func (e *Engine) tracked() int { return e.index[0].n + e.index[1].n }

// track returns the slot of the key k of the family, creating it
// (evicting the stalest source when full) and moving it to the head of the
// LRU chain.
func (e *Engine) track(k words, v6 bool) int32 {
	f := b2i(v6)
	i := e.index[f].get(k, &e.slots)
	if i != none {
		e.unlink(i)
	} else {
		if e.tracked() >= e.max {
			e.stats.Evicted++
			e.drop(e.tail)
		}
		if n := len(e.free); n > 0 {
			i = e.free[n-1]
			e.free = e.free[:n-1]
		} else {
			i = e.slots.add()
			e.atMore.add()
			s := e.slots.at(i)
			for r := range max(len(e.rules), inlineRules) {
				*e.trackerAt(s, i, r) = -1
			}
		}
		s := e.slots.at(i)
		s.key, s.v6 = k, v6
		e.index[f].put(k, i)
	}
	s := e.slots.at(i)
	s.seen = e.now
	s.prev, s.next = none, e.head
	if e.head != none {
		e.slots.at(e.head).prev = i
	}
	e.head = i
	if e.tail == none {
		e.tail = i
	}
	return i
}

func (e *Engine) unlink(i int32) {
	s := e.slots.at(i)
	if s.prev != none {
		e.slots.at(s.prev).next = s.next
	} else {
		e.head = s.next
	}
	if s.next != none {
		e.slots.at(s.next).prev = s.prev
	} else {
		e.tail = s.prev
	}
	s.prev, s.next = none, none
}

// drop forgets the source in slot i, giving its trackers back.
func (e *Engine) drop(i int32) {
	e.unlink(i)
	s := e.slots.at(i)
	e.index[b2i(s.v6)].delete(s.key, i)
	for r := range e.rules {
		if at := e.trackerAt(s, i, r); *at >= 0 {
			e.trs[r].put(*at)
			*at = -1
		}
	}
	e.free = append(e.free, i)
}

// sweep expires a bounded amount of idle state per step, so its cost is
// spread over events instead of stalling one.
func (e *Engine) sweep() {
	for k := 0; k < 2 && e.tail != none && e.slots.at(e.tail).seen < e.now-e.maxWindow; k++ {
		e.drop(e.tail)
		e.stats.Expired++
	}
	if e.now < e.nextSweep {
		return
	}
	e.nextSweep = e.now + int64(time.Minute)
	now, forget := e.now, int64(e.bans.ForgetAfter)
	e.offences.deleteFunc(func(off *offence) bool {
		return off.bannedUntil < now && off.pardonedAt < now-e.maxWindow && now-off.lastBan > forget
	})
}
