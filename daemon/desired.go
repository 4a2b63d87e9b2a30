package daemon

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

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

// MaxStrikeWindow is the longest window a rule may have and still be
// derived into first strike. The kernel's counting sets hold each source
// for a window: an hour-long slow-scan rule would fill them with the
// Internet's background noise, and a slow scanner has nothing in flight,
// so the daemon alone bans it in time.
const MaxStrikeWindow = 10 * time.Minute

// StrikeConfig derives the kernel's first strike from the rules: each rule
// with a threshold becomes, per protocol it selects, a kernel rule with the
// same threshold, window and TCP flag classes (the kernel matches the very
// combinations the engine classifies, so whatever the kernel strikes the
// daemon confirms). A rule that selects a log prefix or an input interface
// is left to the daemon (the kernel strikes before any logging rule runs,
// so it cannot know the prefix), and so is a rule whose window is longer
// than MaxStrikeWindow, or that counts distinct ports and distinct
// protocols at once. The notes say which rules were left out and why; ok
// is false when nothing was derived.
func StrikeConfig(cfg *config.Config) (fc actions.FirstStrikeConfig, notes []string, ok bool) {
	// A zero Provisional lets actions default it to the longest window
	// of the rules derived here.
	b := cfg.Engine.Bans
	fc = actions.FirstStrikeConfig{
		Provisional: cfg.FirstStrike.Provisional, MaxPerMinute: b.MaxNewPerMinute,
		SinglePerMinute: b.SinglePacketPerMinute, OverValve: b.OverValveBan, OverValvePerMinute: b.OverValvePerMinute,
		SetSize: uint32(cfg.FirstStrike.SetSize),
	}
	if !cfg.FirstStrike.Enabled || len(cfg.Inputs.NFLOG) == 0 {
		return fc, nil, false
	}
	fc.Group = cfg.Inputs.NFLOG[0].Group
	for _, r := range cfg.Engine.Rules {
		switch {
		case len(r.Prefixes) > 0 || len(r.Interfaces) > 0:
			notes = append(notes, fmt.Sprintf("rule %s left to the daemon: it selects a log prefix or interface", r.Name))
			continue
		case !r.Tripwire() && r.Within > MaxStrikeWindow:
			notes = append(notes, fmt.Sprintf("rule %s left to the daemon: its window %s is longer than first strike's %s", r.Name, r.Within, MaxStrikeWindow))
			continue
		case r.DistinctPorts > 1 && r.DistinctProtos > 1:
			notes = append(notes, fmt.Sprintf("rule %s left to the daemon: it counts distinct ports and distinct protocols at once", r.Name))
			continue
		}
		protos := r.Protos
		switch {
		case len(protos) == 0 && r.Flags != 0:
			protos = []uint8{parsers.ProtoTCP}
		case len(protos) == 0 && r.DistinctPorts > 1:
			// Ports: the protocols that have them.
			protos = []uint8{parsers.ProtoTCP, parsers.ProtoUDP, parsers.ProtoSCTP, parsers.ProtoUDPLite}
		case len(protos) == 0:
			protos = []uint8{0} // every protocol the logging rules log
		}
		if r.DistinctProtos > 1 && len(protos) > 1 {
			// Distinct protocols are counted across the rule's protocols,
			// which one kernel rule per protocol cannot do.
			notes = append(notes, fmt.Sprintf("rule %s left to the daemon: it counts distinct protocols among a list of protocols", r.Name))
			continue
		}
		for _, proto := range protos {
			if proto == parsers.ProtoICMP || proto == parsers.ProtoICMPv6 {
				continue // never logged by the printed rules
			}
			if (r.DistinctPorts > 1 || r.Ports != nil) && !parsers.HasPorts(proto) {
				continue // no ports to count or select
			}
			fr := actions.FirstStrikeRule{Name: r.Name, Proto: proto, DistinctPorts: r.DistinctPorts,
				DistinctProtos: r.DistinctProtos, Hits: r.Hits, Window: r.Within}
			if r.Ports != nil {
				fr.Ports = r.Ports.Ranges()
			}
			if proto == parsers.ProtoTCP {
				fr.TCPFlags = r.Flags
			}
			fc.Rules = append(fc.Rules, fr)
		}
	}
	// The wide prefixes (bans.aggregate): one rule counting keys per wide
	// network, for the probes of every logged protocol.
	if a := cfg.Engine.Aggregate; a.Enabled() && a.Within <= MaxStrikeWindow {
		fc.Rules = append(fc.Rules, actions.FirstStrikeRule{Name: rules.AggregateRule, DistinctKeys: a.DistinctKeys,
			Wide4: a.IPv4Prefix, Wide6: a.IPv6Prefix, Window: a.Within})
	}
	return fc, notes, len(fc.Rules) > 0
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
