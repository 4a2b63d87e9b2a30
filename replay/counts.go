package replay

import "math/rand/v2"

// countTable counts by integer key: an open-addressing hash table whose
// slot holds a key and its count side by side, so that counting an event
// usually touches one cache line. Summary counting costs a hash-map
// operation per event, and Go's map costs about twice as much for this.
//
// The keys are source addresses an attacker can choose, so the hash is
// multiply-shift with a random odd multiplier: without knowing it, no set
// of addresses collides more than chance allows.
type countTable struct {
	slots []countSlot
	mult  uint64
	shift uint // 64 - log2(len(slots))
	n     int
}

// countSlot is a key and one more than its count (0 marks an empty slot,
// so a key can be held with a count of 0).
type countSlot struct {
	key, n uint64
}

func newCountTable() *countTable {
	t := &countTable{mult: rand.Uint64() | 1}
	t.resize(1 << 10)
	return t
}

func (t *countTable) len() int { return t.n }

// add adds n to key's count. A key not yet held is inserted when insert is
// set; add reports whether the key is held.
func (t *countTable) add(key, n uint64, insert bool) bool {
	mask := uint64(len(t.slots) - 1)
	for i := (key * t.mult) >> t.shift; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.n == 0 {
			if !insert {
				return false
			}
			s.key, s.n = key, n+1
			t.n++
			// Three quarters full at most: with four slots to a cache
			// line, a probe mostly stays in one.
			if 4*t.n > 3*len(t.slots) {
				t.resize(2 * len(t.slots))
			}
			return true
		}
		if s.key == key {
			s.n += n
			return true
		}
	}
}

func (t *countTable) resize(size int) {
	old := t.slots
	t.slots = make([]countSlot, size)
	// Fresh memory read first is mapped to the zero page, then faulted
	// again at the first write: write to every page first.
	for i := 0; i < size; i += 4096 / 16 {
		t.slots[i] = countSlot{}
	}
	t.shift = 64
	for s := size; s > 1; s >>= 1 {
		t.shift--
	}
	t.n = 0
	for _, s := range old {
		if s.n != 0 {
			t.add(s.key, s.n-1, true)
		}
	}
}

// all yields each key and its count.
func (t *countTable) all(yield func(key, n uint64) bool) {
	for _, s := range t.slots {
		if s.n != 0 && !yield(s.key, s.n-1) {
			return
		}
	}
}
