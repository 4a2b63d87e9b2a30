package rules

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
)

// words is an address, or a prefix's masked address, as two machine
// words: the engine's tables key by it rather than by netip.Prefix, whose
// zone handle makes hashing and comparing it several times slower and
// makes every table holding one a thing the garbage collector must scan.
// An IPv4 address is in lo's low 32 bits, hi 0; the family and the prefix
// length are not in it: a table holds prefixes of one family and length.
type words struct{ hi, lo uint64 }

// addrWords returns a's words and whether a is IPv6 (IPv4-mapped IPv6
// addresses included, as netip.Addr.Is6 says).
func addrWords(a netip.Addr) (words, bool) {
	if a.Is4() {
		b := a.As4()
		return words{lo: uint64(binary.BigEndian.Uint32(b[:]))}, false
	}
	b := a.As16()
	return words{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}, true
}

// mask keeps the top bits of w, an address of the given family.
func (w words) mask(bits int, v6 bool) words {
	if !v6 {
		return words{lo: w.lo & uint64(^uint32(0)<<(32-bits))}
	}
	if bits >= 64 {
		return words{hi: w.hi, lo: w.lo & (^uint64(0) << (128 - bits))}
	}
	return words{hi: w.hi & (^uint64(0) << (64 - bits))}
}

// addr returns w as an address of the given family.
func (w words) addr(v6 bool) netip.Addr {
	if !v6 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(w.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], w.hi)
	binary.BigEndian.PutUint64(b[8:], w.lo)
	return netip.AddrFrom16(b)
}

// prefixWords returns p's masked address, family and length; ok is false
// for an invalid prefix.
func prefixWords(p netip.Prefix) (w words, v6 bool, bits int, ok bool) {
	if !p.IsValid() {
		return words{}, false, 0, false
	}
	bits = p.Bits()
	w, v6 = addrWords(p.Addr())
	return w.mask(bits, v6), v6, bits, true
}

// table is an open-addressing hash table from words to V, probed
// linearly and kept at most half full, so that a miss (the common answer
// to "is this key banned?") ends within a few slots. It holds no pointers
// when V holds none.
//
// The keys are addresses an attacker chooses, so the hash is
// multiply-shift with random odd multipliers: without knowing them, no set
// of addresses collides more than chance allows.
type table[V any] struct {
	slots  []slot[V]
	n      int
	m1, m2 uint64
	shift  uint8
}

type slot[V any] struct {
	k    words
	full bool
	v    V
}

// minTable is a new table's size, in slots.
const minTable = 16

func newTable[V any]() *table[V] {
	t := &table[V]{m1: rand.Uint64() | 1, m2: rand.Uint64() | 1}
	t.resize(minTable)
	return t
}

func (t *table[V]) home(k words) uint64 { return (k.hi*t.m1 + k.lo*t.m2) >> t.shift }

// get returns k's value, or nil. The pointer is valid until the next put
// or delete.
func (t *table[V]) get(k words) *V {
	mask := uint64(len(t.slots) - 1)
	for i := t.home(k); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if !s.full {
			return nil
		}
		if s.k == k {
			return &s.v
		}
	}
}

// put returns k's value, adding a zero one when k is not held; added says
// which. The pointer is valid until the next put or delete.
func (t *table[V]) put(k words) (v *V, added bool) {
	if 2*(t.n+1) > len(t.slots) {
		t.resize(2 * len(t.slots))
	}
	mask := uint64(len(t.slots) - 1)
	for i := t.home(k); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if !s.full {
			s.k, s.full = k, true
			t.n++
			return &s.v, true
		}
		if s.k == k {
			return &s.v, false
		}
	}
}

// delete removes k, if held.
func (t *table[V]) delete(k words) {
	mask := uint64(len(t.slots) - 1)
	for i := t.home(k); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if !s.full {
			return
		}
		if s.k == k {
			t.deleteAt(i)
			return
		}
	}
}

