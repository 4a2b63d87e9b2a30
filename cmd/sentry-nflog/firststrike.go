package main

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// tableSpec is the nftables table the config asks for: the ban sets and
// chains, first strike derived from the rules (never striking allow) and
// advanced mode. Applying it is the one way the daemon changes the table,
// at start, on reload and after tampering; the listening ports are the
// caller's to fill in.
func tableSpec(cfg *config.Config, allow []netip.Prefix, log *slog.Logger) actions.TableSpec {
	spec := actions.TableSpec{
		Table: cfg.NFTables.Table, Hooks: cfg.NFTables.Hooks,
		Priority: cfg.NFTables.Priority, ManageChain: cfg.NFTables.ManageChain,
		IPv4Prefix: cfg.Engine.Bans.IPv4Prefix, IPv6Prefix: cfg.Engine.Bans.IPv6Prefix,
		Allow: allow,
	}
	if fc, ok := strikeConfig(cfg, log); ok {
		spec.FirstStrike = &fc
	}
	if a := cfg.Advanced; a != nil && len(cfg.Inputs.NFLOG) > 0 {
		spec.Advanced = &actions.AdvancedConfig{
			TCP: a.TCP, UDP: a.UDP, Exclude: a.Exclude, Group: cfg.Inputs.NFLOG[0].Group, Prefix: a.Prefix,
		}
	}
	return spec
}

// strikeConfig derives the kernel's first strike from the rules: each rule
// with a distinct_ports or hits threshold on TCP or UDP becomes a kernel
// rule with the same threshold and window. A rule that selects a log
// prefix or an input interface is left to the daemon: the kernel strikes
// before any logging rule runs, so it cannot know the prefix. The second
// result says whether anything was derived.
func strikeConfig(cfg *config.Config, log *slog.Logger) (actions.FirstStrikeConfig, bool) {
	fc := actions.FirstStrikeConfig{
		Provisional: provisional(cfg), MaxPerMinute: cfg.Engine.Bans.MaxNewPerMinute,
		SetSize: uint32(cfg.FirstStrike.SetSize),
	}
	if !cfg.FirstStrike.Enabled || len(cfg.Inputs.NFLOG) == 0 {
		return fc, false
	}
	fc.Group = cfg.Inputs.NFLOG[0].Group
	for _, r := range cfg.Engine.Rules {
		if len(r.Prefixes) > 0 || len(r.Interfaces) > 0 {
			log.Info("first strike: rule left to the daemon (it selects a log prefix or interface)", "rule", r.Name)
			continue
		}
		protos := r.Protos
		if len(protos) == 0 {
			protos = []uint8{parsers.ProtoTCP, parsers.ProtoUDP}
		}
		for _, proto := range protos {
			fr := actions.FirstStrikeRule{Name: r.Name, Proto: proto, DistinctPorts: r.DistinctPorts, Hits: r.Hits, Window: r.Within, Ports: portRanges(r.Ports)}
			switch proto {
			case parsers.ProtoTCP:
				m, ok := flagMatch(r.Flags)
				if !ok {
					log.Info("first strike: rule left to the daemon (its TCP flag classes have no kernel match)", "rule", r.Name, "flags", r.Flags.String())
					continue
				}
				fr.TCPFlags = m
			case parsers.ProtoUDP:
				if r.Flags != 0 {
					continue
				}
			default:
				continue
			}
			fc.Rules = append(fc.Rules, fr)
		}
	}
	return fc, len(fc.Rules) > 0
}

// flagMatch maps the engine's flag classes to the kernel's probe kinds; a
// rule without classes counts SYNs and the stealth probes.
func flagMatch(c rules.FlagClass) (actions.FlagMatch, bool) {
	if c == 0 {
		return actions.MatchSYN | actions.MatchStealth, true
	}
	var m actions.FlagMatch
	for _, k := range []struct {
		class rules.FlagClass
		match actions.FlagMatch
	}{{rules.ClassSYN, actions.MatchSYN}, {rules.ClassNull, actions.MatchNULL}, {rules.ClassFIN, actions.MatchFIN}, {rules.ClassXmas, actions.MatchXMAS}} {
		if c&k.class != 0 {
			m |= k.match
		}
	}
	// ack and other have no kernel counterpart: a rule using them stays
	// the daemon's, lest the kernel strike what the rule would not.
	if c&(rules.ClassACK|rules.ClassOther) != 0 {
		return 0, false
	}
	return m, true
}

// portRanges turns a port set into ranges; nil stays nil (all ports).
func portRanges(s *rules.PortSet) []rules.PortRange {
	if s == nil {
		return nil
	}
	return s.Ranges()
}

// provisional is the timeout of the kernel's first-strike bans: the
// configured one, else the longest window of the rules (a minute if all
// are tripwires), as FirstStrikeConfig defaults it.
func provisional(cfg *config.Config) time.Duration {
	if !cfg.FirstStrike.Enabled {
		return 0
	}
	if cfg.FirstStrike.Provisional > 0 {
		return cfg.FirstStrike.Provisional
	}
	d := time.Duration(0)
	for _, r := range cfg.Engine.Rules {
		if !r.Tripwire() && r.Within > d {
			d = r.Within
		}
	}
	if d == 0 {
		d = time.Minute
	}
	return d
}
