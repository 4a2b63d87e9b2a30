package actions

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sentry-nflog/sentry-nflog/rules"
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
	// ports something listens on (TableSpec.Listen, Table.SetListening),
	// which first strike reads too.
	SetWatchTCP  = "watch_tcp"
	SetWatchUDP  = "watch_udp"
	SetListenTCP = "listen_tcp"
	SetListenUDP = "listen_udp"

	// maxLogPrefix is NF_LOG_PREFIXLEN less the terminating NUL.
	maxLogPrefix = 127
)

// AdvancedConfig configures advanced mode (TableSpec.Advanced): logging,
// without opening a socket, the probes of ports nothing listens on.
type AdvancedConfig struct {
	// TCP and UDP are the watched port ranges; empty leaves that protocol
	// unwatched (its rule stays, matching nothing). Ranges may overlap.
	TCP, UDP []rules.PortRange
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
}

// clone returns a copy of cfg sharing no slice with it.
func (cfg *AdvancedConfig) clone() AdvancedConfig {
	out := *cfg
	out.TCP, out.UDP, out.Exclude = slices.Clone(cfg.TCP), slices.Clone(cfg.UDP), slices.Clone(cfg.Exclude)
	return out
}

// check validates cfg and fills in its defaults.
func (cfg *AdvancedConfig) check() error {
	if err := checkLog("advanced", &cfg.Prefix, DefaultAdvancedPrefix, &cfg.Priority, DefaultAdvancedPriority); err != nil {
		return err
	}
	for _, r := range slices.Concat(cfg.TCP, cfg.UDP) {
		if r.Lo > r.Hi {
			return fmt.Errorf("advanced: port range %d-%d: start above end", r.Lo, r.Hi)
		}
	}
	return nil
}

// watchSet returns the ports of ranges minus exclude.
func watchSet(ranges []rules.PortRange, exclude []uint16) *rules.PortSet {
	s := rules.NewPortSet(ranges...)
	for _, p := range exclude {
		s.Remove(p)
	}
	return s
}

// checkLog validates and defaults what advanced mode and first strike
// share: a base chain that logs with a prefix. what names the feature in
// errors.
func checkLog(what string, prefix *string, defPrefix string, priority *int32, defPriority int32) error {
	if *prefix == "" {
		*prefix = defPrefix
	}
	if len(*prefix) > maxLogPrefix || strings.IndexByte(*prefix, 0) >= 0 {
		return fmt.Errorf("%s: log prefix %q: want at most %d bytes and no NUL", what, *prefix, maxLogPrefix)
	}
	if *priority == 0 {
		*priority = defPriority
	}
	return nil
}