// deleteAt empties slot i and moves back the entries after it that
// probed past it, so that no lookup stops early at the hole (no
// tombstones: the table never fills with them).
func (t *table[V]) deleteAt(i uint64) {
	mask := uint64(len(t.slots) - 1)
	for j := (i + 1) & mask; t.slots[j].full; j = (j + 1) & mask {
		// The entry at j may fill the hole at i unless its home lies
		// cyclically in (i, j].
		h := t.home(t.slots[j].k)
		if (j-h)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = slot[V]{}
	t.n--
}

// deleteFunc removes every entry for which del returns true. del may be
// called twice on an entry it kept, so it must answer the same both times.
func (t *table[V]) deleteFunc(del func(k words, v *V) bool) {
	for i := 0; i < len(t.slots); {
		s := &t.slots[i]
		if s.full && del(s.k, &s.v) {
			// Another entry may have moved into slot i: look again.
			t.deleteAt(uint64(i))
			continue
		}
		i++
	}
}

// all yields every entry; the table must not change meanwhile, except
// through the values.
func (t *table[V]) all(yield func(k words, v *V) bool) {
	for i := range t.slots {
		if s := &t.slots[i]; s.full && !yield(s.k, &s.v) {
			return
		}
	}
}

func (t *table[V]) resize(size int) {
	old := t.slots
	t.slots = make([]slot[V], size)
	t.shift = 64
	for s := size; s > 1; s >>= 1 {
		t.shift--
	}
	mask := uint64(size - 1)
	for i := range old {
		if !old[i].full {
			continue
		}
		j := t.home(old[i].k)
		for t.slots[j].full {
			j = (j + 1) & mask
		}
		t.slots[j] = old[i]
	}
}

// prefixMap maps prefixes of any family and length to V: a table per
// family and length, made when first needed, so that looking up a prefix
// of a length that holds nothing costs no probe at all.
type prefixMap[V any] struct {
	// tabs holds IPv4 lengths 0-32, then IPv6 lengths 0-128.
	tabs [33 + 129]*table[V]
	n    int
}

func tabIndex(v6 bool, bits int) int {
	if v6 {
		return 33 + bits
	}
	return bits
}

// lookup returns the value of the prefix w/bits of the family, or nil.
func (m *prefixMap[V]) lookup(w words, v6 bool, bits int) *V {
	t := m.tabs[tabIndex(v6, bits)]
	if t == nil || t.n == 0 {
		return nil
	}
	return t.get(w)
}

// get returns p's value, or nil.
func (m *prefixMap[V]) get(p netip.Prefix) *V {
	w, v6, bits, ok := prefixWords(p)
	if !ok {
		return nil
	}
	return m.lookup(w, v6, bits)
}

// put returns p's value, adding a zero one when p is not held (nil for an
// invalid prefix).
func (m *prefixMap[V]) put(p netip.Prefix) *V {
	w, v6, bits, ok := prefixWords(p)
	if !ok {
		return nil
	}
	i := tabIndex(v6, bits)
	if m.tabs[i] == nil {
		m.tabs[i] = newTable[V]()
	}
	v, added := m.tabs[i].put(w)
	if added {
		m.n++
	}
	return v
}

// delete removes p, if held.
func (m *prefixMap[V]) delete(p netip.Prefix) {
	w, v6, bits, ok := prefixWords(p)
	if !ok {
		return
	}
	if t := m.tabs[tabIndex(v6, bits)]; t != nil {
		n := t.n
		t.delete(w)
		m.n -= n - t.n
	}
}

func (m *prefixMap[V]) len() int { return m.n }

// all yields every prefix and its value; the map must not change
// meanwhile, except through the values.
func (m *prefixMap[V]) all(yield func(p netip.Prefix, v *V) bool) {
	for i, t := range m.tabs {
		if t == nil {
			continue
		}
		v6, bits := i >= 33, i
		if v6 {
			bits -= 33
		}
		for k, v := range t.all {
			if !yield(netip.PrefixFrom(k.addr(v6), bits), v) {
				return
			}
		}
	}
}

// deleteFunc removes every prefix for which del returns true (see
// table.deleteFunc).
func (m *prefixMap[V]) deleteFunc(del func(v *V) bool) {
	for _, t := range m.tabs {
		if t == nil || t.n == 0 {
			continue
		}
		n := t.n
		t.deleteFunc(func(_ words, v *V) bool { return del(v) })
		m.n -= n - t.n
	}
}

// pages is a slab of items, each per elements of T, in pages of pageItems
// items: it grows a page at a time, without copying what it holds and
// without leaving a grown-out copy for the garbage collector, so that the
// engine's memory follows the sources it tracks, not twice that.
type pages[T any] struct {
	p   [][]T
	per int
	n   int32
}

// pageItems is the number of items in a page (a power of two).
const pageItems = 256

func newPages[T any](per int) pages[T] { return pages[T]{per: per} }

// add returns the index of a new item, zeroed.
func (s *pages[T]) add() int32 {
	if int(s.n) == len(s.p)*pageItems {
		s.p = append(s.p, make([]T, pageItems*s.per))
	}
	s.n++
	return s.n - 1
}

// item returns item i's elements.
func (s *pages[T]) item(i int32) []T {
	u := uint32(i)
	o := int(u%pageItems) * s.per
	return s.p[u/pageItems][o : o+s.per : o+s.per]
}

// at returns item i of a slab of one element per item.
func (s *pages[T]) at(i int32) *T {
	u := uint32(i)
	return &s.p[u/pageItems][u%pageItems]
}
