package actions

import (
	"fmt"
	"slices"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// Defaults and names of first strike.
const (
	// DefaultFirstStrikePrefix is the log prefix of a strike when
	// FirstStrikeConfig.Prefix is empty.
	DefaultFirstStrikePrefix = "SENTRY-FS"
	// DefaultFirstStrikePriority is the priority of the first-strike chain
	// when FirstStrikeConfig.Priority is zero: after the ban chains
	// (DefaultPriority, -10), so a banned source is dropped before it is
	// counted again, and before advanced mode (DefaultAdvancedPriority, -5),
	// so the striking probe is logged once, by the strike, and not also by
	// advanced mode (at equal priorities the order of two base chains is
	// undefined).
	DefaultFirstStrikePriority int32 = -7
	// DefaultFirstStrikeSetSize bounds every dynamic set of first strike
	// when FirstStrikeConfig.SetSize is zero.
	DefaultFirstStrikeSetSize uint32 = 65536

	// FirstStrikeChain is the base chain first strike owns; StrikeChain
	// the regular chain that bans, logs and drops. Each rule i has a
	// regular chain "fs<i>" and sets "fs<i>_..." of its own.
	FirstStrikeChain = "firststrike"
	StrikeChain      = "strike"
	// SetAllow4 and SetAllow6 hold the sources never struck.
	SetAllow4 = "allow4"
	SetAllow6 = "allow6"
	// SetStrike6 holds the IPv6 bans first strike makes, as network
	// addresses of TableSpec.IPv6Prefix bits. It is always in the table
	// (its drop rule is in the ban chains): blocked6 is an interval set,
	// which the packet path cannot add to.
	SetStrike6 = "strike6"

	// BanComment is the comment Table.Ban puts on its elements; an
	// element of blocked4 without it was added by first strike.
	BanComment = "sentry-nflog"
	// Origins of a BanEntry.
	OriginDaemon = "daemon"
	OriginKernel = "kernel"
)

// FirstStrikeRule is one threshold the kernel enforces by itself. It
// mirrors a rule of the rules engine, and is looser or equal, never
// stricter: the kernel strikes only sources the engine would ban too.
type FirstStrikeRule struct {
	// Name is for messages only.
	Name string
	// Proto is the IP protocol whose probes count (parsers.ProtoTCP,
	// ProtoUDP, ProtoSCTP, any other), or 0 for every protocol the printed
	// logging rules log (all but ICMP and ICMPv6), as a distinct-protocols
	// rule counts them. A probe is a packet of ct state new, or invalid for
	// any protocol but UDP, as the logging rules say.
	Proto uint8
	// TCPFlags selects the TCP probes that count by the rules engine's
	// classes, matched in the kernel as the very combinations
	// rules.FlagCombinations gives; zero is every class. Must be zero but
	// for TCP.
	TCPFlags rules.FlagClass
	// Ports are the destination ports that count; empty is all. Only for
	// protocols with ports (TCP, UDP, SCTP, UDP-Lite).
	Ports []rules.PortRange
	// DistinctPorts is how many distinct destination ports,
	// DistinctProtos how many distinct IP protocols, and Hits how many
	// matching packets a source must send within Window. Each one above 1
	// must be reached (a rule combines hits with one distinct threshold at
	// most). All at most 1 is a tripwire: the first matching probe
	// strikes.
	DistinctPorts, DistinctProtos, Hits int
	// DistinctKeys, with Wide4 or Wide6, makes an aggregate rule (the
	// engine's bans.aggregate): it counts, per network of Wide4 (IPv4) or
	// Wide6 (IPv6) bits, the distinct ban keys (TableSpec.IPv4Prefix,
	// IPv6Prefix) that probe, and from the DistinctKeys-th on strikes each
	// probing key, so that a scanner taking a new key for every probe is
	// stopped at the threshold. A wide network holding an allowed address
	// is never counted. Wide4 or Wide6 0 leaves that family out.
	DistinctKeys, Wide4, Wide6 int
	// Window is the window of the thresholds; unused by a tripwire. The
	// kernel counts in a window that starts at a source's first counted
	// probe and does not slide (an element's timeout), so it strikes only
	// when the engine's sliding window would ban too.
	Window time.Duration
}

// Tripwire reports whether the first matching probe strikes.
func (r FirstStrikeRule) Tripwire() bool {
	return r.Hits <= 1 && r.DistinctPorts <= 1 && r.DistinctProtos <= 1 && r.DistinctKeys <= 1
}

// FirstStrikeConfig configures first strike (TableSpec.FirstStrike):
// nftables bans a source by itself when a rule's threshold is crossed, so a
// fast scanner learns at most threshold-1 answers before the ban, however
// many probes it has in flight. The key lengths it counts and bans by are
// TableSpec.IPv4Prefix and IPv6Prefix, and the sources it never strikes
// TableSpec.Allow.
type FirstStrikeConfig struct {
	// Group is the NFLOG group a strike logs its probe to, and Prefix the
	// log prefix (DefaultFirstStrikePrefix if empty, at most 127 bytes):
	// the struck probe is dropped and never reaches the user's logging
	// rule, so the daemon learns of the strike from this log.
	Group  uint16
	Prefix string
	// Rules are the thresholds, each counted on its own.
	Rules []FirstStrikeRule
	// Provisional is the timeout of a kernel ban; the longest Window of
	// the rules when zero (a minute if all are tripwires). The daemon
	// replaces it with its own ban when it agrees: Table.Ban takes over a
	// kernel ban of the same key whatever its length.
	Provisional time.Duration
	// MaxPerMinute bounds the strikes per minute of the rules with a
	// threshold, in total (burst the same); SinglePerMinute those of the
	// tripwires, apart. Zero is no bound; SinglePerMinute zero makes the
	// tripwires share MaxPerMinute. They should be the daemon's
	// bans.max_new_per_minute and bans.single_packet.max_new_per_minute.
	MaxPerMinute, SinglePerMinute int
	// OverValve is the timeout of the strikes beyond those bounds, at most
	// OverValvePerMinute of them (bans.over_valve): a short drop, which the
	// daemon confirms as such. Past that, or with OverValve zero, a probe is
	// not struck and goes on to the user's rules.
	OverValve          time.Duration
	OverValvePerMinute int
	// SetSize bounds every dynamic set first strike counts in;
	// DefaultFirstStrikeSetSize when zero, so a flood of forged sources
	// costs bounded memory. A full set never blinds first strike: a probe
	// the kernel cannot count is dropped, unanswered, and logged with the
	// prefix FullPrefix for the daemon to decide on, and Table.EvictFull
	// empties the sets that filled.
	SetSize uint32
	// Priority of the base chain (hook input); DefaultFirstStrikePriority
	// when zero. It must be above the ban chains' priority.
	Priority int32
}

// Bounds of FirstStrikeRule thresholds, as in the rules engine.
const (
	maxFirstStrikeHits     = 4096
	maxFirstStrikeDistinct = 1024
)

// clone returns a copy of cfg sharing no slice with it.
func (cfg *FirstStrikeConfig) clone() FirstStrikeConfig {
	out := *cfg
	out.Rules = make([]FirstStrikeRule, len(cfg.Rules))
	for i, r := range cfg.Rules {
		r.Ports = slices.Clone(r.Ports)
		out.Rules[i] = r
	}
	if cfg.Rules == nil {
		out.Rules = nil
	}
	return out
}

// check validates cfg and fills in its defaults.
func (cfg *FirstStrikeConfig) check() error {
	if err := checkLog("first strike", &cfg.Prefix, DefaultFirstStrikePrefix, &cfg.Priority, DefaultFirstStrikePriority); err != nil {
		return err
	}
	if cfg.MaxPerMinute < 0 || cfg.SinglePerMinute < 0 || cfg.OverValvePerMinute < 0 {
		return fmt.Errorf("first strike: negative strikes per minute")
	}
	if cfg.OverValve < 0 || cfg.OverValve > 0 && cfg.OverValve < time.Millisecond {
		return fmt.Errorf("first strike: over-valve strike %v below 1ms", cfg.OverValve)
	}
	if len(cfg.Prefix)+len(fullSuffix) > 127 {
		return fmt.Errorf("first strike: log prefix %q too long", cfg.Prefix)
	}
	if cfg.SetSize == 0 {
		cfg.SetSize = DefaultFirstStrikeSetSize
	}
	var longest time.Duration
	for i := range cfg.Rules {
		r := &cfg.Rules[i]
		name := r.Name
		if name == "" {
			name = fmt.Sprint(i)
		}
		switch {
		case r.Proto == 6:
			if r.TCPFlags&^rules.AllClasses != 0 {
				return fmt.Errorf("first strike: rule %s: unknown TCP flag classes %#x", name, uint16(r.TCPFlags))
			}
		case r.TCPFlags != 0:
			return fmt.Errorf("first strike: rule %s: TCP flags on a protocol %d rule", name, r.Proto)
		case r.Proto == 1 || r.Proto == 58:
			return fmt.Errorf("first strike: rule %s: ICMP is never counted", name)
		}
		if len(r.Ports) > 0 && !parsers.HasPorts(r.Proto) {
			return fmt.Errorf("first strike: rule %s: ports on protocol %d, which has none", name, r.Proto)
		}
		if r.DistinctPorts > 1 && !parsers.HasPorts(r.Proto) {
			return fmt.Errorf("first strike: rule %s: distinct ports on protocol %d, which has none", name, r.Proto)
		}
		if r.DistinctPorts > 1 && r.DistinctProtos > 1 {
			return fmt.Errorf("first strike: rule %s: both distinct ports and distinct protocols", name)
		}
		for _, p := range r.Ports {
			if p.Lo > p.Hi {
				return fmt.Errorf("first strike: rule %s: port range %d-%d: start above end", name, p.Lo, p.Hi)
			}
		}
		switch {
		case r.Hits < 0 || r.Hits > maxFirstStrikeHits:
			return fmt.Errorf("first strike: rule %s: hits %d out of range 0-%d", name, r.Hits, maxFirstStrikeHits)
		case r.DistinctPorts < 0 || r.DistinctPorts > maxFirstStrikeDistinct:
			return fmt.Errorf("first strike: rule %s: distinct ports %d out of range 0-%d", name, r.DistinctPorts, maxFirstStrikeDistinct)
		case r.DistinctProtos < 0 || r.DistinctProtos > 256:
			return fmt.Errorf("first strike: rule %s: distinct protocols %d out of range 0-256", name, r.DistinctProtos)
		case r.DistinctKeys > 1 && (r.Hits > 1 || r.DistinctPorts > 1 || r.DistinctProtos > 1 || r.Wide4 == 0 && r.Wide6 == 0):
			return fmt.Errorf("first strike: rule %s: distinct keys need Wide4 or Wide6 and no other threshold", name)
		case r.DistinctKeys < 0 || r.DistinctKeys > maxFirstStrikeDistinct || r.Wide4 < 0 || r.Wide4 > 32 || r.Wide6 < 0 || r.Wide6 > 128:
			return fmt.Errorf("first strike: rule %s: distinct keys or wide prefixes out of range", name)
		case r.Hits == 0 && r.DistinctPorts == 0 && r.DistinctProtos == 0 && r.DistinctKeys == 0:
			return fmt.Errorf("first strike: rule %s: threshold needs hits, distinct ports or distinct protocols", name)
		case !r.Tripwire() && r.Window < time.Millisecond:
			return fmt.Errorf("first strike: rule %s: window %v below 1ms", name, r.Window)
		}
		if !r.Tripwire() {
			longest = max(longest, r.Window)
		}
	}
	if cfg.Provisional == 0 {
		cfg.Provisional = longest
		if cfg.Provisional == 0 {
			cfg.Provisional = time.Minute
		}
	}
	if cfg.Provisional < time.Millisecond {
		return fmt.Errorf("first strike: provisional ban %v below 1ms", cfg.Provisional)
	}
	return nil
}

// fullSuffix is added to the log prefix of the probes first strike could
// not count because a set was full (FirstStrikeConfig.SetSize).
const fullSuffix = "-FULL"

// FullPrefix is the log prefix of the probes first strike dropped because
// a counting set was full; cfg must be normalised (Prefix set).
func (cfg *FirstStrikeConfig) FullPrefix() string { return cfg.Prefix + fullSuffix }

// StrikeSet is one of first strike's counting sets as StrikeSets reads it.
type StrikeSet struct {
	Name string
	// Elements is how many elements it holds now (expired ones the kernel
	// has not collected yet included), Size its bound.
	Elements, Size int
	// FullDrops counts the probes dropped unanswered because the set was
	// full when they came (the counter of its full rules).
	FullDrops uint64
}

// Full reports whether the set is at its bound.
func (s StrikeSet) Full() bool { return s.Size > 0 && s.Elements >= s.Size }
