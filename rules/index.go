package rules

import "math/rand/v2"

// sourceIndex finds a tracked source's slot by its key, for one address
// family. It is a table like table (open addressing, probed linearly, at
// most half full, multiply-shift hashing with random multipliers), whose
// entries hold only the slot and the top 32 bits of the key's hash: the
// key itself is the slot's, compared when the hash bits agree. An entry is
// 8 bytes, so the index of 65,536 sources is 1 MiB rather than 3, and a
// lookup of a source, most often out of cache, fetches less.
type sourceIndex struct {
	ents   []indexEntry
	n      int
	m1, m2 uint64
	shift  uint8 // 64 - log2(len(ents)), at least 32
}

type indexEntry struct {
	slot int32  // one more than the slot; 0 marks an empty entry
	tag  uint32 // the hash's top bits: the entry's home is tag >> (shift-32)
}

func newSourceIndex() *sourceIndex {
	x := &sourceIndex{m1: rand.Uint64() | 1, m2: rand.Uint64() | 1}
	x.resize(minTable)
	return x
}

func (x *sourceIndex) hash(k words) uint32 { return uint32((k.hi*x.m1 + k.lo*x.m2) >> 32) }

func (x *sourceIndex) home(tag uint32) uint64 { return uint64(tag) >> (x.shift - 32) }

// get returns the slot of the source whose key is k, or none.
func (x *sourceIndex) get(k words, slots *pages[source]) int32 {
	tag := x.hash(k)
	mask := uint64(len(x.ents) - 1)
	for i := x.home(tag); ; i = (i + 1) & mask {
		e := x.ents[i]
		if e.slot == 0 {
			return none
		}
		if e.tag == tag && slots.at(e.slot-1).key == k {
			return e.slot - 1
		}
	}
}

// put adds slot, whose key k is not in the index.
func (x *sourceIndex) put(k words, slot int32) {
	if 2*(x.n+1) > len(x.ents) {
		x.resize(2 * len(x.ents))
	}
	x.insert(indexEntry{slot + 1, x.hash(k)})
	x.n++
}

func (x *sourceIndex) insert(e indexEntry) {
	mask := uint64(len(x.ents) - 1)
	i := x.home(e.tag)
	for x.ents[i].slot != 0 {
		i = (i + 1) & mask
	}
	x.ents[i] = e
}

// delete removes slot, whose key is k.
func (x *sourceIndex) delete(k words, slot int32) {
	mask := uint64(len(x.ents) - 1)
	for i := x.home(x.hash(k)); x.ents[i].slot != 0; i = (i + 1) & mask {
		if x.ents[i].slot == slot+1 {
			x.deleteAt(i)
			return
		}
	}
}

// deleteAt empties entry i and moves back the entries after it that
// probed past it (see table.deleteAt).
func (x *sourceIndex) deleteAt(i uint64) {
	mask := uint64(len(x.ents) - 1)
	for j := (i + 1) & mask; x.ents[j].slot != 0; j = (j + 1) & mask {
		if h := x.home(x.ents[j].tag); (j-h)&mask >= (j-i)&mask {
			x.ents[i] = x.ents[j]
			i = j
		}
	}
	x.ents[i] = indexEntry{}
	x.n--
}

// all yields every slot in the index; it must not change meanwhile.
func (x *sourceIndex) all(yield func(slot int32) bool) {
	for _, e := range x.ents {
		if e.slot != 0 && !yield(e.slot-1) {
			return
		}
	}
}

func (x *sourceIndex) resize(size int) {
	old := x.ents
	x.ents = make([]indexEntry, size)
	x.shift = 64
	for s := size; s > 1; s >>= 1 {
		x.shift--
	}
	for _, e := range old {
		if e.slot != 0 {
			x.insert(e)
		}
	}
}
