//go:build linux

package actions

import (
	"net/netip"
	"testing"
	"time"
)

// benchKeys runs bench for IPv4 keys and for IPv6 /64s, each on a table
// of its own in a namespace with the managed chain.
func benchKeys(b *testing.B, bench func(b *testing.B, n *Table, key func(int) netip.Prefix)) {
	for _, bc := range []struct {
		name string
		key  func(int) netip.Prefix
	}{{"ipv4", v4Key}, {"ipv6-64", v6Key}} {
		b.Run(bc.name, func(b *testing.B) {
			n := openTable(b, newNetNS(b), TableSpec{ManageChain: true})
			b.ReportAllocs()
			bench(b, n, bc.key)
		})
	}
}

// BenchmarkBan measures the fast path: one new key, one batch, one flush,
// on a lasting connection.
func BenchmarkBan(b *testing.B) {
	benchKeys(b, func(b *testing.B, n *Table, key func(int) netip.Prefix) {
		for i := 0; b.Loop(); i++ {
			if err := n.Ban(key(i), time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBanFromMany is a fleet's bans applied 256 at a time, as a
// host catching up applies them (BanMany, which a restart uses, is the
// same code); ns/op is per ban.
func BenchmarkBanFromMany(b *testing.B) {
	benchKeys(b, func(b *testing.B, n *Table, key func(int) netip.Prefix) {
		bans := make([]RemoteBan, 256)
		for i := 0; b.Loop(); i++ {
			if i%len(bans) == 0 {
				b.StopTimer()
				for j := range bans {
					bans[j] = RemoteBan{Key: key(i + j), Timeout: time.Hour, Origin: "web1"}
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
		}
	})
}
