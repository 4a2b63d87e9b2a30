package replay

import (
	"math"
	"math/rand/v2"
)

// countTable counts by integer key: an open-addressing hash table whose
// slot holds a key and its count side by side, so that counting an event
// usually touches one cache line. Summary counting costs a hash-map
// operation per event, and Go's map costs about twice as much for this.
// A slot holds a 32-bit count, so that an IPv4 key's slot is 8 bytes and
// the table of a large replay's sources stays in cache longer; the rare
// count beyond that goes on in big.
//
// The keys are source addresses an attacker can choose, so the hash is
// multiply-shift with a random odd multiplier: without knowing it, no set
// of addresses collides more than chance allows.
type countTable[K uint32 | uint64] struct {
	slots []countSlot[K]
	big   map[K]uint64
	mult  uint64
	shift uint // 64 - log2(len(slots))
	n     int
}

// countSlot is a key and one more than its count, up to maxSlotCount (0
// marks an empty slot, so a key can be held with a count of 0).
type countSlot[K uint32 | uint64] struct {
	key K
	n   uint32
}

// maxSlotCount is the most a slot counts; the rest of a count is in big.
const maxSlotCount = math.MaxUint32 - 1

func newCountTable[K uint32 | uint64]() *countTable[K] {
	t := &countTable[K]{mult: rand.Uint64() | 1}
	t.resize(1 << 10)
	return t
}

func (t *countTable[K]) len() int { return t.n }

// add adds n to key's count. A key not yet held is inserted when insert is
// set; add reports whether the key is held.
func (t *countTable[K]) add(key K, n uint64, insert bool) bool {
	mask := uint64(len(t.slots) - 1)
	for i := (uint64(key) * t.mult) >> t.shift; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.n == 0 {
			if !insert {
				return false
			}
			s.key = key
			t.n++
			t.count(s, n)
			// Three quarters full at most: with four slots to a cache
			// line, a probe mostly stays in one.
			if 4*t.n > 3*len(t.slots) {
				t.resize(2 * len(t.slots))
			}
			return true
		}
		if s.key == key {
			t.count(s, n)
			return true
		}
	}
}

// count adds n to the count of the key in slot s.
func (t *countTable[K]) count(s *countSlot[K], n uint64) {
	c := uint64(s.n) + n // one more than the count
	if s.n == 0 {
		c++
	}
	if c > maxSlotCount+1 {
		if t.big == nil {
			t.big = map[K]uint64{}
		}
		t.big[s.key] += c - (maxSlotCount + 1)
		c = maxSlotCount + 1
	}
	s.n = uint32(c)
}

func (t *countTable[K]) resize(size int) {
	old := t.slots
	t.slots = make([]countSlot[K], size)
	// Fresh memory read first is mapped to the zero page, then faulted
	// again at the first write: write to every page first.
	for i := 0; i < size; i += 4096 / 16 {
		t.slots[i] = countSlot[K]{}
	}
	t.shift = 64
	for s := size; s > 1; s >>= 1 {
		t.shift--
	}
	mask := uint64(size - 1)
	for _, s := range old {
		if s.n == 0 {
			continue
		}
		i := (uint64(s.key) * t.mult) >> t.shift
		for t.slots[i].n != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// all yields each key and its count.
func (t *countTable[K]) all(yield func(key K, n uint64) bool) {
	for _, s := range t.slots {
		if s.n != 0 && !yield(s.key, uint64(s.n-1)+t.big[s.key]) {
			return
		}
	}
}
