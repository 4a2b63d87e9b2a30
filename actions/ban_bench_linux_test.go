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

// BenchmarkBanFromMany is a fleet's bans applied 256 at a time, as a
// host catching up applies them; ns/op is per ban.
func BenchmarkBanFromMany(b *testing.B) {
	for _, bc := range []struct {
		name string
		key  func(int) netip.Prefix
	}{{"ipv4", v4Key}, {"ipv6-64", v6Key}} {
		b.Run(bc.name, func(b *testing.B) {
			ns := newNetNS(b)
			n := openTable(b, ns, TableSpec{ManageChain: true})
			b.ReportAllocs()
			bans := make([]RemoteBan, 256)
			i := 0
			for b.Loop() {
				if i%len(bans) == 0 {
					b.StopTimer()
					for j := range bans {
						bans[j] = RemoteBan{Key: bc.key(i + j), Timeout: time.Hour, Origin: "web1"}
					}
					b.StartTimer()
				}
				if i%len(bans) == len(bans)-1 {
					for _, err := range n.BanFromMany(bans) {
						if err != nil {
							b.Fatal(err)
						}
					}
				}
				i++
			}
		})
	}
}
