//go:build linux

package actions

import (
	"net/netip"
	"time"
)

// BanManual is Ban for a manual ban (`sentry-nflog block`): the element
// carries BlockComment, so List reports its Origin as OriginBlock, and the
// daemon never takes it for one of its offences nor for an
// administrator's element. Like Ban it never shortens a ban in place and
// replaces a provisional one; unlike Ban it takes over an element of the
// daemon's for the same key (keeping the longer time), so that what an
// operator blocked is listed as such.
func (t *Table) BanManual(key netip.Prefix, timeout time.Duration) error {
	return t.ban(key, timeout, BlockComment)
}
