package actions

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Defaults and names of the table.
const (
	// DefaultTable is the table name used when TableSpec.Table is empty.
	DefaultTable = "sentry"
	// DefaultPriority is the ban chains' priority when TableSpec.Priority
	// is zero: just before the usual filter chains (priority 0), so a ban
	// drops before another table accepts.
	DefaultPriority int32 = -10
	// Set4 and Set6 are the names of the sets holding IPv4 and IPv6 bans.
	Set4 = "blocked4"
	Set6 = "blocked6"
)

// Hook names accepted in TableSpec.Hooks. Each ban chain is named after
// its hook.
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

// BanEntry is one active ban in the kernel.
type BanEntry struct {
	// Key is the banned prefix: IPv4 keys are TableSpec.IPv4Prefix long
	// (/32 for a single address), IPv6 keys any length (/128 for a single
	// address).
	Key netip.Prefix
	// Timeout is the ban's full duration as last set; zero for an element
	// without timeout (someone else's permanent entry).
	Timeout time.Duration
	// Expires is the time left; zero when Timeout is zero.
	Expires time.Duration
	// Origin is OriginDaemon for the daemon's bans (elements with
	// BanComment), "fleet:<origin>" for a ban received from the fleet
	// (BanFrom), OriginKernel for a provisional ban made by first strike
	// (an element of strike6, or of blocked4 without a comment whose
	// timeout is at most first strike's provisional one), OriginBlock for
	// a manual ban made with `sentry-nflog block` (BanManual) and
	// OriginManual for any other element (an administrator's, with or
	// without a timeout), which the daemon never changes or removes.
	Origin string
}

// OriginManual is the Origin of an element the daemon did not make.
const OriginManual = "manual"

// Counters are the drop rules' counters, summed over the ban chains.
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

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
