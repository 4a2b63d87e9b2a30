//go:build linux

package actions

import (
	"net/netip"
	"testing"
	"time"
)

// BenchmarkBan measures the fast path: one new key, one batch, one flush,
// on a lasting connection into a namespace with the managed chain.
func BenchmarkBan(b *testing.B) {
	for _, bc := range []struct {
		name string
		key  func(int) netip.Prefix
	}{{"ipv4", v4Key}, {"ipv6-64", v6Key}} {
		b.Run(bc.name, func(b *testing.B) {
			ns := newNetNS(b)
			n := openTable(b, ns, TableSpec{ManageChain: true})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := n.Ban(bc.key(i), time.Hour); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
