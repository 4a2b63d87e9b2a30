package daemon

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/metrics"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// healthLine logs the one-line summary. Every figure comes from the
// daemon's own state: nothing here reads the kernel's sets, which can hold
// millions of elements and would stall the loop.
func (d *Daemon) healthLine(elapsed time.Duration, events uint64) {
	st := d.engine.Stats()
	var overruns, malformed, failures uint64
	reasons := map[string]uint64{}
	for _, in := range d.inputs {
		s := in.stats()
		overruns += s.Overruns
		failures += s.Failures
		for r, n := range s.Malformed {
			malformed += n
			reasons[r] += n
		}
	}
	attrs := []any{
		"events_per_s", fmt.Sprintf("%.1f", float64(events)/max(elapsed.Seconds(), 1e-3)),
		"events", d.c.events, "overruns", overruns, "malformed", malformed,
		"decisions_ban", st.Decisions[rules.Ban], "ignored", st.Decisions[rules.Ignored],
		"rate_limited", st.Decisions[rules.RateLimited], "throttled", st.Decisions[rules.Throttled], "tracked", st.Tracked,
	}
	if malformed > 0 {
		// By reason, as replay's summary says it: a flood of forged
		// multicast sources is "reserved-source", not a mystery.
		var parts []string
		for r, n := range reasons {
			parts = append(parts, fmt.Sprintf("%s=%d", r, n))
		}
		slices.Sort(parts)
		attrs = append(attrs, "malformed_by", strings.Join(parts, ","))
	}
	if n := d.scan.unconfirmed.total; n > 0 {
		attrs = append(attrs, "strikes_unconfirmed", n)
	}
	if st.ClockJumps > 0 {
		attrs = append(attrs, "clock_jumps", st.ClockJumps)
	}
	if failures > 0 {
		attrs = append(attrs, "input_failures", failures)
	}
	if !d.deps.DryRun {
		attrs = append(attrs, "bans_active", d.engine.Banned(time.Now()), "ban_errors", d.c.banErrors)
		if p50, p99, ok := d.c.reaction.percentiles(); ok {
			attrs = append(attrs, "reaction_p50", p50.String(), "reaction_p99", p99.String())
		}
	}
	attrs = append(attrs, d.fleetHealth()...)
	d.log.Info("health", attrs...)
}

// writeMetrics writes the textfile from the daemon's own counters.
func (d *Daemon) writeMetrics() {
	if d.metrics == nil {
		return
	}
	st := d.engine.Stats()
	snap := metrics.Snapshot{RuleEvents: map[string]uint64{}, Tracked: st.Tracked}
	for i, r := range d.engine.Rules() {
		snap.RuleEvents[r.Name] = st.RuleEvents[i]
	}
	for _, in := range d.inputs {
		snap.Inputs = append(snap.Inputs, in.stats())
	}
	if !d.deps.DryRun {
		snap.BansActive = d.engine.Banned(time.Now())
	}
	snap.Fleet = d.fleetMetrics()
	// Sets full at any check since the last write show as full.
	d.tmu.Lock()
	snap.StrikeFull, snap.StrikeFullNow, snap.StrikeEvictions = maps.Clone(d.full.seen), maps.Clone(d.full.now), d.full.evictions
	clear(d.full.now)
	d.tmu.Unlock()
	snap.UnconfirmedStrikes, snap.ClockJumps = d.scan.unconfirmed.total, st.ClockJumps
	d.metrics.Update(snap)
	if err := d.metrics.WriteTextfile(d.cfg.Metrics.Textfile); err != nil {
		d.log.Warn("cannot write metrics", "path", d.cfg.Metrics.Textfile, "err", err)
	}
}

// latencies keeps the last reaction times (packet logged -> ban in the
// kernel) for the health line's percentiles.
type latencies struct {
	ring [1024]time.Duration
	n    int
}

func (l *latencies) add(d time.Duration) {
	l.ring[l.n%len(l.ring)] = d
	l.n++
}

func (l *latencies) percentiles() (p50, p99 time.Duration, ok bool) {
	n := min(l.n, len(l.ring))
	if n == 0 {
		return 0, 0, false
	}
	s := slices.Clone(l.ring[:n])
	slices.Sort(s)
	return s[n/2], s[(n*99)/100], true
}
