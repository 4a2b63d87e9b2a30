package daemon

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// Desired is everything the daemon derives from a config and the host's
// facts: the engine it runs and the table it wants in the kernel. It is a
// plain value, so a reload compares the old and the new one whole and
// applies what differs, and tamper repair applies the same table spec
// again.
type Desired struct {
	// Engine is the rules engine's config, its ignore list resolved.
	Engine rules.Config
	// Table is the whole nftables table, first strike and advanced mode
	// included (without the listening ports, which the daemon adds when
	// it applies it).
	Table actions.TableSpec
	// Notes say why rules were left out of first strike, for the log.
	Notes []string
}

// Derive computes the desired state from cfg and the resolved ignore list
// (the fixed prefixes plus the host's own addresses, gateways and
// resolvers). It is pure.
func Derive(cfg *config.Config, ignore []netip.Prefix) Desired {
	d := Desired{Engine: cfg.Engine}
	d.Engine.Ignore = slices.Clone(ignore)
	d.Table = TableSpec(cfg)
	d.Table.Allow = slices.Clone(ignore)
	fc, notes, ok := StrikeConfig(cfg)
	d.Notes = notes
	if ok {
		d.Table.FirstStrike = &fc
	}
	if a := cfg.Advanced; a != nil {
		d.Table.Advanced = &actions.AdvancedConfig{
			TCP: slices.Clone(a.TCP), UDP: slices.Clone(a.UDP), Exclude: slices.Clone(a.Exclude),
			Group: cfg.Inputs.NFLOG[0].Group, Prefix: a.Prefix,
		}
	}
	return d
}

// TableSpec is the part of the table spec that only the config's nftables
// and bans sections decide: what `list` and `unblock` need to read the
// sets, without first strike or advanced mode.
func TableSpec(cfg *config.Config) actions.TableSpec {
	return actions.TableSpec{
		Table: cfg.NFTables.Table, Hooks: slices.Clone(cfg.NFTables.Hooks),
		Priority: cfg.NFTables.Priority, ManageChain: cfg.NFTables.ManageChain,
		IPv4Prefix: cfg.Engine.Bans.IPv4Prefix, IPv6Prefix: cfg.Engine.Bans.IPv6Prefix,
	}
}

// StrikeConfig derives the kernel's first strike from the rules: each rule
// with a distinct_ports or hits threshold on TCP or UDP becomes a kernel
// rule with the same threshold and window. A rule that selects a log
// prefix or an input interface is left to the daemon: the kernel strikes
// before any logging rule runs, so it cannot know the prefix. The notes say
// which rules were left out and why; ok is false when nothing was derived.
func StrikeConfig(cfg *config.Config) (fc actions.FirstStrikeConfig, notes []string, ok bool) {
	// A zero Provisional lets actions default it to the longest window
	// of the rules derived here.
	fc = actions.FirstStrikeConfig{
		Provisional: cfg.FirstStrike.Provisional, MaxPerMinute: cfg.Engine.Bans.MaxNewPerMinute,
		SetSize: uint32(cfg.FirstStrike.SetSize),
	}
	if !cfg.FirstStrike.Enabled || len(cfg.Inputs.NFLOG) == 0 {
		return fc, nil, false
	}
	fc.Group = cfg.Inputs.NFLOG[0].Group
	for _, r := range cfg.Engine.Rules {
		if len(r.Prefixes) > 0 || len(r.Interfaces) > 0 {
			notes = append(notes, fmt.Sprintf("rule %s left to the daemon: it selects a log prefix or interface", r.Name))
			continue
		}
		protos := r.Protos
		if len(protos) == 0 {
			protos = []uint8{parsers.ProtoTCP, parsers.ProtoUDP}
		}
		for _, proto := range protos {
			fr := actions.FirstStrikeRule{Name: r.Name, Proto: proto, DistinctPorts: r.DistinctPorts, Hits: r.Hits, Window: r.Within}
			if r.Ports != nil {
				fr.Ports = r.Ports.Ranges()
			}
			switch proto {
			case parsers.ProtoTCP:
				m, ok := FlagMatch(r.Flags)
				if !ok {
					notes = append(notes, fmt.Sprintf("rule %s left to the daemon: its TCP flag classes (%s) have no kernel match", r.Name, r.Flags))
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
	return fc, notes, len(fc.Rules) > 0
}

// FlagMatch maps the engine's flag classes to the kernel's probe kinds; a
// rule without classes counts SYNs and the stealth probes. ok is false for
// classes the kernel cannot match the same way (ack, other): a rule using
// them stays the daemon's, lest the kernel strike what the rule would not.
func FlagMatch(c rules.FlagClass) (m actions.FlagMatch, ok bool) {
	if c == 0 {
		return actions.MatchSYN | actions.MatchStealth, true
	}
	for _, k := range []struct {
		class rules.FlagClass
		match actions.FlagMatch
	}{{rules.ClassSYN, actions.MatchSYN}, {rules.ClassNull, actions.MatchNULL}, {rules.ClassFIN, actions.MatchFIN}, {rules.ClassXmas, actions.MatchXMAS}} {
		if c&k.class != 0 {
			m |= k.match
		}
	}
	if c&^(rules.ClassSYN|rules.ClassNull|rules.ClassFIN|rules.ClassXmas) != 0 {
		return 0, false
	}
	return m, true
}

// pin keeps what cannot change while the daemon runs: the inputs, the
// table (its name and hooks; the ban key lengths, which the kernel's
// strike6 mask and the engine's keys must share), state_dir, logging and
// metrics. It returns next with those sections taken from running, and
// the names of the sections that differed, which take effect at the next
// restart.
func pin(next, running *config.Config) (*config.Config, []string) {
	out := *next
	var changed []string
	same := func(name string, eq bool) {
		if !eq {
			changed = append(changed, name)
		}
	}
	same("inputs", equalInputs(next.Inputs, running.Inputs))
	same("nftables", slices.Equal(next.NFTables.Hooks, running.NFTables.Hooks) && next.NFTables.Table == running.NFTables.Table &&
		next.NFTables.Priority == running.NFTables.Priority && next.NFTables.ManageChain == running.NFTables.ManageChain)
	same("bans.ipv4_prefix/ipv6_prefix", next.Engine.Bans.IPv4Prefix == running.Engine.Bans.IPv4Prefix &&
		next.Engine.Bans.IPv6Prefix == running.Engine.Bans.IPv6Prefix)
	same("state_dir", next.StateDir == running.StateDir)
	same("log", next.Log == running.Log)
	same("metrics", next.Metrics == running.Metrics)
	out.Inputs, out.NFTables, out.StateDir, out.Log, out.Metrics = running.Inputs, running.NFTables, running.StateDir, running.Log, running.Metrics
	out.Engine.Bans.IPv4Prefix, out.Engine.Bans.IPv6Prefix = running.Engine.Bans.IPv4Prefix, running.Engine.Bans.IPv6Prefix
	return &out, changed
}

func equalInputs(a, b config.Inputs) bool {
	return slices.Equal(a.NFLOG, b.NFLOG) && slices.Equal(a.Files, b.Files) && a.Kmsg == b.Kmsg
}
