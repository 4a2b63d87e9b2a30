package rules

import (
	"math/bits"
	"net/netip"
	"time"
)

// Pardon forgets the evidence against every key inside or around p, as of
// at: the key is no longer considered banned, its current offence does not
// count towards escalation, and events up to at are not held against it, so
// it is not banned again by the evidence that was pardoned. It returns the
// number of keys affected.
func (e *Engine) Pardon(p netip.Prefix, at time.Time) int {
	t := at.UnixNano()
	p = p.Masked()
	n := 0
	for k, off := range e.offences.all {
		// A pardon forgets what came before it, not a later ban.
		if !k.Overlaps(p) || off.lastBan > t {
			continue
		}
		if off.bannedUntil > t && off.count > 0 {
			off.count--
		}
		off.bannedUntil = 0
		off.pardonedAt = t
		n++
	}
	// The tracked sources inside or around p, dropped once the walk of
	// the index is over.
	var drop []int32
	for f := range e.index {
		for i := range e.index[f].all {
			if s := e.slots.at(i); netip.PrefixFrom(s.key.addr(s.v6), e.keyBits[f]).Overlaps(p) {
				drop = append(drop, i)
			}
		}
	}
	for _, i := range drop {
		s := e.slots.at(i)
		k := netip.PrefixFrom(s.key.addr(s.v6), e.keyBits[b2i(s.v6)])
		e.drop(i)
		if e.offences.get(k) == nil {
			if off := e.offences.put(k); off != nil {
				off.pardonedAt = t
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
		if e.offences.get(key) == nil {
			if off := e.offences.put(key); off != nil {
				off.pardonedAt = t
				n = 1
			}
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
	out := make([]Offence, 0, e.offences.len())
	for k, o := range e.offences.all {
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
	cur := e.offences.put(o.Key.Masked())
	if cur == nil {
		return // an invalid key: nothing to hold
	}
	cur.count = max(cur.count, o.Count)
	cur.lastBan = max(cur.lastBan, unixNano(o.LastBan))
	cur.bannedUntil = max(cur.bannedUntil, unixNano(o.BannedUntil))
	cur.pardonedAt = max(cur.pardonedAt, unixNano(o.PardonedAt))
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.RuleEvents = append([]uint64(nil), e.stats.RuleEvents...)
	for m := e.runMask; m != 0; m &= m - 1 {
		s.RuleEvents[bits.TrailingZeros64(m)] += e.runN
	}
	s.Tracked = e.tracked()
	s.Offenders = e.offences.len()
	return s
}

// Banned returns how many keys the engine holds banned at t: the bans it
// decided or was told of (Restore), not yet over or pardoned. It walks
// every remembered offence: for health lines and metrics, not per event.
func (e *Engine) Banned(t time.Time) int {
	now, n := t.UnixNano(), 0
	for _, o := range e.offences.all {
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
	e.agg.reset()
}

// ClockJumps returns Stats().ClockJumps without copying the stats.
func (e *Engine) ClockJumps() uint64 { return e.stats.ClockJumps }
