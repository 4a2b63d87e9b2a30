package rules

import "time"

// valve lets at most len(ring) decisions through in any minute of event
// time. The zero valve (no ring) is always open.
type valve struct {
	ring []int64
	head int
	n    int
}

func newValve(perMinute int) valve { return valve{ring: make([]int64, perMinute)} }

// open reports whether a decision at t may pass.
func (v *valve) open(t int64) bool {
	if len(v.ring) == 0 || v.n < len(v.ring) {
		return true
	}
	// Full ring: the oldest of the last len(ring) decisions is at head.
	return v.ring[v.head] <= t-int64(time.Minute)
}

// push records a decision at t.
func (v *valve) push(t int64) {
	if len(v.ring) == 0 {
		return
	}
	v.ring[v.head] = t
	v.head = (v.head + 1) % len(v.ring)
	if v.n < len(v.ring) {
		v.n++
	}
}

// banFor is the ban of a key's offence-th offence under rule r: the rule's
// ban times RepeatFactor for each earlier offence, capped at MaxBan. A
// first offence on single-packet evidence is capped at SinglePacketBan,
// and a later one counts from the rule's ban, as if the short one had
// not been.
func (e *Engine) banFor(base time.Duration, offence uint32, single bool) time.Duration {
	if single && e.bans.SinglePacketBan > 0 {
		if offence <= 1 {
			return min(base, e.bans.SinglePacketBan)
		}
		offence--
	}
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
