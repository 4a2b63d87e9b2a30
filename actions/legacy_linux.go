//go:build linux

package actions

import (
	"github.com/google/nftables"
)

// plan4 is what Apply does to blocked4 besides making sure it exists.
type plan4 struct {
	// replace: blocked4 is an earlier version's (an interval set, or a
	// plain one without flags dynamic), deleted and made anew with add.
	replace  bool
	del, add []nftables.SetElement
}

// plan4 reads blocked4 if it must be replaced (an earlier version's) or
// realigned (IPv4Prefix below 32, which may have been shortened since the
// elements were written; see migrate.go), and returns the elements to
// carry. Otherwise it only checks the set's shape against want.
func (t *Table) plan4(c *nftables.Conn, spec *TableSpec, st *kernelState, want *nftables.Set) (plan4, error) {
	s := st.set(Set4)
	if s == nil {
		return plan4{}, nil
	}
	oldInterval := setShape(s, &nftables.Set{KeyType: nftables.TypeIPAddr, Interval: true, HasTimeout: true}) == ""
	old := oldInterval || setShape(s, &nftables.Set{KeyType: nftables.TypeIPAddr, HasTimeout: true}) == ""
	if !old {
		if err := checkSet(spec.Table, s, want); err != nil {
			return plan4{}, err
		}
		if spec.IPv4Prefix == 32 {
			return plan4{}, nil
		}
	}
	// Read through a plain descriptor: want describes the new set.
	els, err := t.elements(c, &nftables.Set{Table: t.table, Name: Set4, KeyType: nftables.TypeIPAddr})
	if err != nil {
		return plan4{}, err
	}
	switch {
	case oldInterval:
		return plan4{replace: true, add: keepElements(migrate4(spansFromElements(els), spec.IPv4Prefix))}, nil
	case old:
		return plan4{replace: true, add: keepElements(carry4(els, spec.IPv4Prefix))}, nil
	}
	del, add := realign4(els, spec.IPv4Prefix)
	return plan4{del: addrElements(del), add: keepElements(add)}, nil
}
