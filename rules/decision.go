package rules

import (
	"net/netip"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// Action is what a Decision asks for.
type Action uint8

// The actions a Decision can carry.
const (
	// Ban: drop the key for Decision.Ban.
	Ban Action = iota
	// Ignored: the source crossed a threshold but is on the ignore list.
	Ignored
	// RateLimited: the source crossed a threshold but the valve
	// (max_new_per_minute) was closed, and so was the short drops' own
	// bound; nothing is banned.
	RateLimited
	// Throttled: the source crossed a threshold while the valve was
	// closed: drop the key for Decision.Ban, a short time
	// (BanPolicy.OverValveBan), which is no offence.
	Throttled

	// NumActions is the number of actions, for counters indexed by Action.
	NumActions = 4
)

// String returns "ban", "ignored", "rate-limited" or "throttled".
func (a Action) String() string {
	switch a {
	case Ban:
		return "ban"
	case Ignored:
		return "ignored"
	case RateLimited:
		return "rate-limited"
	case Throttled:
		return "throttled"
	}
	return "unknown"
}

// Drops reports whether the action puts the key in the kernel's sets.
func (a Action) Drops() bool { return a == Ban || a == Throttled }

// MaxListedPorts is how many distinct ports a Decision lists as evidence.
const MaxListedPorts = 8

// Decision is the engine's verdict on one source, with the evidence behind
// it. It is a value with no references into engine state.
type Decision struct {
	// Time is the event time of the packet that crossed the threshold.
	Time time.Time
	// Action says what to do.
	Action Action
	// Key is the ban key: the source masked to the configured prefix length
	// (/32 and /64 by default).
	Key netip.Prefix
	// Source is the address of the packet that crossed the threshold.
	Source netip.Addr
	// Rule is the name of the rule whose threshold was crossed.
	Rule string
	// FirstSeen and LastSeen bound the evidence: the run of matching
	// packets from this key with no gap longer than the rule's window.
	FirstSeen, LastSeen time.Time
	// Hits is the number of matching packets in that run.
	Hits uint32
	// DistinctPorts is the number of distinct destination ports inside the
	// window (for a rule without distinct_ports, of the run, counted up to
	// MaxListedPorts); Ports lists the first NPorts of the run's ports in
	// order of arrival.
	DistinctPorts uint32
	Ports         [MaxListedPorts]uint16
	NPorts        uint8
	// Flags is every TCP flag seen in the evidence, ORed together.
	Flags parsers.TCPFlags
	// Proto is the protocol of the crossing packet.
	Proto uint8
	// Ban is how long to drop the key, escalation applied. Zero unless
	// Action drops (Ban, Throttled).
	Ban time.Duration
	// SinglePacket says the evidence is one packet (a tripwire), whose
	// source may be forged: its first ban is short.
	SinglePacket bool
	// Offence counts this key's bans within forget_after, this one included
	// (1 for a first offence). For Ignored and RateLimited it is the count
	// the ban would have had.
	Offence uint32
}

// PortList returns the listed ports as a slice (allocates; not for the hot
// path).
func (d *Decision) PortList() []uint16 {
	return append([]uint16(nil), d.Ports[:d.NPorts]...)
}
