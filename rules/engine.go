package rules

import (
	"fmt"
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
type Engine struct {
	rules  []Rule
	ignore []netip.Prefix
	accept []acceptPattern
	bans   BanPolicy
	max    int

	// Prefixes come from a few rules, so the last one's verdict is kept.
	lastPrefix   string
	lastAccepted bool

	// Tracked sources live in a slab of slots chained in LRU order (head is
	// the most recent), so eviction and idle expiry are O(1) and a reused
	// slot keeps its buffers: no allocation once the slab is warm.
	slots      []source
	free       []int32
	index      map[netip.Prefix]int32
	head, tail int32
	maxWindow  int64

	offences  map[netip.Prefix]offence
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
	key        netip.Prefix
	prev, next int32
	// seen is the engine's clock at the source's last event: idle expiry
	// is measured on it, not on the source's own times.
	seen int64
	// tr holds trackers only for the rules the source matched, in the
	// order it first did; at[i] is rule i's index in tr, or -1. A reused
	// slot keeps both buffers.
	at []int8
	tr []tracker
}

// tracker returns the source's tracker of rule i, adding it on first use.
func (s *source) tracker(i int) *tracker {
	if j := s.at[i]; j >= 0 {
		return &s.tr[j]
	}
	s.at[i] = int8(len(s.tr))
	if len(s.tr) < cap(s.tr) {
		s.tr = s.tr[:len(s.tr)+1]
		s.tr[len(s.tr)-1].reset()
	} else {
		s.tr = append(s.tr, tracker{})
	}
	return &s.tr[len(s.tr)-1]
}

type offence struct {
	count       uint32
	lastBan     int64
	bannedUntil int64
	pardonedAt  int64
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
	e := &Engine{
		rules:     append([]Rule(nil), cfg.Rules...),
		ignore:    append([]netip.Prefix(nil), cfg.Ignore...),
		accept:    accept,
		bans:      b,
		max:       cfg.MaxTrackedSources,
		index:     make(map[netip.Prefix]int32),
		head:      none,
		tail:      none,
		maxWindow: int64(maxWindow),
		offences:  make(map[netip.Prefix]offence),
		valve:     newValve(b.MaxNewPerMinute),
		single:    newValve(b.SinglePacketPerMinute),
		over:      newValve(b.OverValvePerMinute),
		agg:       newAggregates(cfg.Aggregate, cfg.MaxTrackedSources),
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
func (e *Engine) Step(ev *parsers.Event) (Decision, bool) {
	e.stats.Events++
	t := ev.Time.UnixNano()
	tg := e.clock(t)
	defer e.sweep()

	if ev.Prefix != "" && e.accepted(ev.Prefix) {
		e.stats.Accepted++
		return Decision{}, false
	}
	var matched uint64
	for i := range e.rules {
		if e.rules[i].match(ev) {
			matched |= 1 << i
			e.stats.RuleEvents[i]++
		}
	}
	if matched == 0 || !ev.Src.IsValid() {
		e.stats.Unmatched++
		return Decision{}, false
	}
	key := e.Key(ev.Src)
	if e.held(key, tg) {
		e.stats.WhileBanned++
		return Decision{}, false
	}
	wide, aggOn := e.agg.wide(ev.Src, key)
	if aggOn && e.held(wide, tg) {
		e.stats.WhileBanned++
		return Decision{}, false
	}

	slot := e.track(key)
	src := &e.slots[slot]
	for i := range e.rules {
		if matched&(1<<i) == 0 {
			continue
		}
		r := &e.rules[i]
		tr := src.tracker(i)
		if !tr.observe(r, ev, t) {
			continue
		}
		d := e.decide(r, tr, ev, key, tg)
		if d.Action.Drops() {
			for j := range src.tr {
				src.tr[j].reset()
			}
		} else {
			tr.reset()
		}
		e.decided(&d, tg)
		return d, true
	}
	if aggOn {
		if d, ok := e.aggregate(wide, ev, key, t, tg); ok {
			e.decided(&d, tg)
			e.stats.Aggregates++
			return d, true
		}
	}
	return Decision{}, false
}

// decided counts a decision and remembers its key while its time is a
// candidate jump (see ClockSkew).
func (e *Engine) decided(d *Decision, tg int64) {
	e.stats.Decisions[d.Action]++
	if e.pending != 0 && tg == e.pending {
		e.pendingKey = d.Key
	}
}

// held reports whether key is banned (or throttled) at engine time tg, or
// pardoned after it.
func (e *Engine) held(key netip.Prefix, tg int64) bool {
	off, ok := e.offences[key]
	return ok && (tg < off.bannedUntil || tg <= off.pardonedAt)
}

// Held reports whether the engine holds addr's key (or its wide prefix)
// banned or throttled at t: what the daemon asks of a kernel strike that
// gave no decision. Allocation-free.
func (e *Engine) Held(addr netip.Addr, t time.Time) bool {
	tg := e.clockAt(t.UnixNano())
	key := e.Key(addr)
	if e.held(key, tg) || e.held(netip.PrefixFrom(addr, addr.BitLen()), tg) {
		return true
	}
	wide, ok := e.agg.wide(addr, key)
	return ok && e.held(wide, tg)
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
	if prefix == e.lastPrefix {
		return e.lastAccepted
	}
	ok := false
	for i := range e.accept {
		if e.accept[i].match(prefix) {
			ok = true
			break
		}
	}
	e.lastPrefix, e.lastAccepted = prefix, ok
	return ok
}

func (r *Rule) match(ev *parsers.Event) bool {
	if len(r.Protos) > 0 && !containsByte(r.Protos, ev.Proto) {
		return false
	}
	if r.Flags != 0 && (ev.Proto != parsers.ProtoTCP || Classify(ev.Flags)&r.Flags == 0) {
		return false
	}
	if r.Ports != nil && !r.Ports.Has(ev.DstPort) {
		return false
	}
	// A packet whose transport header was not seen (a later fragment) has
	// no flags or port to select on: port 0 and no flags would make it a
	// NULL probe of port 0.
	if ev.NoL4Header && (r.Flags != 0 || r.Ports != nil) {
		return false
	}
	if len(r.Prefixes) > 0 && !matchAny(r.Prefixes, ev.Prefix) {
		return false
	}
	if len(r.Interfaces) > 0 && !matchAny(r.Interfaces, ev.InIface) {
		return false
	}
	return true
}

func containsByte(s []uint8, b uint8) bool {
	for _, x := range s {
		if x == b {
			return true
		}
	}
	return false
}

func matchAny(ps []Pattern, s string) bool {
	for _, p := range ps {
		if p.Match(s) {
			return true
		}
	}
	return false
}

// decide turns a crossed threshold into a decision at engine time tg.
func (e *Engine) decide(r *Rule, tr *tracker, ev *parsers.Event, key netip.Prefix, tg int64) Decision {
	d := Decision{
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
		d.DistinctPorts = uint32(len(tr.ports.seen))
	}
	if e.ignored(ev.Src) {
		d.Offence = e.offenceCount(key, tg) + 1
		d.Action = Ignored
		return d
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
	e.conclude(&d, r.Ban, v, tg)
	return d
}

// offenceCount is the number of key's offences still remembered at tg.
func (e *Engine) offenceCount(key netip.Prefix, tg int64) uint32 {
	off := e.offences[key]
	if off.count > 0 && tg-off.lastBan > int64(e.bans.ForgetAfter) {
		return 0
	}
	return off.count
}

// conclude sets the decision's action and ban through valve v, records
// the offence, and falls back to a short drop when v is closed.
func (e *Engine) conclude(d *Decision, base time.Duration, v *valve, tg int64) {
	d.Offence = e.offenceCount(d.Key, tg) + 1
	off := e.offences[d.Key]
	if v.open(tg) {
		d.Action = Ban
		d.Ban = e.banFor(base, d.Offence, d.SinglePacket)
		off.count = d.Offence
		off.lastBan = tg
		off.bannedUntil = max(off.bannedUntil, tg+int64(d.Ban))
		e.offences[d.Key] = off
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
	off.bannedUntil = max(off.bannedUntil, tg+int64(d.Ban))
	e.offences[d.Key] = off
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

// track returns the slot of key, creating it (evicting the stalest source
// when full) and moving it to the head of the LRU chain.
func (e *Engine) track(key netip.Prefix) int32 {
	i, ok := e.index[key]
	if ok {
		e.unlink(i)
	} else {
		if len(e.index) >= e.max {
			e.stats.Evicted++
			e.drop(e.tail)
		}
		if n := len(e.free); n > 0 {
			i = e.free[n-1]
			e.free = e.free[:n-1]
		} else {
			// Most sources match a few rules: room for three trackers, grown
			// (once per slot) for more.
			e.slots = append(e.slots, source{at: make([]int8, len(e.rules)), tr: make([]tracker, 0, min(len(e.rules), 3))})
			i = int32(len(e.slots) - 1)
		}
		s := &e.slots[i]
		s.key = key
		for j := range s.at {
			s.at[j] = -1
		}
		s.tr = s.tr[:0]
		e.index[key] = i
	}
	s := &e.slots[i]
	s.seen = e.now
	s.prev, s.next = none, e.head
	if e.head != none {
		e.slots[e.head].prev = i
	}
	e.head = i
	if e.tail == none {
		e.tail = i
	}
	return i
}

func (e *Engine) unlink(i int32) {
	s := &e.slots[i]
	if s.prev != none {
		e.slots[s.prev].next = s.next
	} else {
		e.head = s.next
	}
	if s.next != none {
		e.slots[s.next].prev = s.prev
	} else {
		e.tail = s.prev
	}
	s.prev, s.next = none, none
}

func (e *Engine) drop(i int32) {
	e.unlink(i)
	delete(e.index, e.slots[i].key)
	e.free = append(e.free, i)
}

// sweep expires a bounded amount of idle state per step, so its cost is
// spread over events instead of stalling one.
func (e *Engine) sweep() {
	for k := 0; k < 2 && e.tail != none && e.slots[e.tail].seen < e.now-e.maxWindow; k++ {
		e.drop(e.tail)
		e.stats.Expired++
	}
	if e.now < e.nextSweep {
		return
	}
	e.nextSweep = e.now + int64(time.Minute)
	for k, off := range e.offences {
		if off.bannedUntil < e.now && off.pardonedAt < e.now-e.maxWindow && e.now-off.lastBan > int64(e.bans.ForgetAfter) {
			delete(e.offences, k)
		}
	}
}
