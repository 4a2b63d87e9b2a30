//go:build linux

package actions

import (
	"net/netip"
	"testing"
	"time"
)

// v4Key returns the i-th distinct /32 in 10.0.0.0/8.
func v4Key(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
}

// v6Key returns the i-th distinct /64 in 2001:db8::/32.
func v6Key(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i >> 16), byte(i >> 8), byte(i)}), 64)
}

// BenchmarkBan measures the fast path: one new key, one batch, one flush,
// on a lasting connection into a namespace with the managed chain.
func BenchmarkBan(b *testing.B) {
	for _, bc := range []struct {
		name string
		key  func(int) netip.Prefix
	}{{"ipv4", v4Key}, {"ipv6-64", v6Key}} {
		b.Run(bc.name, func(b *testing.B) {
			ns := newNetNS(b)
			n := openNFT(b, ns, NFTablesConfig{ManageChain: true})
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
