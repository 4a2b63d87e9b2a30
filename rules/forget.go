package rules

import (
	"net/netip"
	"slices"
	"time"
)

// ForgetOldest bounds the offence history to max keys: when there are more,
// it forgets the oldest offences (by their last ban or pardon) that are not
// active bans at now, down to max less a sixteenth, so that the sort is not
// repeated for every new offence. Active bans are never forgotten: the
// engine must go on ignoring a banned key's events. It returns how many it
// forgot; with max <= 0 it does nothing. It walks the history only when
// over max: call it as often as offences are saved.
func (e *Engine) ForgetOldest(max int, now time.Time) int {
	if max <= 0 || e.offences.len() <= max {
		return 0
	}
	t := now.UnixNano()
	type aged struct {
		key netip.Prefix
		at  int64
	}
	var old []aged
	for k, o := range e.offences.all {
		if o.bannedUntil <= t {
			old = append(old, aged{k, max64(o.lastBan, o.pardonedAt)})
		}
	}
	n := min(e.offences.len()-(max-max/16), len(old))
	if n <= 0 {
		return 0
	}
	slices.SortFunc(old, func(a, b aged) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return 0
	})
	for _, a := range old[:n] {
		e.offences.delete(a.key)
	}
	return n
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// ActiveBans appends to dst the offences of the keys banned at now (not yet
// over, not pardoned) and returns it: what the kernel's sets must hold.
// It walks every remembered offence.
func (e *Engine) ActiveBans(now time.Time, dst []Offence) []Offence {
	t := now.UnixNano()
	for k, o := range e.offences.all {
		if o.bannedUntil > t {
			dst = append(dst, Offence{Key: k, Count: o.count, LastBan: unixTime(o.lastBan),
				BannedUntil: unixTime(o.bannedUntil), PardonedAt: unixTime(o.pardonedAt)})
		}
	}
	return dst
}
