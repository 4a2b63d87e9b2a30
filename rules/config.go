package rules

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// PortRange is the inclusive range of ports Lo to Hi.
type PortRange struct{ Lo, Hi uint16 }

// String returns "22" or "1-1023".
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// PortSet is a set of destination ports, one bit per port.
type PortSet struct{ bits [1024]uint64 }

// NewPortSet returns the ports of ranges.
func NewPortSet(ranges ...PortRange) *PortSet {
	s := new(PortSet)
	for _, r := range ranges {
		s.Add(r.Lo, r.Hi)
	}
	return s
}

// Add puts the ports lo through hi (inclusive) in the set.
func (s *PortSet) Add(lo, hi uint16) {
	for p := uint32(lo); p <= uint32(hi); p++ {
		s.bits[p>>6] |= 1 << (p & 63)
	}
}

// Remove takes port out of the set.
func (s *PortSet) Remove(port uint16) { s.bits[port>>6] &^= 1 << (port & 63) }

// Has reports whether port is in the set.
func (s *PortSet) Has(port uint16) bool { return s.bits[port>>6]&(1<<(port&63)) != 0 }

// Ranges returns the set as the fewest disjoint, non-adjacent ranges in
// ascending order, which is what an nftables interval set must be given
// (the kernel refuses overlaps). Empty words are skipped whole.
func (s *PortSet) Ranges() []PortRange {
	var out []PortRange
	open := false
	var lo uint16
	for w, bits := range s.bits {
		if bits == 0 && !open || bits == ^uint64(0) && open {
			continue
		}
		for b := 0; b < 64; b++ {
			p := uint16(w*64 + b)
			in := bits&(1<<b) != 0
			switch {
			case in && !open:
				lo, open = p, true
			case !in && open:
				out = append(out, PortRange{Lo: lo, Hi: p - 1})
				open = false
			}
		}
	}
	if open {
		out = append(out, PortRange{Lo: lo, Hi: 65535})
	}
	return out
}

// Pattern matches a log prefix or an interface name: exactly, or, when it
// ends in '*', as a leading part ("filter_IN_*", "eth*").
type Pattern string

// Match reports whether s matches the pattern.
func (p Pattern) Match(s string) bool {
	if n := len(p); n > 0 && p[n-1] == '*' {
		return strings.HasPrefix(s, string(p[:n-1]))
	}
	return s == string(p)
}

// Rule is one compiled detection rule. An empty selector matches everything.
type Rule struct {
	// Name identifies the rule in decisions, logs and metrics.
	Name string
	// Prefixes select by log prefix (Event.Prefix).
	Prefixes []Pattern
	// Protos select by IP protocol number.
	Protos []uint8
	// Ports selects by destination port; nil matches every port.
	Ports *PortSet
	// Flags selects TCP packets by flag class; 0 matches all, and a rule
	// with classes set matches only TCP.
	Flags FlagClass
	// Interfaces select by input interface.
	Interfaces []Pattern
	// Hits is the number of matching packets, DistinctPorts the number of
	// distinct destination ports and DistinctProtos the number of distinct
	// IP protocols that a source must reach within Within. Every one set
	// must be reached. Hits 1 with neither distinct threshold is a
	// tripwire: the first packet bans.
	Hits, DistinctPorts, DistinctProtos int
	// Within is the sliding window; unused by a tripwire.
	Within time.Duration
	// Ban is the first offence's ban duration.
	Ban time.Duration
}

// Limits on thresholds, so per-source state stays small: each tracked source
// holds at most MaxHits timestamps, MaxDistinctPorts ports and
// MaxDistinctProtos protocols per rule, however long the window.
const (
	MaxHits           = 4096
	MaxDistinctPorts  = 1024
	MaxDistinctProtos = 256
)

// Tripwire reports whether the first matching packet crosses the threshold.
func (r *Rule) Tripwire() bool { return r.Hits <= 1 && r.DistinctPorts <= 1 && r.DistinctProtos <= 1 }

// Validate checks a rule's own consistency.
func (r *Rule) Validate() error {
	switch {
	case r.Name == "":
		return fmt.Errorf("rule has no name")
	case r.Hits < 0 || r.Hits > MaxHits:
		return fmt.Errorf("rule %s: hits %d out of range 0-%d", r.Name, r.Hits, MaxHits)
	case r.DistinctPorts < 0 || r.DistinctPorts > MaxDistinctPorts:
		return fmt.Errorf("rule %s: distinct_ports %d out of range 0-%d", r.Name, r.DistinctPorts, MaxDistinctPorts)
	case r.DistinctProtos < 0 || r.DistinctProtos > MaxDistinctProtos:
		return fmt.Errorf("rule %s: distinct_protos %d out of range 0-%d", r.Name, r.DistinctProtos, MaxDistinctProtos)
	case r.Hits == 0 && r.DistinctPorts == 0 && r.DistinctProtos == 0:
		return fmt.Errorf("rule %s: threshold needs hits, distinct_ports or distinct_protos", r.Name)
	case !r.Tripwire() && r.Within <= 0:
		return fmt.Errorf("rule %s: threshold needs a positive within window", r.Name)
	case r.Ban <= 0:
		return fmt.Errorf("rule %s: ban must be positive", r.Name)
	}
	return nil
}

