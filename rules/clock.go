package rules

import (
	"net/netip"
	"time"
)

// ClockSkew bounds how far event times may disagree with the engine's
// clock before the engine doubts them. The engine's clock is the latest
// event time, but one event stamped far ahead (a line from a host whose
// clock is off, in a shared syslog; a mistyped year) must not make every
// source look idle or every offence forgotten, and events stamped behind
// it (a wall clock stepped back) must not either:
//
//   - An event more than ClockSkew ahead is a candidate jump: it is decided
//     at its own time, but the clock waits for the next event. If that one
//     is not back behind the candidate by more than ClockSkew, time really
//     moved (a quiet hour) and the clock takes it; if it is, the candidate
//     was an outlier: the clock stays, and the candidate's offence, if it
//     made one, is moved back to the clock's time.
//   - An event more than ClockSkew behind the clock is decided at the
//     clock's time for what spans sources (ban ends, the valves, forgetting)
//     and never moves the clock back.
//
// Windows use each source's own times (tracker.observe), so a source whose
// clock is off by a constant is judged correctly, and idle expiry uses the
// engine's clock at each source's last event. Outliers and each run of
// events behind are counted in Stats.ClockJumps.
const ClockSkew = time.Minute

// clock returns the engine's time for an event stamped t, moving the
// engine's clock as ClockSkew describes.
func (e *Engine) clock(t int64) int64 {
	skew := int64(ClockSkew)
	if e.now == 0 {
		e.now = t
		return t
	}
	if e.pending != 0 {
		if t >= e.pending-skew {
			e.now = max(e.now, e.pending)
		} else {
			e.undoOutlier()
		}
		e.pending, e.pendingKey = 0, netip.Prefix{}
	}
	switch {
	case t > e.now+skew:
		e.pending = t
		return t
	case t < e.now-skew:
		if !e.behind {
			e.behind = true
			e.stats.ClockJumps++
		}
		return e.now
	}
	e.behind = false
	e.now = max(e.now, t)
	return t
}

// undoOutlier moves the offence a candidate jump made back to the clock's
// time, as if the outlier had been stamped with it.
func (e *Engine) undoOutlier() {
	e.stats.ClockJumps++
	if !e.pendingKey.IsValid() {
		return
	}
	off := e.offences.get(e.pendingKey)
	if off == nil {
		return
	}
	delta := e.pending - e.now
	off.lastBan -= delta
	off.bannedUntil -= delta
}
