package rules

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// The table answers as a Go map does through any sequence of puts,
// deletes and sweeps, with keys crowded into few home slots so that
// deletions move entries back across probe chains and the table's end.
func TestTableAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, keySpace := range []int{8, 64, 5000} {
		tb := newTable[int]()
		ref := map[words]int{}
		key := func() words {
			// Both words vary, to exercise the two-word hash.
			k := r.IntN(keySpace)
			return words{hi: uint64(k%3) << 60, lo: uint64(k)}
		}
		for step := 0; step < 50000; step++ {
			switch op := r.IntN(10); {
			case op < 5:
				k := key()
				v, added := tb.put(k)
				if _, had := ref[k]; had == added {
					t.Fatalf("step %d: put(%v) added %v, map had it: %v", step, k, added, had)
				}
				*v = step
				ref[k] = step
			case op < 8:
				k := key()
				tb.delete(k)
				delete(ref, k)
			case op < 9:
				if step%97 == 0 {
					cut := r.IntN(step + 1)
					tb.deleteFunc(func(_ words, v *int) bool { return *v < cut })
					for k, v := range ref {
						if v < cut {
							delete(ref, k)
						}
					}
				}
			default:
				k := key()
				v := tb.get(k)
				want, ok := ref[k]
				if (v != nil) != ok || ok && *v != want {
					t.Fatalf("step %d: get(%v) = %v, map has %d %v", step, k, v, want, ok)
				}
			}
			if tb.n != len(ref) {
				t.Fatalf("step %d: %d entries, map has %d", step, tb.n, len(ref))
			}
		}
		// Every entry is found, and all yields exactly the map.
		got := map[words]int{}
		for k, v := range tb.all {
			got[k] = *v
		}
		for k, v := range ref {
			if p := tb.get(k); p == nil || *p != v || got[k] != v {
				t.Fatalf("key space %d: %v lost", keySpace, k)
			}
		}
		if len(got) != len(ref) {
			t.Errorf("key space %d: all yields %d entries, want %d", keySpace, len(got), len(ref))
		}
	}
}

// A prefixMap keeps prefixes of different families and lengths apart,
// masks them, and turns them back into the same netip.Prefix.
func TestPrefixMap(t *testing.T) {
	var m prefixMap[int]
	ps := []string{"203.0.113.7/32", "203.0.113.0/24", "0.0.0.0/0", "2001:db8::/64", "2001:db8::/48",
		"2001:db8::7/128", "::/0", "::ffff:203.0.113.7/128", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "2001:db8:0:0:8000::/65"}
	for i, s := range ps {
		*m.put(netip.MustParsePrefix(s)) = i + 1
	}
	if m.len() != len(ps) {
		t.Fatalf("%d prefixes, want %d", m.len(), len(ps))
	}
	for i, s := range ps {
		if v := m.get(netip.MustParsePrefix(s)); v == nil || *v != i+1 {
			t.Errorf("get(%s) = %v, want %d", s, v, i+1)
		}
	}
	// An unmasked prefix is its masked one.
	if v := m.get(netip.MustParsePrefix("203.0.113.99/24")); v == nil || *v != 2 {
		t.Errorf("get(203.0.113.99/24) = %v, want the /24's", v)
	}
	for _, s := range []string{"203.0.113.7/31", "203.0.113.8/32", "2001:db8::/63", "2001:db8::8/128", "::cb00:7107/128"} {
		if v := m.get(netip.MustParsePrefix(s)); v != nil {
			t.Errorf("get(%s) = %d, want none", s, *v)
		}
	}
	var back []string
	for p, v := range m.all {
		if ps[*v-1] != p.String() {
			t.Errorf("all yields %s for %s", p, ps[*v-1])
		}
		back = append(back, p.String())
	}
	if slices.Sort(back); len(back) != len(ps) {
		t.Errorf("all yields %v", back)
	}
	if m.put(netip.Prefix{}) != nil || m.get(netip.Prefix{}) != nil {
		t.Error("an invalid prefix is held")
	}
	m.delete(netip.MustParsePrefix("2001:db8::/48"))
	m.deleteFunc(func(v *int) bool { return *v == 1 })
	if m.len() != len(ps)-2 || m.get(netip.MustParsePrefix("2001:db8::/48")) != nil || m.get(netip.MustParsePrefix("203.0.113.7/32")) != nil {
		t.Errorf("after two deletions: %d prefixes", m.len())
	}
}

func TestPages(t *testing.T) {
	p := newPages[int64](3)
	for i := 0; i < 3*pageItems+5; i++ {
		if j := p.add(); int(j) != i {
			t.Fatalf("add() = %d, want %d", j, i)
		}
		it := p.item(int32(i))
		if len(it) != 3 || cap(it) != 3 {
			t.Fatalf("item %d: len %d cap %d", i, len(it), cap(it))
		}
		it[0], it[2] = int64(i), -int64(i)
	}
	for i := int32(0); i < p.n; i++ {
		if it := p.item(i); it[0] != int64(i) || it[1] != 0 || it[2] != -int64(i) {
			t.Fatalf("item %d holds %v", i, it)
		}
	}
}

// The source index finds each slot by its key through adds and deletes,
// as a map does, with keys crowded into few home entries.
func TestSourceIndexAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	slots := newPages[source](1)
	x := newSourceIndex()
	ref := map[words]int32{}
	var free []int32
	for step := 0; step < 100000; step++ {
		k := words{hi: uint64(r.IntN(4)) << 62, lo: uint64(r.IntN(3000))}
		if i, ok := ref[k]; ok && r.IntN(2) == 0 {
			x.delete(k, i)
			delete(ref, k)
			free = append(free, i)
		} else if !ok {
			var i int32
			if n := len(free); n > 0 {
				i, free = free[n-1], free[:n-1]
			} else {
				i = slots.add()
			}
			slots.at(i).key = k
			x.put(k, i)
			ref[k] = i
		}
		k = words{hi: uint64(r.IntN(4)) << 62, lo: uint64(r.IntN(3000))}
		want, ok := ref[k]
		if got := x.get(k, &slots); ok && got != want || !ok && got != none {
			t.Fatalf("step %d: get(%v) = %d, want %d (held %v)", step, k, got, want, ok)
		}
		if x.n != len(ref) {
			t.Fatalf("step %d: %d entries, want %d", step, x.n, len(ref))
		}
	}
	n := 0
	for i := range x.all {
		if ref[slots.at(i).key] != i {
			t.Fatalf("all yields slot %d, not the index's", i)
		}
		n++
	}
	if n != len(ref) {
		t.Errorf("all yields %d slots, want %d", n, len(ref))
	}
}
