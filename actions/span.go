package actions

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// element is a set element of an address set as the kernel lists it,
// decoded: the pure code below works on these, the netlink code converts.
type element struct {
	addr    netip.Addr
	end     bool          // an interval set's end element (the first address after a range)
	timeout time.Duration // zero: no timeout
	expires time.Duration // time left
	comment string
}

// active reports whether e is in force: without timeout, or not yet expired
// (the kernel lists expired elements until its garbage collection runs).
func (e element) active() bool {
	return e.timeout == 0 || e.expires > 0
}

// lastAddr returns the last address of p (p must be masked).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}

// rangePrefixes splits [first, last] into the fewest prefixes covering it.
func rangePrefixes(first, last netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for first.IsValid() && first.Compare(last) <= 0 {
		p := netip.PrefixFrom(first, first.BitLen())
		for bits := 0; bits <= first.BitLen(); bits++ {
			c := netip.PrefixFrom(first, bits)
			if c.Masked().Addr() == first && lastAddr(c).Compare(last) <= 0 {
				p = c
				break
			}
		}
		out = append(out, p)
		first = lastAddr(p).Next()
	}
	return out
}

// span is one active range of an interval set.
type span struct {
	first, last netip.Addr
	timeout     time.Duration // zero: the element has no timeout
	expires     time.Duration
	// comment is the start element's; manual says it is none of the
	// daemon's (BanComment or a fleet ban's), so an administrator made the
	// range: it is never changed or removed.
	comment string
	manual  bool
}

func (s span) permanent() bool { return s.timeout == 0 }

// block reports whether s is a manual ban made with `block`.
func (s span) block() bool { return s.comment == BlockComment }

// kept reports whether an unblock leaves s: an administrator's range
// always, a manual ban when the unblock keeps them (Table.Pardon).
func (s span) kept(keepBlocks bool) bool { return s.manual || keepBlocks && s.block() }

func (s span) overlaps(first, last netip.Addr) bool {
	return s.first.Compare(last) <= 0 && first.Compare(s.last) <= 0
}

// contains reports whether s covers all of [first, last].
func (s span) contains(first, last netip.Addr) bool {
	return s.first.Compare(first) <= 0 && last.Compare(s.last) <= 0
}

// within reports whether s lies inside [first, last].
func (s span) within(first, last netip.Addr) bool {
	return first.Compare(s.first) <= 0 && s.last.Compare(last) <= 0
}

func (s span) String() string {
	if ps := rangePrefixes(s.first, s.last); len(ps) == 1 {
		return ps[0].String()
	}
	return s.first.String() + "-" + s.last.String()
}

// spansFromElements pairs each start element with the end element after it.
// End elements without a start (left behind by an expired start until the
// kernel's garbage collection runs) and expired starts are skipped; a start
// with no end runs to the end of the address space.
func spansFromElements(els []element) []span {
	list := slices.Clone(els)
	// In address order; at one address the end of the range below comes
	// before the start of the range above.
	slices.SortFunc(list, func(x, y element) int {
		if c := x.addr.Compare(y.addr); c != 0 {
			return c
		}
		switch {
		case x.end == y.end:
			return 0
		case x.end:
			return -1
		}
		return 1
	})
	var out []span
	var open *element
	emit := func(last netip.Addr) {
		if open.timeout != 0 && open.expires == 0 {
			return // expired, not yet collected
		}
		out = append(out, span{first: open.addr, last: last, timeout: open.timeout, expires: open.expires, comment: open.comment, manual: !ownComment(open.comment)})
	}
	for i := range list {
		e := &list[i]
		if e.end {
			if open != nil && e.addr.Compare(open.addr) > 0 {
				emit(e.addr.Prev())
			}
			open = nil
			continue
		}
		open = e
	}
	if open != nil {
		emit(lastAddr(netip.PrefixFrom(open.addr, 0).Masked()))
	}
	return out
}

// addrRange is the addresses first to last, both included.
type addrRange struct{ first, last netip.Addr }

// mergePrefixes turns prefixes into disjoint, non-adjacent ranges per
// family, in address order: an interval set refuses overlapping elements,
// and adjacent ones would be two where one does.
func mergePrefixes(ps []netip.Prefix) (v4, v6 []addrRange) {
	for _, p := range ps {
		r := addrRange{p.Addr(), lastAddr(p)}
		if p.Addr().Is4() {
			v4 = append(v4, r)
		} else {
			v6 = append(v6, r)
		}
	}
	return mergeRanges(v4), mergeRanges(v6)
}

func mergeRanges(rs []addrRange) []addrRange {
	slices.SortFunc(rs, func(a, b addrRange) int { return a.first.Compare(b.first) })
	var merged []addrRange
	for _, r := range rs {
		if n := len(merged); n > 0 {
			m := &merged[n-1]
			if next := m.last.Next(); !next.IsValid() || r.first.Compare(next) <= 0 {
				if r.last.Compare(m.last) > 0 {
					m.last = r.last
				}
				continue
			}
		}
		merged = append(merged, r)
	}
	return merged
}

// rangeBan is one range a ban adds to an interval set.
type rangeBan struct {
	first, last netip.Addr
	timeout     time.Duration
	comment     string
}

// banPlan is what a ban of a range does to an interval set: the spans it
// deletes and the ranges it adds, in one batch. held is the span that
// holds the range already, as long or longer, when it does nothing.
type banPlan struct {
	del  []span
	add  []rangeBan
	held *span
}

