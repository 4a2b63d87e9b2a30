//go:build linux && measure

package actions

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestBanLatency reports the median and p99 of Ban on the fast path into a
// set growing to count keys, then of re-bans that extend present keys (the
// slow path, which reads the whole set). It is built only with the
// measure tag: go test -tags measure -run BanLatency -v ./actions
func TestBanLatency(t *testing.T) {
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
		n := openTable(t, ns, TableSpec{ManageChain: true})
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
