//go:build linux

package actions

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// SetWide4 holds IPv4 bans wider than TableSpec.IPv4Prefix: the aggregates
// the engine decides on (a /24 whose addresses take turns to probe).
// blocked4 is a plain set of keys of one length, so they live apart, in an
// interval set, with a drop rule of their own in the ban chains.
const SetWide4 = "wide4"

func newWide4(t *nftables.Table) *nftables.Set {
	return &nftables.Set{Table: t, Name: SetWide4, KeyType: nftables.TypeIPAddr, Interval: true, HasTimeout: true}
}

// banWide4 bans key, an IPv4 prefix shorter than IPv4Prefix, in wide4,
// never shortening a ban of it or around it (see planBan). Called with
// t.mu held.
func (t *Table) banWide4(key netip.Prefix, timeout time.Duration, comment string) error {
	c, err := t.ready()
	if err != nil {
		return err
	}
	s := newWide4(t.table)
	// An administrator's range is never changed, nor banned around.
	p, err := t.planIn(c, s, key, timeout, comment, false)
	if err != nil {
		return err
	}
	if p.held != nil {
		return nil
	}
	return t.commitPlan(s, key, p)
}

// wide4Bans returns the active bans of wide4; a missing set (an earlier
// version's table) is none. Called with t.mu held.
func (t *Table) wide4Bans(c *nftables.Conn) ([]BanEntry, []span, error) {
	spans, err := t.spans(c, newWide4(t.table))
	if errnoOf(err) == unix.ENOENT {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var out []BanEntry
	for _, sp := range spans {
		origin, ok := commentOrigin(sp.comment)
		if !ok {
			origin = OriginManual
		}
		for _, p := range rangePrefixes(sp.first, sp.last) {
			out = append(out, BanEntry{Key: p, Timeout: sp.timeout, Expires: sp.expires, Origin: origin})
		}
	}
	return out, spans, nil
}

// unblockWide4 deletes the wide4 bans overlapping key, an IPv4 prefix,
// but an administrator's and, when keepBlocks, the manual bans made with
// `block`, and returns them. Called with t.mu held.
func (t *Table) unblockWide4(key netip.Prefix, keepBlocks bool) ([]netip.Prefix, error) {
	c, err := t.ready()
	if err != nil {
		return nil, err
	}
	_, spans, err := t.wide4Bans(c)
	if err != nil {
		return nil, err
	}
	var del []span
	var removed []netip.Prefix
	for _, sp := range spans {
		if sp.overlaps(key.Addr(), lastAddr(key)) && !sp.kept(keepBlocks) {
			del = append(del, sp)
			removed = append(removed, rangePrefixes(sp.first, sp.last)...)
		}
	}
	if len(del) == 0 {
		return nil, nil
	}
	s := newWide4(t.table)
	err = t.commit(func() string { return fmt.Sprintf("unblock %s from %s", key, SetWide4) }, func(c *nftables.Conn) error {
		for _, sp := range del {
			if err := deleteSpan(c, s, sp); err != nil {
				return err
			}
		}
		return nil
	})
	return removed, err
}
