package rules

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// aggregates tracks wide prefixes (Config.Aggregate): for each, the
// distinct ban keys inside it with a matching event in the window. Its
// memory is bounded: at most max prefixes, an arbitrary one forgotten when
// full, each holding at most DistinctKeys keys.
type aggregates struct {
	cfg   Aggregate
	index map[netip.Prefix]int32
	slots []aggState
	free  []int32
	max   int
	valve valve
}

type aggState struct {
	key   netip.Prefix
	keys  distinct // the keys' bits under the wide prefix
	first int64
	last  int64
	hits  uint32
	// covers says the wide prefix holds an ignored address: never banned.
	covers  bool
	flags   parsers.TCPFlags
	listed  [MaxListedPorts]uint16
	nlisted uint8
}

func newAggregates(cfg Aggregate, maxSources int) aggregates {
	return aggregates{cfg: cfg, index: map[netip.Prefix]int32{}, max: max(256, maxSources/8), valve: newValve(cfg.MaxNewPerMinute)}
}

func checkAggregate(a *Aggregate, b *BanPolicy) error {
	if !a.Enabled() {
		return nil
	}
	switch {
	case a.IPv4Prefix < 0 || a.IPv4Prefix >= b.IPv4Prefix && a.IPv4Prefix != 0:
		return fmt.Errorf("rules: aggregate ipv4_prefix %d must be shorter than ipv4_prefix %d", a.IPv4Prefix, b.IPv4Prefix)
	case a.IPv6Prefix < 0 || a.IPv6Prefix >= b.IPv6Prefix && a.IPv6Prefix != 0:
		return fmt.Errorf("rules: aggregate ipv6_prefix %d must be shorter than ipv6_prefix %d", a.IPv6Prefix, b.IPv6Prefix)
	case a.DistinctKeys < 2 || a.DistinctKeys > MaxDistinctPorts:
		return fmt.Errorf("rules: aggregate distinct_keys %d out of range 2-%d", a.DistinctKeys, MaxDistinctPorts)
	case a.Within <= 0 || a.Ban <= 0:
		return fmt.Errorf("rules: aggregate needs a positive within and ban")
	case a.MaxNewPerMinute < 0:
		return fmt.Errorf("rules: aggregate max_new_per_minute %d is negative", a.MaxNewPerMinute)
	}
	return nil
}

// wide returns the wide prefix around addr whose key is key, and whether
// the family aggregates. A key narrowed to a single address (around an
// ignored one) is never aggregated: its wide prefix holds the ignored one.
func (a *aggregates) wide(addr netip.Addr, key netip.Prefix) (netip.Prefix, bool) {
	bits := a.cfg.IPv4Prefix
	if addr.Is6() {
		bits = a.cfg.IPv6Prefix
	}
	if bits == 0 || key.Bits() <= bits {
		return netip.Prefix{}, false
	}
	p, _ := addr.Prefix(bits)
	return p, true
}

// subKey returns the bits of key under its wide prefix, the low 32 of
// them (two keys that differ only above are counted as one,
// which can only make the threshold later).
func subKey(key netip.Prefix) uint32 {
	shift := key.Addr().BitLen() - key.Bits()
	var v uint64
	if key.Addr().Is4() {
		b := key.Addr().As4()
		v = uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
		v >>= shift
	} else {
		b := key.Addr().As16()
		var hi, lo uint64
		for i := 0; i < 8; i++ {
			hi = hi<<8 | uint64(b[i])
			lo = lo<<8 | uint64(b[8+i])
		}
		switch {
		case shift >= 64:
			v = hi >> (shift - 64)
		case shift == 0:
			v = lo
		default:
			v = lo>>shift | hi<<(64-shift)
		}
	}
	return uint32(v)
}

// aggregate adds one matching event of key (not banned, no rule crossed)
// to its wide prefix and decides when the prefix crosses its threshold.
func (e *Engine) aggregate(wide netip.Prefix, ev *parsers.Event, key netip.Prefix, t, tg int64) (Decision, bool) {
	a := &e.agg
	i, ok := a.index[wide]
	if !ok {
		if len(a.index) >= a.max {
			for k, j := range a.index {
				delete(a.index, k)
				a.free = append(a.free, j)
				break
			}
		}
		if n := len(a.free); n > 0 {
			i = a.free[n-1]
			a.free = a.free[:n-1]
		} else {
			a.slots = append(a.slots, aggState{})
			i = int32(len(a.slots) - 1)
		}
		s := &a.slots[i]
		s.key, s.hits, s.covers = wide, 0, e.overlapsIgnore(wide)
		s.keys.reset()
		a.index[wide] = i
	}
	s := &a.slots[i]
	if s.covers {
		return Decision{}, false
	}
	within := int64(a.cfg.Within)
	if t < s.last && s.last-t <= within {
		t = s.last
	}
	if s.hits == 0 || t-s.last > within || t < s.last {
		s.hits, s.flags, s.nlisted, s.first = 0, 0, 0, t
		s.keys.reset()
	}
	s.hits++
	s.last = t
	s.flags |= ev.Flags
	if int(s.nlisted) < len(s.listed) && !containsPort(s.listed[:s.nlisted], ev.DstPort) {
		s.listed[s.nlisted] = ev.DstPort
		s.nlisted++
	}
	if s.keys.add(subKey(key), t, t-within, a.cfg.DistinctKeys) < a.cfg.DistinctKeys {
		return Decision{}, false
	}
	d := Decision{
		Time: ev.Time, Key: wide, Source: ev.Src, Rule: AggregateRule,
		FirstSeen: time.Unix(0, s.first).In(ev.Time.Location()), LastSeen: ev.Time,
		Hits: s.hits, Flags: s.flags, Proto: ev.Proto,
		DistinctPorts: uint32(s.nlisted),
	}
	d.NPorts = uint8(copy(d.Ports[:], s.listed[:s.nlisted]))
	e.conclude(&d, a.cfg.Ban, &a.valve, tg)
	s.hits = 0
	return d, true
}

// resetAggregates forgets every wide prefix, as when the ignore list
// changes (a prefix's covering an ignored address is kept with it).
func (a *aggregates) reset() {
	clear(a.index)
	a.free = a.free[:0]
	for i := range a.slots {
		a.free = append(a.free, int32(i))
	}
}