// BanPolicy shapes ban keys and durations across rules.
type BanPolicy struct {
	// IPv4Prefix and IPv6Prefix are the ban key lengths (32 and 64).
	IPv4Prefix, IPv6Prefix int
	// RepeatFactor multiplies the ban for each earlier offence still
	// remembered; MaxBan caps the result.
	RepeatFactor float64
	MaxBan       time.Duration
	// ForgetAfter is how long after its last ban a key's offences are
	// forgotten.
	ForgetAfter time.Duration
	// MaxNewPerMinute is the valve: at most this many bans in any 60 s of
	// event time; 0 disables it.
	MaxNewPerMinute int
	// OverValveBan is how long a source that crosses a threshold while its
	// valve is closed is dropped instead (Action Throttled): short, so a
	// forged address is not held for long, but a real scanner hiding among
	// decoys is slowed to nothing. At most OverValvePerMinute such drops in
	// any 60 s; beyond that, or with OverValveBan 0, the source is only
	// reported (RateLimited).
	OverValveBan       time.Duration
	OverValvePerMinute int
	// SinglePacketBan caps the first ban a tripwire (single-packet
	// evidence) gives: a packet's source cannot be trusted without a
	// handshake, so one forged packet costs the address it names no more
	// than this. A key banned again within ForgetAfter gets the rule's own
	// ban, escalated from there. 0 gives tripwires the rule's ban at once.
	SinglePacketBan time.Duration
	// SinglePacketPerMinute is the tripwires' own valve, apart from
	// MaxNewPerMinute, so a flood of forged single packets cannot use up
	// the bans real scans need; 0 makes them share MaxNewPerMinute.
	SinglePacketPerMinute int
}

// Aggregate bans a wider prefix when enough distinct ban keys inside it
// probe within a window: a scanner taking a new IPv6 /64 for every probe
// inside its /48, or a new IPv4 address inside its /24. A wide prefix that
// contains an ignored address is never banned.
type Aggregate struct {
	// IPv4Prefix and IPv6Prefix are the wide prefixes' lengths, shorter
	// than the ban keys'; 0 turns aggregation off for the family.
	IPv4Prefix, IPv6Prefix int
	// DistinctKeys ban keys (with any matching event) within Within ban
	// the wide prefix for Ban.
	DistinctKeys int
	Within       time.Duration
	Ban          time.Duration
	// MaxNewPerMinute is the aggregates' own valve; 0 disables it.
	MaxNewPerMinute int
}

// Enabled reports whether any family aggregates.
func (a *Aggregate) Enabled() bool { return a.IPv4Prefix > 0 || a.IPv6Prefix > 0 }

// AggregateRule is the rule name of a wide prefix's decisions.
const AggregateRule = "aggregate"

// Config is everything the engine needs, already validated by the loader.
type Config struct {
	Rules []Rule
	// Ignore lists prefixes never banned.
	Ignore []netip.Prefix
	// AcceptPrefixes are patterns of the log prefixes of packets the
	// firewall accepted: such events are never evidence. A pattern without
	// '*' matches as the leading part of Event.Prefix ("[UFW AUDIT"
	// matches "[UFW AUDIT INVALID]"); one with '*' is a glob over the whole
	// prefix, '*' standing for any run of characters ("*-ACC-*" matches
	// anywhere, "*ACCEPT" at the end). See DefaultAcceptPrefixes.
	AcceptPrefixes []string
	Bans           BanPolicy
	// Aggregate bans wider prefixes; the zero value is off.
	Aggregate Aggregate
	// MaxTrackedSources bounds the engine's memory.
	MaxTrackedSources int
}

// DefaultBanPolicy returns the policy of the shipped sentry.yaml.
func DefaultBanPolicy() BanPolicy {
	return BanPolicy{
		IPv4Prefix: 32, IPv6Prefix: 64, RepeatFactor: 2,
		MaxBan: 720 * time.Hour, ForgetAfter: 168 * time.Hour, MaxNewPerMinute: 60,
		OverValveBan: 30 * time.Second, OverValvePerMinute: 600,
		SinglePacketBan: 10 * time.Minute, SinglePacketPerMinute: 20,
	}
}

// DefaultAggregate returns the aggregation of the shipped sentry.yaml.
func DefaultAggregate() Aggregate {
	return Aggregate{IPv4Prefix: 24, IPv6Prefix: 48, DistinctKeys: 8, Within: time.Minute, Ban: time.Hour, MaxNewPerMinute: 10}
}
