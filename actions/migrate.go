package actions

import (
	"maps"
	"net/netip"
	"slices"
	"time"
)

// Carrying blocked4 across versions and configurations. An earlier version
// made blocked4 an interval set, and a later one a plain set without flags
// dynamic; the IPv4 key length (TableSpec.IPv4Prefix) may change between
// runs. Apply replaces or realigns the set in the batch that writes the
// rest of the table, and these functions say with which elements, so that
// no ban is lost or released early that the new set can hold.

// key4 is the ban key a blocked4 element stands for at bits.
func key4(a netip.Addr, bits int) netip.Prefix {
	return netip.PrefixFrom(a, bits).Masked()
}

// keep4 collects blocked4 elements to write: per address the longest
// remaining time, zero standing for an element without timeout.
type keep4 map[netip.Addr]time.Duration

func (k keep4) merge(a netip.Addr, timeout, left time.Duration) {
	if timeout == 0 {
		k[a] = 0
		return
	}
	if d, ok := k[a]; ok && (d == 0 || d >= left) {
		return
	}
	k[a] = left
}

// addrs returns the addresses in order.
func (k keep4) addrs() []netip.Addr {
	return slices.SortedFunc(maps.Keys(k), netip.Addr.Compare)
}

// migrate4 turns the active ranges of an old interval blocked4 into
// elements of the plain one: each range that is a single prefix at least
// bits long becomes its network address at bits. Wider or irregular ranges
// cannot be held and are dropped.
func migrate4(spans []span, bits int) keep4 {
	k := make(keep4)
	for _, sp := range spans {
		if ps := rangePrefixes(sp.first, sp.last); len(ps) == 1 && ps[0].Bits() >= bits {
			k.merge(key4(sp.first, bits).Addr(), sp.timeout, sp.expires)
		}
	}
	return k
}

// carry4 keeps the active elements of an old plain blocked4 (without flags
// dynamic), each as its key's network address at bits.
func carry4(els []element, bits int) keep4 {
	k := make(keep4)
	for _, e := range els {
		if e.active() && e.addr.Is4() {
			k.merge(key4(e.addr, bits).Addr(), e.timeout, e.expires)
		}
	}
	return k
}

// realign4 moves active elements that are not network addresses at bits
// (left by a run with a longer prefix) onto the one that is: every element
// of such a network is deleted and one added with the longest remaining
// time, so nothing is released early. A lengthened prefix cannot be told
// from the elements: each wider ban then covers only its network address
// until it expires.
func realign4(els []element, bits int) (del []netip.Addr, add keep4) {
	moved := make(map[netip.Addr]bool)
	for _, e := range els {
		if e.active() && e.addr.Is4() && key4(e.addr, bits).Addr() != e.addr {
			moved[key4(e.addr, bits).Addr()] = true
		}
	}
	if len(moved) == 0 {
		return nil, nil
	}
	add = make(keep4)
	for _, e := range els {
		if !e.active() || !e.addr.Is4() || !moved[key4(e.addr, bits).Addr()] {
			continue
		}
		del = append(del, e.addr)
		add.merge(key4(e.addr, bits).Addr(), e.timeout, e.expires)
	}
	return del, add
}
