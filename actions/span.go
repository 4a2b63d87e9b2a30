package actions

import (
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
