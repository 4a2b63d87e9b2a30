package actions

import (
	"net/netip"
	"time"
)

// record remembers which prefixes this process knows to be banned and
// until when, to keep reads off Ban's fast path. It is a hint: the kernel
// stays the truth, and anything the record misses is caught by EEXIST.
type record struct {
	synced bool
	until  map[netip.Prefix]time.Time
	// lens counts recorded prefixes per family (0 IPv4, 1 IPv6) and
	// length, so overlaps are looked up only at lengths in use.
	lens [2][129]int
	// sweepAt is the size at which expired entries are next swept.
	sweepAt int
}

func (r *record) init() {
	r.until = make(map[netip.Prefix]time.Time)
	r.sweepAt = 1024
}

func (r *record) reset() {
	r.init()
	r.lens = [2][129]int{}
	r.synced = false
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// put records p as banned from now for d.
func (r *record) put(p netip.Prefix, now time.Time, d time.Duration) {
	if _, ok := r.until[p]; !ok {
		r.lens[family(p.Addr())][p.Bits()]++
	}
	r.until[p] = now.Add(d)
	if len(r.until) >= r.sweepAt {
		// Sweep at now, not at the new entry's end: that would forget
		// every active ban ending sooner, and the fast path would then
		// re-add (and shorten) it.
		r.sweep(now)
	}
}

func (r *record) del(p netip.Prefix) {
	if _, ok := r.until[p]; ok {
		delete(r.until, p)
		r.lens[family(p.Addr())][p.Bits()]--
	}
}

// farFuture stands for an element without timeout.
const farFuture = 100 * 365 * 24 * time.Hour

// left is how long an element stays: its time left, or farFuture without
// a timeout.
func left(timeout, expires time.Duration) time.Duration {
	if timeout == 0 {
		return farFuture
	}
	return expires
}

func (r *record) putSpan(sp span, now time.Time) {
	d := sp.expires
	if sp.permanent() {
		d = farFuture
	}
	for _, p := range rangePrefixes(sp.first, sp.last) {
		r.put(p, now, d)
	}
}

func (r *record) delSpan(sp span) {
	for _, p := range rangePrefixes(sp.first, sp.last) {
		r.del(p)
	}
}

// sweep drops expired entries and sets the next sweep at twice the live
// size, so sweeping costs O(1) amortised per put.
func (r *record) sweep(now time.Time) {
	for p, u := range r.until {
		if !u.After(now) {
			r.del(p)
		}
	}
	r.sweepAt = max(1024, 2*len(r.until))
}

// overlaps reports whether an unexpired recorded prefix equals, contains or
// lies inside key.
func (r *record) overlaps(key netip.Prefix, now time.Time) bool {
	f := family(key.Addr())
	for l := 0; l <= key.Bits(); l++ {
		if r.lens[f][l] == 0 {
			continue
		}
		p := netip.PrefixFrom(key.Addr(), l).Masked()
		if u, ok := r.until[p]; ok && u.After(now) {
			return true
		}
	}
	for l := key.Bits() + 1; l <= key.Addr().BitLen(); l++ {
		if r.lens[f][l] == 0 {
			continue
		}
		// Rare (a shorter key than usual): scan.
		for p, u := range r.until {
			if p.Bits() > key.Bits() && family(p.Addr()) == f && key.Contains(p.Addr()) && u.After(now) {
				return true
			}
		}
		return false
	}
	return false
}
