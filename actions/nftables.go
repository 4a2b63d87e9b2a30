package actions

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Defaults for NFTablesConfig.
const (
	// DefaultTable is the table name used when NFTablesConfig.Table is empty.
	DefaultTable = "sentry"
	// DefaultPriority is the base chain priority used when
	// NFTablesConfig.Priority is zero: just before the usual filter chains
	// (priority 0), so a ban drops before another table accepts.
	DefaultPriority int32 = -10
	// Set4 and Set6 are the names of the sets holding IPv4 and IPv6 bans.
	Set4 = "blocked4"
	Set6 = "blocked6"
)

// Hook names accepted in NFTablesConfig.Hooks. Each managed base chain is
// named after its hook.
const (
	HookInput   = "input"
	HookForward = "forward"
)

// CheckHook returns an error unless name is a hook the ban chains can use.
func CheckHook(name string) error {
	switch name {
	case HookInput, HookForward:
		return nil
	}
	return fmt.Errorf("unknown hook %q (want %s or %s)", name, HookInput, HookForward)
}

// ErrNotBanned is returned (wrapped) by Unblock when no active ban matches.
var ErrNotBanned = errors.New("not banned")

// NFTablesConfig says which table to own and how to hook it.
type NFTablesConfig struct {
	// Table is the name of the inet table NFTables owns; DefaultTable if
	// empty.
	Table string
	// Hooks lists the hooks to drop at, "input" and/or "forward"; input
	// only if empty. Used only with ManageChain.
	Hooks []string
	// Priority of the managed base chains; zero selects DefaultPriority
	// (priority 0 itself cannot be expressed: use -1 or 1).
	Priority int32
	// ManageChain makes Setup create and own one base chain per hook with
	// the two drop rules. Without it Setup creates only the sets, and the
	// user's own ruleset refers to them.
	ManageChain bool
	// NetNSFd is an open file descriptor of the network namespace to work
	// in (for example of /run/netns/NAME); 0 is the current namespace.
	NetNSFd int
	// IPv4Prefix is the length of every IPv4 ban key, 1 to 32; zero
	// selects 32. blocked4 is a plain set of addresses, so a shorter key
	// is stored as its network address and the IPv4 rule masks the source
	// before the lookup (`ip saddr & 255.255.255.0 @blocked4` for 24). It
	// must match the rules engine's bans.ipv4_prefix: Ban refuses other
	// lengths.
	IPv4Prefix int
	// IPv6Prefix is the length of the IPv6 keys first strike bans (in
	// strike6), 1 to 128; zero selects 64. The drop rule masks the source
	// to it before looking it up in strike6. It must equal
	// FirstStrikeConfig.IPv6Prefix. Ban takes IPv6 keys of any length.
	IPv6Prefix int
	// StrikeTimeout is the longest timeout first strike gives its bans
	// (FirstStrikeConfig.Provisional), zero without first strike. Ban
	// replaces a kernel ban of the same key; a ban shorter than this
	// reads the set first, so that it never shortens a kernel ban.
	StrikeTimeout time.Duration
}

// BanEntry is one active ban in the kernel.
type BanEntry struct {
	// Key is the banned prefix: IPv4 keys are NFTablesConfig.IPv4Prefix
	// long (/32 for a single address), IPv6 keys any length (/128 for a
	// single address).
	Key netip.Prefix
	// Timeout is the ban's full duration as last set; zero for an element
	// without timeout (someone else's permanent entry).
	Timeout time.Duration
	// Expires is the time left; zero when Timeout is zero.
	Expires time.Duration
	// Origin is OriginKernel for a provisional ban made by first strike
	// (an element of blocked4 without BanComment, or of strike6), and
	// OriginDaemon otherwise.
	Origin string
}

// Counters are the drop rules' counters, summed over the managed chains.
type Counters struct {
	// Packets4 and Bytes4 count traffic dropped by the IPv4 rules.
	Packets4, Bytes4 uint64
	// Packets6 and Bytes6 count traffic dropped by the IPv6 rules.
	Packets6, Bytes6 uint64
}

// normalizeKey masks key, turns an IPv4-mapped key into IPv4 and drops a
// zone.
func normalizeKey(key netip.Prefix) (netip.Prefix, error) {
	if !key.IsValid() {
		return netip.Prefix{}, fmt.Errorf("nftables: invalid key %v", key)
	}
	a, bits := key.Addr().WithZone(""), key.Bits()
	if a.Is4In6() {
		if bits < 96 {
			return netip.Prefix{}, fmt.Errorf("nftables: key %s: IPv4-mapped prefix shorter than /96", key)
		}
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}
