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
	Decisions [3]uint64
	// Tracked is the number of sources with state now; Evicted were dropped
	// to stay under MaxTrackedSources, Expired for being idle.
	Tracked          int
	Evicted, Expired uint64
	// Offenders is the number of keys with a remembered offence.
	Offenders int
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

	valve             []int64
	valveHead, valveN int
	now               int64
	stats             Stats
}

type source struct {
	key        netip.Prefix
	prev, next int32
	last       int64
	tr         []tracker
}

// tracker is one source's evidence for one rule.
type tracker struct {
	ports    []portSeen // distinct ports in the window, arrival order; cap DistinctPorts
	ring     []int64    // times of the last Hits packets; cap Hits
	ringHead int
	// The evidence run: packets with no gap longer than the window.
	first, last int64
	hits        uint32
	flags       parsers.TCPFlags
	listed      [MaxListedPorts]uint16
	nlisted     uint8
}

type portSeen struct {
	t    int64
	port uint16
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
	case b.MaxNewPerMinute < 0:
		return nil, fmt.Errorf("rules: max_new_per_minute %d is negative", b.MaxNewPerMinute)
	case cfg.MaxTrackedSources < 1:
		return nil, fmt.Errorf("rules: max_tracked_sources must be at least 1")
	}
	accept, err := compileAccept(cfg.AcceptPrefixes)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
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
		valve:     make([]int64, b.MaxNewPerMinute),
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
// order, whose threshold the event crosses. Allocation-free for a source
// already tracked.
func (e *Engine) Step(ev *parsers.Event) (Decision, bool) {
	e.stats.Events++
	t := ev.Time.UnixNano()
	if t > e.now {
		e.now = t
	}
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
	if off, ok := e.offences[key]; ok && (t < off.bannedUntil || t <= off.pardonedAt) {
		e.stats.WhileBanned++
		return Decision{}, false
	}

	slot := e.track(key, t)
	src := &e.slots[slot]
	for i := range e.rules {
		if matched&(1<<i) == 0 {
			continue
		}
		r := &e.rules[i]
		tr := &src.tr[i]
		if !tr.observe(r, ev, t) {
			continue
		}
		d := e.decide(r, tr, ev, key, t)
		if d.Action == Ban {
			for j := range src.tr {
				src.tr[j].reset()
			}
		} else {
			tr.reset()
		}
		e.stats.Decisions[d.Action]++
		return d, true
	}
	return Decision{}, false
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

// observe adds one matching packet to the evidence and reports whether the
// rule's threshold is now reached.
func (tr *tracker) observe(r *Rule, ev *parsers.Event, t int64) bool {
	within := int64(r.Within)
	if tr.hits == 0 || t-tr.last > within {
		tr.reset()
		tr.first = t
	}
	tr.hits++
	tr.last = t
	tr.flags |= ev.Flags
	// Without a transport header the port is unknown, not 0: it counts
	// as a packet, not as a distinct port.
	known := !ev.NoL4Header
	if known && int(tr.nlisted) < len(tr.listed) && !containsPort(tr.listed[:tr.nlisted], ev.DstPort) {
		tr.listed[tr.nlisted] = ev.DstPort
		tr.nlisted++
	}
	if r.Tripwire() {
		return true
	}
	cutoff := t - within
	portsOK := true
	if r.DistinctPorts > 1 {
		if tr.ports == nil {
			tr.ports = make([]portSeen, 0, r.DistinctPorts)
		}
		kept := tr.ports[:0]
		found := false
		for _, p := range tr.ports {
			if p.t < cutoff {
				continue
			}
			if known && p.port == ev.DstPort {
				p.t = t
				found = true
			}
			kept = append(kept, p)
		}
		tr.ports = kept
		// At capacity the threshold is already reached, so a further port
		// adds nothing the decision needs.
		if known && !found && len(tr.ports) < cap(tr.ports) {
			tr.ports = append(tr.ports, portSeen{t: t, port: ev.DstPort})
		}
		portsOK = len(tr.ports) >= r.DistinctPorts
	}
	hitsOK := true
	if r.Hits > 1 {
		if tr.ring == nil {
			tr.ring = make([]int64, 0, r.Hits)
		}
		if len(tr.ring) < cap(tr.ring) {
			tr.ring = append(tr.ring, t)
		} else {
			tr.ring[tr.ringHead] = t
			tr.ringHead = (tr.ringHead + 1) % len(tr.ring)
		}
		// The ring holds the last Hits packet times; the oldest sits at
		// ringHead once the ring is full.
		hitsOK = len(tr.ring) == r.Hits && tr.ring[tr.ringHead%len(tr.ring)] >= cutoff
	}
	return portsOK && hitsOK
}

func containsPort(ps []uint16, p uint16) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

func (tr *tracker) reset() {
	tr.ports = tr.ports[:0]
	tr.ring = tr.ring[:0]
	tr.ringHead = 0
	tr.hits = 0
	tr.flags = 0
	tr.nlisted = 0
}

func (e *Engine) decide(r *Rule, tr *tracker, ev *parsers.Event, key netip.Prefix, t int64) Decision {
	d := Decision{
		Time:      ev.Time,
		Key:       key,
		Source:    ev.Src,
		Rule:      r.Name,
		FirstSeen: time.Unix(0, tr.first).In(ev.Time.Location()),
		LastSeen:  ev.Time,
		Hits:      tr.hits,
		Flags:     tr.flags,
		Proto:     ev.Proto,
	}
	d.NPorts = uint8(copy(d.Ports[:], tr.listed[:tr.nlisted]))
	d.DistinctPorts = uint32(d.NPorts)
	if r.DistinctPorts > 1 {
		d.DistinctPorts = uint32(len(tr.ports))
	}

	off := e.offences[key]
	if off.count > 0 && t-off.lastBan > int64(e.bans.ForgetAfter) {
		off.count = 0
	}
	d.Offence = off.count + 1

	if e.ignored(ev.Src) {
		d.Action = Ignored
		return d
	}
	// A key that would cover an ignored address shrinks to the single
	// source address: banning a /64 must not drop a host we never ban.
	if e.overlapsIgnore(key) {
		single := netip.PrefixFrom(ev.Src, ev.Src.BitLen())
		d.Key = single
		key = single
		off = e.offences[key]
		if off.count > 0 && t-off.lastBan > int64(e.bans.ForgetAfter) {
			off.count = 0
		}
		d.Offence = off.count + 1
	}
	if !e.valveOpen(t) {
		d.Action = RateLimited
		return d
	}
	d.Action = Ban
	d.Ban = e.banFor(r.Ban, d.Offence)
	off.count = d.Offence
	off.lastBan = t
	off.bannedUntil = t + int64(d.Ban)
	e.offences[key] = off
	e.valvePush(t)
	return d
}

func (e *Engine) banFor(base time.Duration, offence uint32) time.Duration {
	d := float64(base)
	limit := float64(e.bans.MaxBan)
	for i := uint32(1); i < offence && d < limit; i++ {
		d *= e.bans.RepeatFactor
	}
	if e.bans.MaxBan > 0 && d > limit {
		d = limit
	}
	return time.Duration(d)
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

func (e *Engine) valveOpen(t int64) bool {
	n := len(e.valve)
	if n == 0 {
		return true
	}
	if e.valveN < n {
		return true
	}
	// Full ring: the oldest of the last n bans sits at valveHead.
	return e.valve[e.valveHead] <= t-int64(time.Minute)
}

func (e *Engine) valvePush(t int64) {
	n := len(e.valve)
	if n == 0 {
		return
	}
	e.valve[e.valveHead] = t
	e.valveHead = (e.valveHead + 1) % n
	if e.valveN < n {
		e.valveN++
	}
}

// track returns the slot of key, creating it (evicting the stalest source
// when full) and moving it to the head of the LRU chain.
func (e *Engine) track(key netip.Prefix, t int64) int32 {
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
			e.slots = append(e.slots, source{tr: make([]tracker, len(e.rules))})
			i = int32(len(e.slots) - 1)
		}
		s := &e.slots[i]
		s.key = key
		for j := range s.tr {
			s.tr[j].reset()
		}
		e.index[key] = i
	}
	s := &e.slots[i]
	s.last = t
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
	for k := 0; k < 2 && e.tail != none && e.slots[e.tail].last < e.now-e.maxWindow; k++ {
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

// Pardon forgets the evidence against every key inside or around p, as of
// at: the key is no longer considered banned, its current offence does not
// count towards escalation, and events up to at are not held against it, so
// it is not banned again by the evidence that was pardoned. It returns the
// number of keys affected.
func (e *Engine) Pardon(p netip.Prefix, at time.Time) int {
	t := at.UnixNano()
	p = p.Masked()
	n := 0
	for k, off := range e.offences {
		// A pardon forgets what came before it, not a later ban.
		if !k.Overlaps(p) || off.lastBan > t {
			continue
		}
		if off.bannedUntil > t && off.count > 0 {
			off.count--
		}
		off.bannedUntil = 0
		off.pardonedAt = t
		e.offences[k] = off
		n++
	}
	for k, i := range e.index {
		if k.Overlaps(p) {
			e.drop(i)
			if _, ok := e.offences[k]; !ok {
				e.offences[k] = offence{pardonedAt: t}
				n++
			}
		}
	}
	if n == 0 {
		key := p
		if p.Bits() == p.Addr().BitLen() {
			key = e.Key(p.Addr())
		}
		// A key banned again after the pardon keeps that history: the
		// pardon only marks a key the engine knew nothing of.
		if _, ok := e.offences[key]; !ok {
			e.offences[key] = offence{pardonedAt: t}
			n = 1
		}
	}
	return n
}

// Offence is a key's remembered history, as saved across restarts (its
// JSON form is the state file's).
type Offence struct {
	Key netip.Prefix `json:"key"`
	// Count is the number of bans within forget_after.
	Count uint32 `json:"count"`
	// LastBan is when the last ban was decided; BannedUntil when it ends
	// (zero when pardoned); PardonedAt when the key was last pardoned.
	LastBan     time.Time `json:"last_ban,omitzero"`
	BannedUntil time.Time `json:"banned_until,omitzero"`
	PardonedAt  time.Time `json:"pardoned_at,omitzero"`
}

// Offences returns every remembered offence, for saving. It allocates.
func (e *Engine) Offences() []Offence {
	out := make([]Offence, 0, len(e.offences))
	for k, o := range e.offences {
		out = append(out, Offence{Key: k, Count: o.count, LastBan: unixTime(o.lastBan),
			BannedUntil: unixTime(o.bannedUntil), PardonedAt: unixTime(o.pardonedAt)})
	}
	return out
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Restore tells the engine about offences from before it started (saved
// state, or bans read back from the kernel). A record never shortens what
// the engine already knows of the key.
func (e *Engine) Restore(o Offence) {
	k := o.Key.Masked()
	cur := e.offences[k]
	cur.count = max(cur.count, o.Count)
	cur.lastBan = max(cur.lastBan, unixNano(o.LastBan))
	cur.bannedUntil = max(cur.bannedUntil, unixNano(o.BannedUntil))
	cur.pardonedAt = max(cur.pardonedAt, unixNano(o.PardonedAt))
	e.offences[k] = cur
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.RuleEvents = append([]uint64(nil), e.stats.RuleEvents...)
	s.Tracked = len(e.index)
	s.Offenders = len(e.offences)
	return s
}

// Banned returns how many keys the engine holds banned at t: the bans it
// decided or was told of (Restore), not yet over or pardoned. It walks
// every remembered offence: for health lines and metrics, not per event.
func (e *Engine) Banned(t time.Time) int {
	now, n := t.UnixNano(), 0
	for _, o := range e.offences {
		if o.bannedUntil > now {
			n++
		}
	}
	return n
}

// SetIgnore replaces the ignore list, as when the host's own addresses,
// gateways or resolvers are resolved again. Tracked evidence is kept.
func (e *Engine) SetIgnore(ignore []netip.Prefix) {
	e.ignore = append(e.ignore[:0:0], ignore...)
}