// errOverlap is planBan's error for a span it may not touch that overlaps
// the range without containing it or lying inside it (or, with
// adminHoles false, an administrator's span that overlaps it at all).
type errOverlap struct {
	sp    span
	admin bool
}

func (e errOverlap) Error() string {
	if e.admin {
		return fmt.Sprintf("overlaps %s, which sentry-nflog did not make", e.sp)
	}
	return fmt.Sprintf("overlaps range %s, which is not a prefix of it", e.sp)
}

// planBan plans the ban of [first, last] for timeout under comment in an
// interval set whose active ranges are spans, without shortening any ban
// and without making any range last longer than its own bans ask:
//
//   - a range that holds the whole key as long or longer leaves it as it is;
//   - a range of the same owner (the daemon's and the fleet's are one
//     owner, a manual ban of `block` another) is extended or taken in;
//   - a range of the other owner is never made to last longer than it
//     asks: one inside the key that outlives it stays as it is, and the key
//     covers the rest around it (one that ends sooner is taken in); a key
//     inside a manual ban that ends sooner, or a manual ban inside a range
//     of the daemon's, splits that range around the key, which takes the
//     longer of the two times;
//   - an administrator's range or a permanent one is never changed: one
//     inside the key is left around (adminHoles) or refused.
//
// Merging a manual ban with the daemon's would make a blocked /26 and a
// 1-hour /24 aggregate around it one /24 banned for the block's 30 days,
// listed as the daemon's.
func planBan(spans []span, first, last netip.Addr, timeout time.Duration, comment string, adminHoles bool) (banPlan, error) {
	var p banPlan
	block := comment == BlockComment
	var holes []span
	d := timeout
	for i := range spans {
		sp := spans[i]
		if !sp.overlaps(first, last) {
			continue
		}
		if sp.manual && !adminHoles {
			return banPlan{}, errOverlap{sp: sp, admin: true}
		}
		if sp.contains(first, last) {
			exact := sp.first == first && sp.last == last
			switch {
			case sp.manual || sp.permanent():
				p.held = &spans[i]
				return p, nil
			case exact:
				if sp.expires >= timeout && !takesOver(comment, sp.comment) {
					p.held = &spans[i]
					return p, nil
				}
				p.del = []span{sp}
				p.add = []rangeBan{{first, last, max(timeout, sp.expires), comment}}
			case block == sp.block():
				if sp.expires >= timeout {
					p.held = &spans[i]
					return p, nil
				}
				p.del = []span{sp}
				p.add = []rangeBan{{sp.first, sp.last, timeout, comment}}
			default:
				if !block && sp.expires >= timeout {
					p.held = &spans[i]
					return p, nil
				}
				p.del = []span{sp}
				for _, g := range gaps(sp.first, sp.last, []span{{first: first, last: last}}) {
					p.add = append(p.add, rangeBan{g.first, g.last, sp.expires, sp.comment})
				}
				p.add = append(p.add, rangeBan{first, last, max(timeout, sp.expires), comment})
			}
			return p, nil
		}
		if !sp.within(first, last) {
			return banPlan{}, errOverlap{sp: sp}
		}
		if sp.manual || sp.permanent() || block != sp.block() && sp.expires > timeout {
			holes = append(holes, sp)
			continue
		}
		p.del = append(p.del, sp)
		d = max(d, sp.expires)
	}
	for _, g := range gaps(first, last, holes) {
		p.add = append(p.add, rangeBan{g.first, g.last, d, comment})
	}
	return p, nil
}

// gaps returns the parts of [first, last] outside the spans holes, which
// lie inside it.
func gaps(first, last netip.Addr, holes []span) []addrRange {
	slices.SortFunc(holes, func(a, b span) int { return a.first.Compare(b.first) })
	var out []addrRange
	at := first
	for _, h := range holes {
		if !at.IsValid() {
			break
		}
		if h.first.Compare(at) > 0 {
			out = append(out, addrRange{at, h.first.Prev()})
		}
		if h.last.Compare(at) >= 0 {
			at = h.last.Next()
		}
	}
	if at.IsValid() && at.Compare(last) <= 0 {
		out = append(out, addrRange{at, last})
	}
	return out
}

// Coverage is the addresses some prefixes cover, as disjoint ranges: it
// answers whether every address of a key is banned, though no one ban
// holds it all (a range split around a ban of another owner's, see
// planBan, is covered by its pieces and that ban together).
type Coverage struct {
	v4, v6 []addrRange
}

// NewCoverage returns the coverage of ps.
func NewCoverage(ps []netip.Prefix) *Coverage {
	v4, v6 := mergePrefixes(ps)
	return &Coverage{v4: v4, v6: v6}
}

// Covers reports whether every address of key is covered.
func (c *Coverage) Covers(key netip.Prefix) bool {
	rs := c.v6
	if key.Addr().Is4() {
		rs = c.v4
	}
	key = key.Masked()
	first := key.Addr()
	// The last range that starts at or before first.
	i, found := slices.BinarySearchFunc(rs, first, func(r addrRange, a netip.Addr) int { return r.first.Compare(a) })
	if !found {
		i--
	}
	return i >= 0 && rs[i].last.Compare(lastAddr(key)) >= 0
}
