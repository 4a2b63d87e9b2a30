//go:build linux

package actions

import (
	"net/netip"
	"os"
	"slices"
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

// TestBanLatency reports the median and p99 of Ban on the fast path into a
// set growing to count keys, then of re-bans that extend present keys (the
// slow path, which reads the whole set). It only runs with
// SENTRY_MEASURE=1.
func TestBanLatency(t *testing.T) {
	if os.Getenv("SENTRY_MEASURE") != "1" {
		t.Skip("set SENTRY_MEASURE=1 to measure Ban latency")
	}
	for _, bc := range []struct {
		name  string
		key   func(int) netip.Prefix
		count int
	}{
		{"ipv4 /32 (plain set)", v4Key, 5000},
		{"ipv4 /32 (plain set)", v4Key, 30000},
		{"ipv6 /64 (interval set)", v6Key, 5000},
	} {
		ns := newNetNS(t)
		n := openNFT(t, ns, NFTablesConfig{ManageChain: true})
		count := bc.count
		d := make([]time.Duration, count)
		for i := range count {
			start := time.Now()
			if err := n.Ban(bc.key(i), time.Hour); err != nil {
				t.Fatal(err)
			}
			d[i] = time.Since(start)
		}
		// The last thousand inserts show the cost at the full size.
		tail := slices.Clone(d[count-1000:])
		slices.Sort(d)
		slices.Sort(tail)
		t.Logf("%s: %d bans into a growing set: median %v, p90 %v, p99 %v, max %v; last 1000: median %v, p99 %v",
			bc.name, count, d[count/2], d[count*90/100], d[count*99/100], d[count-1], tail[500], tail[990])
		// Re-ban of present keys (slow path: reads the set of count keys).
		var slow []time.Duration
		for i := range 50 {
			start := time.Now()
			if err := n.Ban(bc.key(i), 2*time.Hour); err != nil {
				t.Fatal(err)
			}
			slow = append(slow, time.Since(start))
		}
		slices.Sort(slow)
		if l, err := n.List(); err != nil || len(l) != count {
			t.Errorf("List: %d entries, %v; want %d", len(l), err, count)
		}
		t.Logf("%s: re-ban (extend) with %d keys present: median %v, max %v", bc.name, count, slow[len(slow)/2], slow[len(slow)-1])
	}
}
