package config

import (
	"fmt"
	"time"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

func (l *loader) bans(raw *rawConfig, cfg *Config) {
	b := rules.DefaultBanPolicy()
	rb := raw.Bans
	if rb.IPv4Prefix.Set {
		if rb.IPv4Prefix.V < 8 || rb.IPv4Prefix.V > 32 {
			l.add(rb.IPv4Prefix.Line, rb.IPv4Prefix.Col, "bans.ipv4_prefix", "%d out of range 8-32", rb.IPv4Prefix.V)
		}
		b.IPv4Prefix = rb.IPv4Prefix.V
	}
	if rb.IPv6Prefix.Set {
		if rb.IPv6Prefix.V < 32 || rb.IPv6Prefix.V > 128 {
			l.add(rb.IPv6Prefix.Line, rb.IPv6Prefix.Col, "bans.ipv6_prefix", "%d out of range 32-128", rb.IPv6Prefix.V)
		}
		b.IPv6Prefix = rb.IPv6Prefix.V
	}
	if rb.RepeatFactor.Set {
		if rb.RepeatFactor.V < 1 || rb.RepeatFactor.V > 100 {
			l.add(rb.RepeatFactor.Line, rb.RepeatFactor.Col, "bans.repeat_factor", "%g out of range 1-100 (1 turns escalation off)", rb.RepeatFactor.V)
		}
		b.RepeatFactor = rb.RepeatFactor.V
	}
	if rb.MaxBan.Set {
		if d, ok := l.duration("bans.max_ban", rb.MaxBan.V); ok {
			b.MaxBan = d
		}
	}
	if rb.ForgetAfter.Set {
		if d, ok := l.duration("bans.forget_after", rb.ForgetAfter.V); ok {
			b.ForgetAfter = d
		}
	}
	if rb.MaxNewPerMinute.Set {
		if rb.MaxNewPerMinute.V < 0 || rb.MaxNewPerMinute.V > 100000 {
			l.add(rb.MaxNewPerMinute.Line, rb.MaxNewPerMinute.Col, "bans.max_new_per_minute", "%d out of range 0-100000 (0 turns the valve off)", rb.MaxNewPerMinute.V)
		}
		b.MaxNewPerMinute = rb.MaxNewPerMinute.V
	}
	if ov := rb.OverValve; ov.Ban.Set {
		if d, ok := l.duration("bans.over_valve.ban", ov.Ban.V); ok {
			if d != 0 && (d < time.Second || d > 10*time.Minute) {
				l.addAt("bans.over_valve.ban", "%s out of range 1s-10m (0 turns short drops off)", ov.Ban.V)
			}
			b.OverValveBan = d
		}
	}
	l.perMinute(rb.OverValve.MaxPerMinute, "bans.over_valve.max_per_minute", &b.OverValvePerMinute)
	if sp := rb.SinglePacket; sp.FirstBan.Set {
		if d, ok := l.duration("bans.single_packet.first_ban", sp.FirstBan.V); ok {
			if d != 0 && d < time.Second {
				l.addAt("bans.single_packet.first_ban", "%s: a ban is at least 1s (0 gives tripwires the rule's ban)", sp.FirstBan.V)
			}
			b.SinglePacketBan = d
		}
	}
	l.perMinute(rb.SinglePacket.MaxNewPerMinute, "bans.single_packet.max_new_per_minute", &b.SinglePacketPerMinute)
	l.aggregate(&rb.Aggregate, &b, cfg)
	cfg.ManualBan = DefaultManualBan
	if b.MaxBan > 0 && cfg.ManualBan > b.MaxBan {
		// The default manual ban is capped like any other ban.
		cfg.ManualBan = b.MaxBan
	}
	if rb.ManualBan.Set {
		if d, ok := l.duration("bans.manual_ban", rb.ManualBan.V); ok {
			switch {
			case d < time.Second:
				l.add(rb.ManualBan.Line, rb.ManualBan.Col, "bans.manual_ban", "%s: want 1s or more", rb.ManualBan.V)
			case b.MaxBan > 0 && d > b.MaxBan:
				l.add(rb.ManualBan.Line, rb.ManualBan.Col, "bans.manual_ban", "%s is longer than bans.max_ban %s", rb.ManualBan.V, b.MaxBan)
			}
			cfg.ManualBan = d
		}
	}
	for i, r := range cfg.Engine.Rules {
		if r.Ban > b.MaxBan && b.MaxBan > 0 {
			l.addAt(fmt.Sprintf("rules[%d].ban", i), "%s is longer than bans.max_ban %s", r.Ban, b.MaxBan)
		}
	}
	cfg.Engine.Bans = b
	cfg.Engine.MaxTrackedSources = DefaultMaxTrackedSources
	if m := raw.Limits.MaxTrackedSources; m.Set {
		if m.V < 16 || m.V > 1<<24 {
			l.add(m.Line, m.Col, "limits.max_tracked_sources", "%d out of range 16-16777216", m.V)
		}
		cfg.Engine.MaxTrackedSources = m.V
	}
	cfg.MaxOffences = DefaultMaxOffences
	if m := raw.Limits.MaxOffences; m.Set {
		if m.V < 1024 || m.V > 1<<24 {
			l.add(m.Line, m.Col, "limits.max_offences", "%d out of range 1024-16777216", m.V)
		}
		cfg.MaxOffences = m.V
	}
}

// perMinute reads a valve's bound (0 turns it off) into dst when set.
func (l *loader) perMinute(f field[int], key string, dst *int) {
	if !f.Set {
		return
	}
	if f.V < 0 || f.V > 100000 {
		l.add(f.Line, f.Col, key, "%d out of range 0-100000 (0 turns it off)", f.V)
	}
	*dst = f.V
}

// aggregate reads bans.aggregate: the defaults (rules.DefaultAggregate)
// for what is left out; both prefix lengths 0 turn it off.
func (l *loader) aggregate(ra *rawAggregate, b *rules.BanPolicy, cfg *Config) {
	a := rules.DefaultAggregate()
	if ra.IPv4Prefix.Set {
		if v := ra.IPv4Prefix.V; v != 0 && (v < 8 || v >= b.IPv4Prefix) {
			l.add(ra.IPv4Prefix.Line, ra.IPv4Prefix.Col, "bans.aggregate.ipv4_prefix", "%d: want 8 up to bans.ipv4_prefix (%d) exclusive, or 0 for none", v, b.IPv4Prefix)
		}
		a.IPv4Prefix = ra.IPv4Prefix.V
	}
	if ra.IPv6Prefix.Set {
		if v := ra.IPv6Prefix.V; v != 0 && (v < 16 || v >= b.IPv6Prefix) {
			l.add(ra.IPv6Prefix.Line, ra.IPv6Prefix.Col, "bans.aggregate.ipv6_prefix", "%d: want 16 up to bans.ipv6_prefix (%d) exclusive, or 0 for none", v, b.IPv6Prefix)
		}
		a.IPv6Prefix = ra.IPv6Prefix.V
	}
	// The default prefixes follow shorter ban keys out of the way.
	if !ra.IPv4Prefix.Set && a.IPv4Prefix >= b.IPv4Prefix {
		a.IPv4Prefix = 0
	}
	if !ra.IPv6Prefix.Set && a.IPv6Prefix >= b.IPv6Prefix {
		a.IPv6Prefix = 0
	}
	if k := ra.DistinctKeys; k.Set {
		if k.V < 2 || k.V > rules.MaxDistinctPorts {
			l.add(k.Line, k.Col, "bans.aggregate.distinct_keys", "%d out of range 2-%d", k.V, rules.MaxDistinctPorts)
		}
		a.DistinctKeys = k.V
	}
	if ra.Within.Set {
		if d, ok := l.duration("bans.aggregate.within", ra.Within.V); ok {
			if d <= 0 {
				l.addAt("bans.aggregate.within", "must be positive")
			}
			a.Within = d
		}
	}
	if ra.Ban.Set {
		if d, ok := l.duration("bans.aggregate.ban", ra.Ban.V); ok {
			if d < time.Second || (b.MaxBan > 0 && d > b.MaxBan) {
				l.addAt("bans.aggregate.ban", "%s out of range 1s up to bans.max_ban", ra.Ban.V)
			}
			a.Ban = d
		}
	}
	l.perMinute(ra.MaxNewPerMinute, "bans.aggregate.max_new_per_minute", &a.MaxNewPerMinute)
	cfg.Engine.Aggregate = a
}
