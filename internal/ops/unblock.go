package ops

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/daemon"
)

// Unblock is `unblock`: for each key it lifts the manual bans it overlaps
// (their record first, so the daemon does not put them back), removes its
// bans from the table, forgets first strike's counters of it and records
// a pardon the running daemon applies; with toFleet it then publishes a
// pardon every host of the fleet applies. A key banned nowhere is
// ErrFailed, unless the fleet is told (it may hold it elsewhere).
func (c *Command) Unblock(ctx context.Context, cfg *config.Config, keys []netip.Prefix, toFleet bool) error {
	t, err := c.OpenTable(cfg)
	if err != nil {
		return c.fail(err)
	}
	defer t.Close()
	if toFleet && cfg.Fleet == nil {
		c.errorf("--fleet: %s has no fleet section", cfg.File)
		return ErrUsage
	}
	at := time.Now()
	var failed error
	for _, k := range keys {
		// The record first: the daemon must not put back what this lifts.
		lifted, err := daemon.RemoveBlocks(cfg.StateDir, k, at)
		if err != nil {
			c.errorf("manual bans in %s: %v", cfg.StateDir, err)
			return ErrFailed
		}
		for _, b := range lifted {
			if b.Key != k {
				// The whole manual ban goes: an IPv4 prefix is banned as
				// its keys, which k alone would not lift.
				if _, err := t.Unblock(b.Key); err != nil && !notBanned(err) {
					c.errorf("%v", err)
				}
			}
			c.printf("%s: manual ban %s lifted", k, b.Key)
		}
		removed, err := t.Unblock(k)
		switch {
		case notBanned(err) && len(lifted) > 0:
			// Lifted above, or not in the kernel (no table yet).
		case notBanned(err):
			c.printf("%s: not banned", k)
			if !toFleet { // the fleet may hold it elsewhere
				failed = ErrFailed
			}
		case err != nil:
			return c.fail(err)
		default:
			var s []string
			for _, r := range removed {
				s = append(s, r.String())
			}
			c.printf("%s: unblocked %s", k, strings.Join(s, ", "))
		}
		// Stale first-strike counters must not strike the source again
		// before the daemon has read the pardon.
		if err := t.Forget(k); err != nil && !errors.Is(err, syscall.ENOENT) {
			c.errorf("first strike: %v", err)
		}
		// Pardon even what was not banned: the daemon may hold evidence
		// about to cross a threshold, or a rate-limited decision.
		if err := daemon.AppendPardon(cfg.StateDir, k, at); err != nil {
			c.errorf("cannot tell the daemon (%v): it may ban %s again on the same evidence", err, k)
			failed = ErrFailed
		}
	}
	if toFleet {
		if err := c.pardonFleet(ctx, cfg, keys, at); err != nil {
			return err
		}
	}
	return failed
}

// notBanned reports whether the table's Unblock found nothing to lift:
// the key is not banned, or the table does not exist yet.
func notBanned(err error) bool {
	return errors.Is(err, actions.ErrNotBanned) || errors.Is(err, syscall.ENOENT)
}
