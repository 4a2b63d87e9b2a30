package daemon

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// Periods and bounds of what the daemon says about scans it holds back.
const (
	// summaryEvery paces the valve's summary line and the unconfirmed
	// strikes' summary: one line each per interval at most, never a line
	// per source (a decoy scan makes thousands).
	summaryEvery = 10 * time.Second
	// unconfirmedLines is how many unconfirmed strikes per interval get a
	// line of their own; the rest are counted in the summary.
	unconfirmedLines = 10
	// summarySample is how many keys a summary names.
	summarySample = 5
	// fullLogEvery and jumpLogEvery rate-limit the warnings about full
	// first-strike sets and event times that jump.
	fullLogEvery = time.Minute
	jumpLogEvery = 10 * time.Minute
)

// strikeTable is what the daemon asks of a table that has first strike
// (*actions.Table); a table without these methods has none to watch.
type strikeTable interface {
	StrikeFull() (map[string]uint64, error)
	EvictFull(sets []string) ([]string, error)
}

// scanState is the daemon's bookkeeping of what it tells about scans held
// back: the valve's decisions, kernel strikes it did not confirm and clock
// jumps. Owned by Run's goroutine.
type scanState struct {
	held        heldSummary
	unconfirmed heldSummary

	jumps    uint64
	lastJump time.Time
	lastSum  time.Time
}

// heldSummary counts decisions (or strikes) of one kind over an interval.
type heldSummary struct {
	total  uint64 // since start
	n      int    // this interval
	byKind map[string]int
	sample []netip.Prefix
	logged int // lines of their own this interval
}

func (h *heldSummary) add(kind string, key netip.Prefix) {
	h.total++
	h.n++
	if h.byKind == nil {
		h.byKind = map[string]int{}
	}
	h.byKind[kind]++
	if len(h.sample) < summarySample && !slices.Contains(h.sample, key) {
		h.sample = append(h.sample, key)
	}
}

func (h *heldSummary) reset() {
	h.n, h.logged = 0, 0
	clear(h.byKind)
	h.sample = h.sample[:0]
}

func (h *heldSummary) attrs() []any {
	kinds := make([]string, 0, len(h.byKind))
	for k, n := range h.byKind {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	slices.Sort(kinds)
	sample := make([]string, len(h.sample))
	for i, p := range h.sample {
		sample[i] = p.String()
	}
	return []any{"count", h.n, "by", strings.Join(kinds, ","), "sources", strings.Join(sample, ","), "total", h.total}
}

// noteValve counts a decision the valve held back (throttled, rate
// limited) for the interval's summary, instead of a line of its own.
func (s *scanState) noteValve(dec *rules.Decision) {
	s.held.add(dec.Action.String()+"/"+dec.Rule, dec.Key)
}

// noteStrike checks what the engine made of a kernel strike (an event
// with first strike's log prefix): a ban or a short drop confirms it, and
// so does a key the engine already holds. Anything else means the kernel
// struck what the rules would not: each is logged (the first
// unconfirmedLines of an interval on a line of their own, the others in
// the summary) and counted. A strike of an ignored source is lifted by
// step.
func (d *Daemon) noteStrike(ev *parsers.Event, dec *rules.Decision, ok bool) {
	if ev.Prefix != d.strikePfx || d.deps.DryRun {
		return
	}
	switch {
	case ok && (dec.Action.Drops() || dec.Action == rules.Ignored):
		return
	case !ok && d.engine.Held(ev.Src, ev.Time):
		return
	}
	key := d.engine.Key(ev.Src)
	why := "below the rules' thresholds"
	if ok {
		key, why = dec.Key, dec.Action.String()
	}
	u := &d.scan.unconfirmed
	u.add(why, key)
	if u.logged < unconfirmedLines {
		u.logged++
		d.log.Warn("kernel strike not confirmed by the rules", "source", key, "address", ev.Src.String(),
			"why", why, "proto", parsers.ProtoName(ev.Proto), "port", ev.DstPort, "flags", ev.Flags.String())
	}
}

// everySecond runs the daemon's once-a-second checks of scans: the
// summaries, the clock.
func (d *Daemon) everySecond(now time.Time) {
	st := &d.scan
	if now.Sub(st.lastSum) >= summaryEvery {
		st.lastSum = now
		if st.held.n > 0 {
			d.log.Warn("valve: sources over max_new_per_minute were dropped briefly or only reported", st.held.attrs()...)
			st.held.reset()
		}
		if u := &st.unconfirmed; u.n > u.logged {
			d.log.Warn("kernel strikes not confirmed by the rules", u.attrs()...)
		}
		st.unconfirmed.reset()
	}
	if j := d.engine.ClockJumps(); j > st.jumps {
		if st.lastJump.IsZero() || now.Sub(st.lastJump) >= jumpLogEvery {
			d.log.Warn("event times jumped away from the engine's clock; windows use each source's own times",
				"events", j-st.jumps, "total", j, "skew", rules.ClockSkew.String())
			st.lastJump = now
			st.jumps = j
		}
	}
}

// fullState is what the table keeper finds of first strike's full sets.
// The keeper writes it under Daemon.tmu, and the metrics read it there.
type fullState struct {
	seen      map[string]uint64 // full rules' counters at the last check
	now       map[string]bool   // sets found full since the last metrics write
	evictions uint64
	lastLog   time.Time
}

// checkStrikeSets reads the counters of first strike's full rules and
// empties the sets that filled since the last check, so that a flood of
// forged sources does not hold them full for a window. The table keeper
// runs it every second: the reads go to the kernel, which must not hold up
// the loop's decisions.
func (d *Daemon) checkStrikeSets(now time.Time) {
	tbl, ok := d.deps.Table.(strikeTable)
	fs := d.appliedSpec().FirstStrike
	if !ok || fs == nil {
		return
	}
	full, err := tbl.StrikeFull()
	if err != nil {
		return // the tamper check reports a table that cannot be read
	}
	d.tmu.Lock()
	st := &d.full
	var grew []string
	if st.now == nil {
		st.now = map[string]bool{}
	}
	for set, n := range full {
		if n > st.seen[set] {
			grew = append(grew, set)
			st.now[set] = true
		}
	}
	st.seen = full
	d.tmu.Unlock()
	if len(grew) == 0 {
		return
	}
	slices.Sort(grew)
	emptied, err := tbl.EvictFull(grew)
	if err != nil {
		d.log.Error("cannot empty full first-strike sets", "sets", strings.Join(grew, ","), "err", err)
		return
	}
	d.tmu.Lock()
	st.evictions++
	logNow := now.Sub(st.lastLog) >= fullLogEvery
	if logNow {
		st.lastLog = now
	}
	d.tmu.Unlock()
	if logNow {
		d.log.Warn("first strike: counting sets were full (a flood of forged sources?); probes it could not count were dropped unanswered, and the sets emptied",
			"full", strings.Join(grew, ","), "emptied", strings.Join(emptied, ","), "set_size", fs.SetSize)
	}
}
