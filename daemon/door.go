package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/internal/metrics"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// banAction puts ban decisions into the table and keeps the figures the
// health line and metrics report: bans, failures, reaction time.
type banAction struct{ d *Daemon }

func (a *banAction) Act(dec *rules.Decision) error {
	if !dec.Action.Drops() {
		return nil
	}
	d := a.d
	d.stateDirty = true
	if err := d.deps.Table.Ban(dec.Key, dec.Ban); err != nil {
		d.c.banErrors++
		// The engine holds the ban: the keeper puts it in once the table
		// takes it again (a flush may be under way).
		d.verifySoon.Store(true)
		return fmt.Errorf("ban %s (rule %s): %w", dec.Key, dec.Rule, err)
	}
	d.c.bans++
	// Decision.Time is the kernel's timestamp of the packet that crossed
	// the threshold.
	lat := time.Since(dec.Time)
	d.c.reaction.add(lat)
	if d.metrics != nil {
		d.metrics.ObserveReaction(lat)
	}
	return nil
}

// logAction writes one line per ban and per ignored source. Bans are
// bounded by the valves and ignored sources by threshold resets; what the
// valve held back (throttled, rate-limited: a decoy scan makes thousands)
// is counted into one summary line per interval instead (held).
type logAction struct {
	log  *slog.Logger
	held *scanState
}

func (a logAction) Act(dec *rules.Decision) error {
	if dec.Action == rules.Throttled || dec.Action == rules.RateLimited {
		if a.held != nil {
			a.held.noteValve(dec)
			return nil
		}
	}
	level := slog.LevelInfo
	if dec.Action != rules.Ban {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("action", dec.Action.String()),
		slog.String("source", dec.Key.String()),
		slog.String("rule", dec.Rule),
		slog.Int("hits", int(dec.Hits)),
		slog.Int("distinct_ports", int(dec.DistinctPorts)),
		slog.String("ports", string(actions.AppendPorts(nil, dec))),
		slog.Int("offence", int(dec.Offence)),
	}
	if dec.Action.Drops() {
		attrs = append(attrs, slog.String("ban", actions.FormatDuration(dec.Ban)))
	}
	if dec.SinglePacket && dec.Action == rules.Ban {
		attrs = append(attrs, slog.Bool("single_packet", true))
	}
	if dec.Key.Bits() != dec.Source.BitLen() {
		attrs = append(attrs, slog.String("address", dec.Source.String()))
	}
	a.log.LogAttrs(context.Background(), level, "decision", attrs...)
	return nil
}

// metricsAction counts decisions by action and rule.
type metricsAction struct{ m *metrics.Metrics }

func (a metricsAction) Act(dec *rules.Decision) error {
	a.m.Decision(dec.Action.String(), dec.Rule)
	return nil
}
