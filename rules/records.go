package rules

import "unsafe"

// records is a slab of records without pointers, each a header H and then
// buffers, one after the other: an item's state comes into the cache as
// adjacent lines fetched together, not as a line from each of several
// slabs, each fetched after the one that indexes it. Items seen again
// after a while (a source returning, a wide prefix) are out of cache, and
// the engine's time goes into those fetches.
//
// The slab is words, which the garbage collector does not look into: H
// must hold no pointers, and align to 8 bytes at most
// (TestRecordHeadersHoldNoPointers).
type records[H any] struct {
	p pages[uint64]
}

// headWords is the header's size in words.
func headWords[H any]() int {
	var h H
	return int((unsafe.Sizeof(h) + 7) / 8)
}

// newRecords returns a slab of records of a header H and words more words,
// which start at headWords[H]().
func newRecords[H any](words int) records[H] {
	return records[H]{p: newPages[uint64](headWords[H]() + words)}
}

// add returns the index of a new record, zeroed.
func (r *records[H]) add() int32 { return r.p.add() }

// len is the number of records.
func (r *records[H]) len() int32 { return r.p.n }

// at returns record i's header and its words.
func (r *records[H]) at(i int32) (*H, []uint64) {
	w := r.p.item(i)
	return (*H)(unsafe.Pointer(&w[0])), w
}

// head returns record i's header.
func (r *records[H]) head(i int32) *H {
	h, _ := r.at(i)
	return h
}

// wordsFor returns how many words hold n values of size bytes each.
func wordsFor(n, size int) int { return (n*size + 7) / 8 }

// u16s returns the n uint16 values at word off of rec.
func u16s(rec []uint64, off, n int) []uint16 {
	if n == 0 {
		return nil
	}
	_ = rec[off+wordsFor(n, 2)-1]
	return unsafe.Slice((*uint16)(unsafe.Pointer(&rec[off])), n)
}

// u32s returns the n uint32 values at word off of rec.
func u32s(rec []uint64, off, n int) []uint32 {
	if n == 0 {
		return nil
	}
	_ = rec[off+wordsFor(n, 4)-1]
	return unsafe.Slice((*uint32)(unsafe.Pointer(&rec[off])), n)
}

// i64s returns the n int64 values at word off of rec.
func i64s(rec []uint64, off, n int) []int64 {
	if n == 0 {
		return nil
	}
	_ = rec[off+n-1]
	return unsafe.Slice((*int64)(unsafe.Pointer(&rec[off])), n)
}
