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
