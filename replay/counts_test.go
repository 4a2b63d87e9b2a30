package replay

import (
	"math/rand/v2"
	"testing"
)

// The count table counts as a map does, through growth, inserts refused
// and counts past what a slot holds.
func TestCountTable(t *testing.T) {
	tb := newCountTable[uint32]()
	ref := map[uint32]uint64{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		k := uint32(r.IntN(50000))
		n := uint64(r.IntN(2))
		insert := r.IntN(10) != 0
		_, had := ref[k]
		if held := tb.add(k, n, insert); held != (had || insert) {
			t.Fatalf("add(%d, %d, %v) = %v, held before: %v", k, n, insert, held, had)
		}
		if had || insert {
			ref[k] += n
		}
	}
	// Past 32 bits, and past them again.
	for _, n := range []uint64{1 << 32, 5, 1 << 33} {
		tb.add(7, n, true)
		ref[7] += n
	}
	if tb.len() != len(ref) {
		t.Fatalf("%d keys, want %d", tb.len(), len(ref))
	}
	got := map[uint32]uint64{}
	for k, n := range tb.all {
		got[k] = n
	}
	for k, n := range ref {
		if got[k] != n {
			t.Errorf("key %d: %d, want %d", k, got[k], n)
		}
	}
}
