package actions

import (
	"fmt"
	"strings"
)

// Defaults and names of advanced mode.
const (
	// DefaultAdvancedPriority is the priority of the advanced chain when
	// AdvancedConfig.Priority is zero: after the ban chains
	// (DefaultPriority, -10), so banned sources are dropped before they are
	// logged again, and before the usual filter chains (0), so the log sees
	// probes the user's firewall then drops.
	DefaultAdvancedPriority int32 = -5
	// DefaultAdvancedPrefix is the log prefix when AdvancedConfig.Prefix is
	// empty.
	DefaultAdvancedPrefix = "SENTRY-ADV"
	// AdvancedSnaplen is how many bytes of each logged packet the rule asks
	// the kernel to copy: the IP and transport headers.
	AdvancedSnaplen = 128

	// AdvancedChain is the name of the base chain advanced mode owns.
	AdvancedChain = "advanced"
	// Sets of advanced mode: the watched ports (interval sets) and the
	// ports something listens on (see Advanced.SetListening).
	SetWatchTCP  = "watch_tcp"
	SetWatchUDP  = "watch_udp"
	SetListenTCP = "listen_tcp"
	SetListenUDP = "listen_udp"

	// maxLogPrefix is NF_LOG_PREFIXLEN less the terminating NUL.
	maxLogPrefix = 127
)

// PortRange is the inclusive range of ports Lo to Hi.
type PortRange struct{ Lo, Hi uint16 }

func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// AdvancedConfig configures advanced mode: logging, without opening a
// socket, the probes of ports nothing listens on.
type AdvancedConfig struct {
	// Table is the inet table the chain and sets live in, normally the
	// daemon's own (NFTablesConfig.Table); DefaultTable if empty. Setup
	// creates it if missing and never deletes it.
	Table string
	// TCP and UDP are the watched port ranges; empty leaves that protocol
	// unwatched (its rule stays, matching nothing). Ranges may overlap.
	TCP, UDP []PortRange
	// Exclude lists ports never logged, for either protocol.
	Exclude []uint16
	// Group is the NFLOG group the log rules send to.
	Group uint16
	// Prefix is the log prefix, at most 127 bytes; DefaultAdvancedPrefix
	// if empty.
	Prefix string
	// Priority of the advanced base chain (hook input); zero selects
	// DefaultAdvancedPriority.
	Priority int32
	// NetNSFd is an open file descriptor of the network namespace to work
	// in; 0 is the current namespace.
	NetNSFd int
}

// check validates cfg and fills in its defaults.
func (cfg *AdvancedConfig) check() error {
	if err := checkChain("advanced", &cfg.Table, &cfg.Prefix, DefaultAdvancedPrefix, &cfg.Priority, DefaultAdvancedPriority, cfg.NetNSFd); err != nil {
		return err
	}
	for _, r := range append(append([]PortRange(nil), cfg.TCP...), cfg.UDP...) {
		if r.Lo > r.Hi {
			return fmt.Errorf("advanced: port range %d-%d: start above end", r.Lo, r.Hi)
		}
	}
	return nil
}

// portSet is a set of ports as a bitmap.
type portSet [65536 / 64]uint64

func (s *portSet) add(p uint16)      { s[p/64] |= 1 << (p % 64) }
func (s *portSet) del(p uint16)      { s[p/64] &^= 1 << (p % 64) }
func (s *portSet) has(p uint16) bool { return s[p/64]&(1<<(p%64)) != 0 }

// watchSet returns the ports of ranges minus exclude.
func watchSet(ranges []PortRange, exclude []uint16) *portSet {
	s := new(portSet)
	for _, r := range ranges {
		for p := int(r.Lo); p <= int(r.Hi); p++ {
			s.add(uint16(p))
		}
	}
	for _, p := range exclude {
		s.del(p)
	}
	return s
}

// ranges returns the set as the fewest disjoint, non-adjacent ranges, in
// order: what an interval set must be given (the kernel refuses overlaps).
func (s *portSet) ranges() []PortRange {
	var out []PortRange
	for p := 0; p < 65536; p++ {
		if !s.has(uint16(p)) {
			continue
		}
		lo := p
		for p+1 < 65536 && s.has(uint16(p+1)) {
			p++
		}
		out = append(out, PortRange{Lo: uint16(lo), Hi: uint16(p)})
	}
	return out
}

// checkChain validates and defaults what advanced mode and first strike
// share: a base chain in our table that logs with a prefix. what names the
// feature in errors.
func checkChain(what string, table, prefix *string, defPrefix string, priority *int32, defPriority int32, netns int) error {
	if *table == "" {
		*table = DefaultTable
	}
	if len(*table) > 255 {
		return fmt.Errorf("%s: table name %q longer than 255 bytes", what, *table)
	}
	if *prefix == "" {
		*prefix = defPrefix
	}
	if len(*prefix) > maxLogPrefix || strings.IndexByte(*prefix, 0) >= 0 {
		return fmt.Errorf("%s: log prefix %q: want at most %d bytes and no NUL", what, *prefix, maxLogPrefix)
	}
	if *priority == 0 {
		*priority = defPriority
	}
	if netns < 0 {
		return fmt.Errorf("%s: invalid network namespace fd %d", what, netns)
	}
	return nil
}
