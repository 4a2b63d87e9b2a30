//go:build linux

package actions

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The first strike's sets at run time: forgetting a pardoned source's
// counts, and the counting sets that fill up (a flood of forged sources),
// read and emptied while the daemon runs.

// Forget deletes first strike's counting state of the sources in key (an
// unblocked source): its probed ports, buckets and hot marks, so that
// stale state does not strike it again at its next probe. It finds the
// counting sets in the kernel by name (fs<i>_probes4 and the like), so it
// needs no first strike in Spec: a Table opened from the configuration
// alone can call it. It reads each set (bounded by SetSize) and deletes in
// one batch; nothing to delete, or no table, is not an error.
func (t *Table) Forget(key netip.Prefix) error {
	key, err := normalizeKey(key)
	if err != nil {
		return fmt.Errorf("first strike: forget: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	err = t.forgetOnce(key)
	if errnoOf(err) == unix.ENOENT {
		// An element timed out between read and delete: read again.
		err = t.forgetOnce(key)
	}
	return err
}

func (t *Table) forgetOnce(key netip.Prefix) error {
	c, err := t.ready()
	if err != nil {
		return err
	}
	sets, _, err := t.readSets(c)
	if err != nil {
		return err
	}
	fam, alen, bits := "4", 4, t.spec.IPv4Prefix
	if key.Addr().Is6() {
		fam, alen, bits = "6", 16, t.spec.IPv6Prefix
	}
	type deletion struct {
		s   *nftables.Set
		els []nftables.SetElement
	}
	var dels []deletion
	n := 0
	for _, s := range sets {
		if m := countingSet.FindStringSubmatch(s.Name); m == nil || m[1] != fam {
			continue
		}
		els, err := c.GetSetElements(s)
		if errnoOf(err) == unix.ENOENT {
			continue // deleted since
		}
		if err != nil {
			return t.readError("read set "+s.Name, err)
		}
		var del []nftables.SetElement
		for _, e := range els {
			if len(e.Key) < alen {
				continue
			}
			// Keys are the sources' network addresses at the key length
			// (the probes sets' with a port after).
			if a, ok := netip.AddrFromSlice(e.Key[:alen]); ok && netip.PrefixFrom(a, bits).Masked().Overlaps(key) {
				del = append(del, nftables.SetElement{Key: e.Key})
			}
		}
		if len(del) > 0 {
			dels = append(dels, deletion{s, del})
			n += len(del)
		}
	}
	if n == 0 {
		return nil
	}
	return t.commit(func() string { return fmt.Sprintf("forget %s (%d elements)", key, n) }, func(c *nftables.Conn) error {
		for _, d := range dels {
			if err := c.SetDeleteElements(d.s, d.els); err != nil {
				return fmt.Errorf("first strike: forget %s in %s: %w", key, d.s.Name, err)
			}
		}
		return nil
	})
}

// StrikeFull returns the counter of each counting set's full rules: the
// probes dropped because the set was full. It reads the rule chains only,
// never a set's elements, so it is cheap enough to call every second. No
// first strike is an empty map.
func (t *Table) StrikeFull() (map[string]uint64, error) {
	if t.view != nil {
		// A read the daemon makes every second: over the view's
		// connection, so it never holds up a Ban.
		return t.view.StrikeFull()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.ready()
	if err != nil {
		return nil, err
	}
	return t.strikeFull(c)
}

func (t *Table) strikeFull(c *nftables.Conn) (map[string]uint64, error) {
	out := map[string]uint64{}
	// The rule chains as the kernel has them: a Table opened from the
	// configuration alone (`list`) knows no first strike of its own.
	all, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, t.readError("list chains", err)
	}
	for _, ch := range all {
		if ch.Table == nil || ch.Table.Name != t.spec.Table || !strings.HasPrefix(ch.Name, "fs") || !ruleChain.MatchString(ch.Name) {
			continue
		}
		rs, err := c.GetRules(t.table, &nftables.Chain{Name: ch.Name, Table: t.table})
		if errnoOf(err) == unix.ENOENT {
			continue // deleted since
		}
		if err != nil {
			return nil, t.readError("read rules of chain "+ch.Name, err)
		}
		for _, r := range rs {
			var set string
			var n uint64
			isFull := false
			for _, e := range r.Exprs {
				switch e := e.(type) {
				case *expr.Lookup:
					if e.Invert && countingSet.MatchString(e.SetName) {
						set = e.SetName
					}
				case *expr.Counter:
					n = e.Packets
				case *expr.Log:
					isFull = strings.HasSuffix(strings.TrimRight(string(e.Data), "\x00"), fullSuffix)
				}
			}
			if isFull && set != "" {
				out[set] += n
			}
		}
	}
	return out, nil
}

// EvictFull empties the counting sets named, with the other sets of the
// same rule and family (its per-source buckets and hot marks): what a
// full set would otherwise hold until its elements time out, refusing
// every new source meanwhile. The sources being counted start over, which
// can only make first strike later, never stricter. It returns the sets
// emptied.
func (t *Table) EvictFull(sets []string) ([]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.ready()
	if err != nil {
		return nil, err
	}
	have, _, err := t.readSets(c)
	if err != nil {
		return nil, err
	}
	groups := map[string]bool{} // "fs0_" + "4"
	for _, name := range sets {
		if m := countingSet.FindStringSubmatch(name); m != nil {
			groups[name[:strings.IndexByte(name, '_')+1]+m[1]] = true
		}
	}
	var flush []*nftables.Set
	var names []string
	for _, s := range have {
		m := countingSet.FindStringSubmatch(s.Name)
		if m == nil || !groups[s.Name[:strings.IndexByte(s.Name, '_')+1]+m[1]] {
			continue
		}
		flush = append(flush, s)
		names = append(names, s.Name)
	}
	if len(flush) == 0 {
		return nil, nil
	}
	err = t.commit(func() string { return "empty full sets " + strings.Join(names, ",") }, func(c *nftables.Conn) error {
		for _, s := range flush {
			c.FlushSet(s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// StrikeSets reads every counting set: its elements (a dump of up to
// SetSize elements each: for `list`, not for a loop) and its full rules'
// counter.
func (t *Table) StrikeSets() ([]StrikeSet, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.ready()
	if err != nil {
		return nil, err
	}
	sets, _, err := t.readSets(c)
	if err != nil {
		return nil, err
	}
	full, err := t.strikeFull(c)
	if err != nil {
		return nil, err
	}
	var out []StrikeSet
	for _, s := range sets {
		if !countingSet.MatchString(s.Name) {
			continue
		}
		els, err := c.GetSetElements(s)
		if errnoOf(err) == unix.ENOENT {
			continue
		}
		if err != nil {
			return nil, t.readError("read set "+s.Name, err)
		}
		out = append(out, StrikeSet{Name: s.Name, Elements: len(els), Size: int(s.Size), FullDrops: full[s.Name]})
	}
	slices.SortFunc(out, func(a, b StrikeSet) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
