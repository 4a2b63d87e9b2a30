//go:build linux

package actions

import (
	"net/netip"
	"time"
)

// BanFrom is Ban for a ban received from the fleet: the element carries
// FleetComment(origin), so List reports its Origin as "fleet:<origin>"
// and the daemon never takes it for one of its own offences. Like Ban it
// never shortens a ban in place and replaces a provisional one.
func (t *Table) BanFrom(key netip.Prefix, timeout time.Duration, origin string) error {
	if err := checkOrigin(origin); err != nil {
		return err
	}
	return t.ban(key, timeout, FleetComment(origin))
}
