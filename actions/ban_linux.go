//go:build linux

package actions

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Ban drops key for timeout (at least a millisecond, the kernel's unit).
// An IPv4-mapped IPv6 key is treated as IPv4; an IPv4 key must be exactly
// TableSpec.IPv4Prefix long and is stored as its network address. On the
// fast path (the record knows nothing active that overlaps key) it is one
// batch and one flush, without reading the set. If key (or, for IPv6, a
// prefix containing it) is already banned, the ban ends with the longer of
// the remaining and the new timeout, never earlier: the set is read, and
// an extension is a delete and an add in one batch. A provisional kernel
// ban of the key (first strike's) is replaced by the daemon's, shorter or
// not. An IPv6 key around active bans replaces them in one batch, keeping
// the longest remaining time; an IPv6 range that overlaps key without
// nesting (someone else's) is an error wrapping syscall.EEXIST.
func (t *Table) Ban(key netip.Prefix, timeout time.Duration) error {
	return t.ban(key, timeout, BanComment)
}

// ban is Ban, its elements carrying comment (BanComment, or a remote
// ban's FleetComment).
func (t *Table) ban(key netip.Prefix, timeout time.Duration, comment string) error {
	key, err := normalizeKey(key)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	is4 := key.Addr().Is4()
	if is4 && key.Bits() < t.spec.IPv4Prefix && timeout >= time.Millisecond {
		return t.banWide4(key, timeout, comment) // an aggregate: wide_linux.go
	}
	if is4 && key.Bits() != t.spec.IPv4Prefix {
		return fmt.Errorf("nftables: ban %s: IPv4 bans here are /%d (TableSpec.IPv4Prefix, bans.ipv4_prefix), not /%d", key, t.spec.IPv4Prefix, key.Bits())
	}
	if timeout < time.Millisecond {
		return fmt.Errorf("nftables: ban %s: timeout %v below 1ms", key, timeout)
	}
	c, err := t.ready()
	if err != nil {
		return err
	}
	if !t.rec.synced {
		if _, err := t.loadLocked(c); err != nil {
			return err
		}
	}
	now := time.Now()
	if !t.rec.overlaps(key, now) {
		err := t.addBatch([]batchBan{{key: key, timeout: timeout, comment: comment}})
		if err == nil {
			t.rec.put(key, now, timeout)
			return nil
		}
		if errnoOf(err) != unix.EEXIST {
			return err
		}
		// Someone else's element overlaps: read the set and resolve.
	}
	slow := t.banSlow
	if is4 {
		slow = t.ban4Slow
	} else if err := t.dropStrike6(key); err != nil {
		return err
	}
	err = slow(key, timeout, comment)
	if errnoOf(err) == unix.ENOENT {
		// An element we meant to replace expired between read and write,
		// which aborted the whole batch: read again.
		err = slow(key, timeout, comment)
	}
	return err
}

func (t *Table) setFor(key netip.Prefix) *nftables.Set {
	if key.Addr().Is4() {
		return t.set4
	}
	return t.set6
}

// ban4Slow reads blocked4 and bans key without shortening its ban.
func (t *Table) ban4Slow(key netip.Prefix, timeout time.Duration, comment string) error {
	c, err := t.ready()
	if err != nil {
		return err
	}
	now := time.Now()
	els, err := t.elements(c, t.set4)
	if err != nil {
		return err
	}
	replace := false
	for _, e := range els {
		if !e.active() || e.addr != key.Addr() {
			continue
		}
		origin := t.origin4(e)
		own := origin == OriginDaemon || origin == OriginBlock || strings.HasPrefix(origin, OriginFleet)
		if origin == OriginManual || (own && e.expires >= timeout && !takesOver(comment, e.comment)) {
			// An administrator's element is left as it is: it drops the
			// key meanwhile, and once it is gone the daemon's ban goes in
			// again (the daemon re-inserts the bans it holds that the
			// kernel lacks).
			t.rec.put(key, now, left(e.timeout, e.expires))
			return nil
		}
		// A kernel ban is provisional: the daemon's decision replaces it,
		// shorter or not. Our own ban is never shortened. Re-adding alone
		// would do on this kernel for the timeout; older ones keep the old
		// timeout, and none changes the comment, unless the element is
		// deleted first.
		if own {
			timeout = max(timeout, e.expires)
		}
		replace = true
		break
	}
	k := key.Addr().AsSlice()
	err = t.commit(func() string { return fmt.Sprintf("add %s to %s", key, Set4) }, func(c *nftables.Conn) error {
		if replace {
			if err := c.SetDeleteElements(t.set4, []nftables.SetElement{{Key: k}}); err != nil {
				return fmt.Errorf("nftables: extend %s in %s: %w", key, Set4, err)
			}
		}
		return c.SetAddElements(t.set4, []nftables.SetElement{{Key: k, Timeout: timeout, Comment: comment}})
	})
	if err != nil {
		return err
	}
	t.rec.put(key, now, timeout)
	return nil
}

// banSlow reads blocked6 and bans key without shortening any active ban
// (see planBan).
func (t *Table) banSlow(key netip.Prefix, timeout time.Duration, comment string) error {
	c, err := t.ready()
	if err != nil {
		return err
	}
	s := t.setFor(key)
	now := time.Now()
	p, err := t.planIn(c, s, key, timeout, comment, true)
	if err != nil {
		return err
	}
	if p.held != nil {
		t.rec.putSpan(*p.held, now)
		return nil
	}
	if err := t.commitPlan(s, key, p); err != nil {
		return err
	}
	d := timeout
	for _, a := range p.add {
		t.rec.putSpan(span{first: a.first, last: a.last, timeout: a.timeout, expires: a.timeout}, now)
		d = max(d, a.timeout)
	}
	t.rec.put(key, now, d)
	return nil
}

// planIn reads the ranges of s, an interval set, and plans the ban of key
// there (planBan).
func (t *Table) planIn(c *nftables.Conn, s *nftables.Set, key netip.Prefix, timeout time.Duration, comment string, adminHoles bool) (banPlan, error) {
	spans, err := t.spans(c, s)
	if err != nil {
		return banPlan{}, err
	}
	p, err := planBan(spans, key.Addr(), lastAddr(key), timeout, comment, adminHoles)
	if err != nil {
		return banPlan{}, fmt.Errorf("nftables: ban %s in %s: %w: %w", key, s.Name, err, syscall.EEXIST)
	}
	return p, nil
}

// commitPlan applies p, a ban of key in s, in one batch.
func (t *Table) commitPlan(s *nftables.Set, key netip.Prefix, p banPlan) error {
	err := t.commit(func() string { return fmt.Sprintf("add %s to %s (replacing %d)", key, s.Name, len(p.del)) }, func(c *nftables.Conn) error {
		for _, sp := range p.del {
			if err := deleteSpan(c, s, sp); err != nil {
				return err
			}
		}
		var els []nftables.SetElement
		for _, a := range p.add {
			els = append(els, rangeElements(a.first, a.last, a.timeout, a.comment)...)
		}
		if len(els) == 0 {
			return nil
		}
		return c.SetAddElements(s, els)
	})
	if err != nil {
		return err
	}
	for _, sp := range p.del {
		t.rec.delSpan(sp)
	}
	return nil
}

// origin4 says who made an element of blocked4: the daemon (its comment),
// first strike (no comment, and its provisional timeout at most: the
// packet path cannot comment what it adds), or someone else.
func (t *Table) origin4(e element) string {
	if o, ok := commentOrigin(e.comment); ok {
		return o
	}
	if fs := t.spec.FirstStrike; fs != nil && e.timeout > 0 && e.timeout <= fs.Provisional {
		return OriginKernel
	}
	return OriginManual
}

// deleteSpan queues the deletion of both elements of sp, as the kernel
// stored them.
func deleteSpan(c *nftables.Conn, s *nftables.Set, sp span) error {
	els := []nftables.SetElement{{Key: sp.first.AsSlice()}}
	if end := sp.last.Next(); end.IsValid() {
		els = append(els, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
	}
	if err := c.SetDeleteElements(s, els); err != nil {
		return fmt.Errorf("nftables: delete %s from %s: %w", sp, s.Name, err)
	}
	return nil
}

// dropStrike6 removes first strike's provisional IPv6 ban of key's prefix,
// if there is one, in a batch of its own.
func (t *Table) dropStrike6(key netip.Prefix) error {
	return t.commit(func() string { return fmt.Sprintf("replace %s's prefix in %s", key, SetStrike6) }, func(c *nftables.Conn) error {
		return t.queueDropStrikes6(c, []netip.Prefix{key})
	})
}

// queueDropStrikes6 adds to c's batch the removal of first strike's
// provisional IPv6 bans of keys' prefixes: an add (a no-op when present)
// and a delete of each prefix once, which succeed whether or not the
// element existed.
func (t *Table) queueDropStrikes6(c *nftables.Conn, keys []netip.Prefix) error {
	var adds, dels []nftables.SetElement
	seen := map[netip.Prefix]bool{}
	for _, key := range keys {
		p, err := key.Addr().Prefix(t.spec.IPv6Prefix)
		if err != nil {
			return fmt.Errorf("nftables: ban %s: %w", key, err)
		}
		if !seen[p] {
			seen[p] = true
			k := p.Addr().AsSlice()
			adds = append(adds, nftables.SetElement{Key: k, Timeout: time.Second})
			dels = append(dels, nftables.SetElement{Key: k})
		}
	}
	if err := c.SetAddElements(t.strk6, adds); err != nil {
		return fmt.Errorf("nftables: replace %d prefixes in %s: %w", len(adds), SetStrike6, err)
	}
	if err := c.SetDeleteElements(t.strk6, dels); err != nil {
		return fmt.Errorf("nftables: replace %d prefixes in %s: %w", len(dels), SetStrike6, err)
	}
	return nil
}

// Unblock removes every active ban that overlaps key: the ban equal to key,
// a ban containing it (a single address inside a banned /64, or inside a
// banned IPv4 network when IPv4Prefix is below 32, lifts that ban) and bans
// inside it, first strike's included. Elements the daemon did not make
// (OriginManual) are left as they are. It returns the removed prefixes, or
// an error wrapping ErrNotBanned if nothing matched.
func (t *Table) Unblock(key netip.Prefix) ([]netip.Prefix, error) {
	return t.unblock(key, false)
}

// Pardon is Unblock for a pardon that is not this host operator's (the
// fleet's): it also leaves the manual bans made with `block` (OriginBlock)
// as they are, in the same batch, rather than lifting them to be put back.
func (t *Table) Pardon(key netip.Prefix) ([]netip.Prefix, error) {
	return t.unblock(key, true)
}

// unblock is Unblock, leaving OriginBlock elements too when keepBlocks.
func (t *Table) unblock(key netip.Prefix, keepBlocks bool) ([]netip.Prefix, error) {
	key, err := normalizeKey(key)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	removed, err := t.unblockOnce(key, keepBlocks)
	if errnoOf(err) == unix.ENOENT {
		// A ban expired between read and delete, aborting the batch.
		removed, err = t.unblockOnce(key, keepBlocks)
	}
	return removed, err
}

func (t *Table) unblockOnce(key netip.Prefix, keepBlocks bool) ([]netip.Prefix, error) {
	c, err := t.ready()
	if err != nil {
		return nil, err
	}
	s := t.setFor(key)
	var removed []netip.Prefix
	var del4, delStrike []nftables.SetElement
	var spans6 []span
	var kept []netip.Prefix // elements the daemon did not make: left
	if key.Addr().Is4() {
		els, err := t.elements(c, s)
		if err != nil {
			return nil, err
		}
		for _, e := range els {
			if k := key4(e.addr, t.spec.IPv4Prefix); e.active() && !e.end && k.Overlaps(key) {
				if o := t.origin4(e); o == OriginManual || keepBlocks && o == OriginBlock {
					kept = append(kept, k)
					continue
				}
				del4 = append(del4, nftables.SetElement{Key: e.addr.AsSlice()})
				removed = append(removed, k)
			}
		}
	} else {
		spans, err := t.spans(c, s)
		if err != nil {
			return nil, err
		}
		first, last := key.Addr(), lastAddr(key)
		for _, sp := range spans {
			if !sp.overlaps(first, last) {
				continue
			}
			if sp.kept(keepBlocks) {
				kept = append(kept, rangePrefixes(sp.first, sp.last)...)
				continue
			}
			spans6 = append(spans6, sp)
			removed = append(removed, rangePrefixes(sp.first, sp.last)...)
		}
		strikes, err := t.strikes6(c)
		if err != nil {
			return nil, err
		}
		for _, b := range strikes {
			if b.Key.Overlaps(key) {
				delStrike = append(delStrike, nftables.SetElement{Key: b.Key.Addr().AsSlice()})
				removed = append(removed, b.Key)
			}
		}
	}
	if key.Addr().Is4() {
		wide, err := t.unblockWide4(key, keepBlocks) // wide_linux.go
		if err != nil {
			return nil, err
		}
		removed = append(removed, wide...)
	}
	slices.SortFunc(removed, comparePrefix)
	removed = slices.Compact(removed)
	if len(removed) == 0 {
		if len(kept) > 0 {
			what := "elements the daemon did not make"
			if keepBlocks {
				what = "manual bans and elements the daemon did not make"
			}
			return nil, fmt.Errorf("nftables: unblock %s: only %s (%v), left as they are: %w", key, what, kept, ErrNotBanned)
		}
		return nil, fmt.Errorf("nftables: unblock %s: %w", key, ErrNotBanned)
	}
	err = t.commit(func() string { return fmt.Sprintf("unblock %s from %s", key, s.Name) }, func(c *nftables.Conn) error {
		if len(del4) > 0 {
			if err := c.SetDeleteElements(s, del4); err != nil {
				return err
			}
		}
		for _, sp := range spans6 {
			if err := deleteSpan(c, s, sp); err != nil {
				return err
			}
		}
		if len(delStrike) > 0 {
			return c.SetDeleteElements(t.strk6, delStrike)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, p := range removed {
		t.rec.del(p)
	}
	return removed, nil
}

// List returns the active bans, IPv4 first, each family in address order,
// first strike's IPv6 bans that no daemon ban covers after the others, each
// with its origin (elements the daemon did not make are OriginManual).
// Expired leftovers and interval-end elements are skipped. An IPv6 range
// that is not a prefix (someone else's) is listed as the prefixes that
// cover it. List also refreshes Ban's record of what is banned.
func (t *Table) List() ([]BanEntry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.ready()
	if err != nil {
		return nil, err
	}
	return t.loadLocked(c)
}

// loadLocked reads the ban sets, replaces the record with what they hold
// and returns the active bans as List does.
func (t *Table) loadLocked(c *nftables.Conn) ([]BanEntry, error) {
	now := time.Now()
	t.rec.reset()
	els, err := t.elements(c, t.set4)
	if err != nil {
		return nil, err
	}
	var out []BanEntry
	for _, e := range els {
		if !e.active() || !e.addr.Is4() {
			continue
		}
		b := BanEntry{Key: key4(e.addr, t.spec.IPv4Prefix), Timeout: e.timeout, Expires: e.expires, Origin: t.origin4(e)}
		if b.Timeout == 0 {
			b.Expires = 0
		}
		out = append(out, b)
	}
	wide, _, err := t.wide4Bans(c) // wide_linux.go
	if err != nil {
		return nil, err
	}
	out = append(out, wide...)
	slices.SortFunc(out, func(x, y BanEntry) int { return comparePrefix(x.Key, y.Key) })
	spans, err := t.spans(c, t.set6)
	if err != nil {
		return nil, err
	}
	n6 := len(out)
	for _, sp := range spans {
		origin, ok := commentOrigin(sp.comment)
		if !ok {
			// No comment of ours: an administrator's range (a provisional
			// IPv6 ban is in strike6, never here).
			origin = OriginManual
		}
		for _, p := range rangePrefixes(sp.first, sp.last) {
			out = append(out, BanEntry{Key: p, Timeout: sp.timeout, Expires: sp.expires, Origin: origin})
		}
	}
	for _, b := range out {
		t.rec.put(b.Key, now, left(b.Timeout, b.Expires))
	}
	// First strike's IPv6 bans, unless a daemon ban covers them. They are
	// not recorded: the record is of blocked6, and a ban of the same key
	// goes to blocked6 all the same.
	strikes, err := t.strikes6(c)
	if err != nil {
		return nil, err
	}
	for _, b := range strikes {
		if !slices.ContainsFunc(spans, func(sp span) bool { return sp.contains(b.Key.Addr(), lastAddr(b.Key)) }) {
			out = append(out, b)
		}
	}
	slices.SortStableFunc(out[n6:], func(x, y BanEntry) int { return comparePrefix(x.Key, y.Key) })
	t.rec.synced = true
	return out, nil
}

// strikes6 reads strike6: first strike's active IPv6 bans, as prefixes of
// IPv6Prefix bits. A missing set (an earlier version's table) is empty.
func (t *Table) strikes6(c *nftables.Conn) ([]BanEntry, error) {
	els, err := t.elements(c, t.strk6)
	if errnoOf(err) == unix.ENOENT {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []BanEntry
	for _, e := range els {
		if !e.active() || !e.addr.Is6() {
			continue
		}
		out = append(out, BanEntry{Key: netip.PrefixFrom(e.addr, t.spec.IPv6Prefix).Masked(), Timeout: e.timeout, Expires: e.expires, Origin: OriginKernel})
	}
	slices.SortFunc(out, func(x, y BanEntry) int { return comparePrefix(x.Key, y.Key) })
	return out, nil
}

// elements reads the address set s.
func (t *Table) elements(c *nftables.Conn, s *nftables.Set) ([]element, error) {
	els, err := c.GetSetElements(s)
	if err != nil {
		return nil, t.readError("read set "+s.Name, err)
	}
	return fromKernel(els), nil
}

// spans reads the interval set s and pairs its elements into active
// ranges.
func (t *Table) spans(c *nftables.Conn, s *nftables.Set) ([]span, error) {
	els, err := t.elements(c, s)
	if err != nil {
		return nil, err
	}
	return spansFromElements(els), nil
}

// Counters returns the drop rules' packet and byte counters summed over the
// ban chains; zero without ManageChain.
func (t *Table) Counters() (Counters, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var cs Counters
	c, err := t.ready()
	if err != nil {
		return cs, err
	}
	if !t.spec.ManageChain {
		return cs, nil
	}
	for _, h := range t.spec.Hooks {
		rules, err := c.GetRules(t.table, &nftables.Chain{Name: h, Table: t.table})
		if err != nil {
			return Counters{}, t.readError("read rules of chain "+h, err)
		}
		for _, r := range rules {
			set, cnt := ruleParts(r)
			if cnt == nil {
				continue
			}
			switch set {
			case Set4:
				cs.Packets4 += cnt.Packets
				cs.Bytes4 += cnt.Bytes
			case Set6, SetStrike6:
				cs.Packets6 += cnt.Packets
				cs.Bytes6 += cnt.Bytes
			}
		}
	}
	return cs, nil
}
