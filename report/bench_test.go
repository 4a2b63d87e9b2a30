package report

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// replayLike returns n events shaped like the replay benchmark's input:
// 16 busy scanners, a few thousand occasional ones and a spray of
// one-off sources.
func replayLike(n int, seed uint64) []parsers.Event {
	r := rand.New(rand.NewPCG(seed, 2))
	evs := make([]parsers.Event, n)
	t := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for i := range evs {
		t = t.Add(time.Duration(r.IntN(20000)) * time.Microsecond)
		var src netip.Addr
		switch k := r.IntN(100); {
		case k < 7:
			src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(r.IntN(16)), byte(r.IntN(256)), 0, 1, 14: byte(r.IntN(256)), 15: byte(r.IntN(256))})
		case k < 12:
			src = netip.AddrFrom4([4]byte{198, 51, byte(r.IntN(256)), byte(1 + r.IntN(254))})
		case k < 18:
			src = netip.AddrFrom4([4]byte{198, 18, 18, byte(1 + r.IntN(16))})
		default:
			b := byte(r.IntN(256))
			src = netip.AddrFrom4([4]byte{203, b, b, byte(1 + r.IntN(16))})
		}
		evs[i] = parsers.Event{Time: t, Src: src, Proto: parsers.ProtoTCP, Flags: parsers.SYN, DstPort: uint16(1 + r.IntN(1024))}
	}
	return evs
}

func BenchmarkEvent(b *testing.B) {
	evs := replayLike(1<<16, 1)
	c := New(Options{Key: func(a netip.Addr) netip.Prefix {
		if a.Is4() {
			return netip.PrefixFrom(a, 32)
		}
		p, _ := a.Prefix(64)
		return p
	}})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Event(&evs[i&(len(evs)-1)])
		i++
	}
}
