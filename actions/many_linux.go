//go:build linux

package actions

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
)

// BanMany applies bans as Ban applies each, in fewer transactions, and
// returns Ban's error for each (nil when applied): the bans a restart puts
// back into a flushed table come by the thousand. A transaction of one
// ban costs 33 us for IPv4, and more for IPv6 the larger its set (on
// average 89 us a ban while it grows to 3,000 elements, 321-362 us while
// it grows to 20,000: the kernel walks an interval set at every commit).
// The bans of Ban's fast path (a key at IPv4Prefix, or any IPv6 key,
// that the record knows nothing active to overlap, nor a ban before it in
// bans) go together, up to maxBanBatch a transaction, with the elements
// Ban would add. Every other ban, and every ban of a transaction the
// kernel refuses (an element someone else made overlaps), is applied by
// Ban, in bans' order, after them.
func (t *Table) BanMany(bans []KeyBan) []error {
	items := make([]batchBan, len(bans))
	for i, b := range bans {
		items[i] = batchBan{key: b.Key, timeout: b.Timeout, comment: BanComment}
	}
	return t.banMany(items, func(i int) error { return t.Ban(bans[i].Key, bans[i].Timeout) })
}

// banMany is BanMany and BanFromMany: items' bans of the fast path in
// batches, the others, and those of a refused batch, by alone(i). An item
// without a comment goes to alone.
func (t *Table) banMany(items []batchBan, alone func(i int) error) []error {
	errs := make([]error, len(items))
	var rest []int
	t.mu.Lock()
	var batch []batchBan
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := t.addBatch(batch); err != nil {
			// The record has the batch's keys: read the sets again.
			t.rec.reset()
			for _, b := range batch {
				rest = append(rest, b.i)
			}
		}
		batch = batch[:0]
	}
	now := time.Now()
	for i, b := range items {
		key, err := normalizeKey(b.key)
		if err != nil || b.comment == "" || b.timeout < time.Millisecond ||
			key.Addr().Is4() && key.Bits() != t.spec.IPv4Prefix || !t.recordReady() || t.rec.overlaps(key, now) {
			rest = append(rest, i)
			continue
		}
		t.rec.put(key, now, b.timeout)
		batch = append(batch, batchBan{i: i, key: key, timeout: b.timeout, comment: b.comment})
		if len(batch) == maxBanBatch {
			flush()
		}
	}
	flush()
	t.mu.Unlock()
	slices.Sort(rest)
	for _, i := range rest {
		errs[i] = alone(i)
	}
	return errs
}

// maxBanBatch bounds the bans of one transaction of banMany: three
// messages for the batch's IPv4 bans, three and two elements for each
// IPv6 ban, well within a netlink socket's buffers.
const maxBanBatch = 256

// batchBan is a ban of banMany: its index in bans, its key (normalized on
// the fast path) and its element's comment.
type batchBan struct {
	i       int
	key     netip.Prefix
	timeout time.Duration
	comment string
}

// recordReady reports whether the record knows what the sets hold,
// reading them if it does not; the caller holds t.mu.
func (t *Table) recordReady() bool {
	if t.rec.synced {
		return true
	}
	c, err := t.ready()
	if err != nil {
		return false
	}
	_, err = t.loadLocked(c)
	return err == nil
}

// addBatch adds the bans of batch, none of which overlaps anything
// active, in one transaction: Ban's fast path, for one ban or many. An
// IPv4 key may hold a kernel ban (first strike's, without our comment),
// which a plain add would keep as it is, comment and all, only changing
// its timeout: it is added (a no-op if present), deleted and added again,
// so that the element is ours whatever was there. A provisional kernel
// ban of an IPv6 key's prefix gives way to the daemon's decision, which
// may be shorter, or narrower (a single address where the /64 holds a
// host we never ban).
func (t *Table) addBatch(batch []batchBan) error {
	var plain4, keys4, full4, elems6 []nftables.SetElement
	var keys6 []netip.Prefix
	for _, b := range batch {
		if b.key.Addr().Is4() {
			k := b.key.Addr().AsSlice()
			plain4 = append(plain4, nftables.SetElement{Key: k, Timeout: b.timeout})
			keys4 = append(keys4, nftables.SetElement{Key: k})
			full4 = append(full4, nftables.SetElement{Key: k, Timeout: b.timeout, Comment: b.comment})
			continue
		}
		keys6 = append(keys6, b.key)
		elems6 = append(elems6, rangeElements(b.key.Addr(), lastAddr(b.key), b.timeout, b.comment)...)
	}
	op := func() string {
		if len(batch) == 1 {
			return fmt.Sprintf("add %s to %s", batch[0].key, t.setFor(batch[0].key).Name)
		}
		return fmt.Sprintf("add %d bans", len(batch))
	}
	return t.commit(op, func(c *nftables.Conn) error {
		if len(plain4) > 0 {
			if err := c.SetAddElements(t.set4, plain4); err != nil {
				return err
			}
			if err := c.SetDeleteElements(t.set4, keys4); err != nil {
				return err
			}
			if err := c.SetAddElements(t.set4, full4); err != nil {
				return err
			}
		}
		if len(keys6) > 0 {
			if err := t.queueDropStrikes6(c, keys6); err != nil {
				return err
			}
			return c.SetAddElements(t.set6, elems6)
		}
		return nil
	})
}
