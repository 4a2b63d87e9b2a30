package actions

import (
	"fmt"
	"slices"
	"strings"
	"time"

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

// FlagMatch selects which TCP probes a first-strike rule counts. Flags are
// compared under the mask fin|syn|rst|psh|ack|urg (SYN: fin|syn|rst|ack,
// so SYN with PSH, URG, ECE or CWR is still a SYN).
type FlagMatch uint8

// TCP probe kinds.
const (
	// MatchSYN is a connection attempt: flags & (fin|syn|rst|ack) == syn.
	MatchSYN FlagMatch = 1 << iota
	// MatchNULL is a segment without flags.
	MatchNULL
	// MatchFIN is a lone FIN.
	MatchFIN
	// MatchXMAS is fin|psh|urg.
	MatchXMAS

	// MatchStealth is the classic stealth probes, NULL, FIN and XMAS.
	MatchStealth = MatchNULL | MatchFIN | MatchXMAS
	matchAll     = MatchSYN | MatchStealth
)

func (m FlagMatch) String() string {
	var parts []string
	for _, k := range []struct {
		bit  FlagMatch
		name string
	}{{MatchSYN, "syn"}, {MatchNULL, "null"}, {MatchFIN, "fin"}, {MatchXMAS, "xmas"}} {
		if m&k.bit != 0 {
			parts = append(parts, k.name)
		}
	}
	if m&^matchAll != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint8(m&^matchAll)))
	}
	return strings.Join(parts, "|")
}

// FirstStrikeRule is one threshold the kernel enforces by itself. It
// mirrors a rule of the rules engine, and is looser or equal, never
// stricter: the kernel strikes only sources the engine would ban too.
type FirstStrikeRule struct {
	// Name is for messages only.
	Name string
	// Proto is 6 (TCP) or 17 (UDP), as parsers.ProtoTCP and ProtoUDP.
	Proto uint8
	// TCPFlags selects the TCP probes that count; zero means MatchSYN.
	// Must be zero for UDP.
	TCPFlags FlagMatch
	// Ports are the destination ports that count; empty is all.
	Ports []rules.PortRange
	// DistinctPorts is how many distinct destination ports a source must
	// probe within Window; Hits how many matching packets. When both are
	// above 1 both must be reached. Hits <= 1 and DistinctPorts <= 1 is a
	// tripwire: the first matching probe strikes.
	DistinctPorts, Hits int
	// Window is the sliding window of the thresholds; unused by a
	// tripwire.
	Window time.Duration
}

// Tripwire reports whether the first matching probe strikes.
func (r FirstStrikeRule) Tripwire() bool { return r.Hits <= 1 && r.DistinctPorts <= 1 }

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
	// MaxPerMinute bounds the strikes per minute, in total (burst the
	// same): over it a probe is not struck and goes on to the user's rules.
	// Zero is no bound. It should be the daemon's bans.max_new_per_minute.
	MaxPerMinute int
	// SetSize bounds every dynamic set first strike counts in;
	// DefaultFirstStrikeSetSize when zero. When a set is full the kernel
	// adds nothing to it, and nothing new is counted or struck: a flood of
	// spoofed sources costs bounded memory.
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
	if cfg.MaxPerMinute < 0 {
		return fmt.Errorf("first strike: negative max strikes per minute %d", cfg.MaxPerMinute)
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
		switch r.Proto {
		case 6:
			if r.TCPFlags == 0 {
				r.TCPFlags = MatchSYN
			}
			if r.TCPFlags&^matchAll != 0 {
				return fmt.Errorf("first strike: rule %s: unknown TCP flag match %v", name, r.TCPFlags)
			}
		case 17:
			if r.TCPFlags != 0 {
				return fmt.Errorf("first strike: rule %s: TCP flags on a UDP rule", name)
			}
		default:
			return fmt.Errorf("first strike: rule %s: protocol %d, want 6 (tcp) or 17 (udp)", name, r.Proto)
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
		case r.Hits == 0 && r.DistinctPorts == 0:
			return fmt.Errorf("first strike: rule %s: threshold needs hits or distinct ports", name)
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

// bucket is a token bucket of the kernel's limit expression: burst
// packets at once, then rate per unit (seconds).
type bucket struct {
	rate  uint64
	unit  uint64 // seconds: 1, 60, 3600, 86400 or 604800
	burst uint32
}

// limitUnits are the units the kernel's limit expression takes.
var limitUnits = [...]uint64{1, 60, 3600, 86400, 604800}

// bucketFor is the limit that lets n-1 events through at once and refills
// n-1 per window, so that it is exceeded (`limit rate over`) by the n-th
// event of a burst. It never strikes what the sliding window "n within
// window" would not: whenever it is exceeded, n events (the exceeding one
// included) fell within the last window. The unit is the smallest at
// least as long as the window, and the rate is rounded up (refilling a
// little faster, so looser, never stricter).
func bucketFor(n int, window time.Duration) bucket {
	b := bucket{burst: uint32(n - 1)}
	b.unit = limitUnits[len(limitUnits)-1]
	for _, u := range limitUnits {
		if time.Duration(u)*time.Second >= window {
			b.unit = u
			break
		}
	}
	// rate = ceil((n-1) * unit / window), in nanoseconds.
	num := uint64(n-1) * b.unit * uint64(time.Second)
	w := uint64(window)
	b.rate = (num + w - 1) / w
	return b
}
