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

// BanFromMany applies bans as BanFrom applies each, in fewer transactions
// (see BanMany), and returns BanFrom's error for each (nil when applied):
// a host catching up with its fleet receives bans by the thousand.
func (t *Table) BanFromMany(bans []RemoteBan) []error {
	items := make([]batchBan, len(bans))
	for i, b := range bans {
		items[i] = batchBan{key: b.Key, timeout: b.Timeout, comment: FleetComment(b.Origin)}
		if checkOrigin(b.Origin) != nil {
			items[i].comment = "" // BanFrom refuses it, alone
		}
	}
	return t.banMany(items, func(i int) error { return t.BanFrom(bans[i].Key, bans[i].Timeout, bans[i].Origin) })
}
