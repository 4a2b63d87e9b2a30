package rules

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// genEvent is one event of generatedEvents, kept small: a million of them
// are held at once.
type genEvent struct {
	at    int64
	src   netip.Addr
	port  uint16
	proto uint8
	ufw   bool
}

// generatedEvents returns the events of the generated 1M-line log that
// BenchmarkReplay and `make bench-replay` replay (genLog in
// cmd/sentry-nflog, seed 42): the same random draws in the same order, so
// the engine sees the same sources, ports and times (to the second, as
// classic syslog gives them). The sshd lines are not events.
func generatedEvents(n int) []genEvent {
	r := rand.New(rand.NewPCG(42, 1))
	t := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	out := make([]genEvent, 0, n)
	for i := 0; i < n; i++ {
		t = t.Add(time.Duration(r.IntN(20000)) * time.Microsecond)
		at := t.Truncate(time.Second).UnixNano()
		switch k := r.IntN(100); {
		case k < 3:
			r.IntN(9000)
			r.IntN(256)
			r.IntN(60000)
		case k < 10:
			var a [16]byte
			a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
			h := r.IntN(4096)
			a[4], a[5], a[7] = byte(h>>8), byte(h), 1
			l := r.IntN(65536)
			a[14], a[15] = byte(l>>8), byte(l)
			r.IntN(60000)
			out = append(out, genEvent{at: at, src: netip.AddrFrom16(a), port: uint16(1 + r.IntN(1024)), proto: parsers.ProtoTCP})
		case k < 15:
			c, d := r.IntN(256), 1+r.IntN(254)
			r.IntN(60000)
			out = append(out, genEvent{at: at, src: netip.AddrFrom4([4]byte{198, 51, byte(c), byte(d)}), port: uint16(1 + r.IntN(1024)), proto: parsers.ProtoUDP, ufw: true})
		default:
			a, b := 203, r.IntN(256)
			if r.IntN(16) == 0 {
				a, b = 198, 18
			}
			h := 1 + r.IntN(16)
			r.IntN(65536)
			r.IntN(60000)
			out = append(out, genEvent{at: at, src: netip.AddrFrom4([4]byte{byte(a), byte(b), byte(b), byte(h)}), port: uint16(1 + r.IntN(1024)), proto: parsers.ProtoTCP})
		}
	}
	return out
}

// shippedConfig is the engine config of the shipped sentry.yaml.
func shippedConfig() Config {
	return Config{
		Rules:             defaultRulesForTest(),
		Ignore:            []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		AcceptPrefixes:    DefaultAcceptPrefixes(),
		Bans:              DefaultBanPolicy(),
		Aggregate:         DefaultAggregate(),
		MaxTrackedSources: 65536,
	}
}

// stepGenerated steps a fresh engine under the shipped config through evs
// and returns it.
func stepGenerated(tb testing.TB, evs []genEvent) *Engine {
	e := newEngine(tb, shippedConfig())
	ev := parsers.Event{Dst: netip.MustParseAddr("192.0.2.10"), SrcPort: 40000, InIface: "eth0"}
	var d Decision
	for i := range evs {
		g := &evs[i]
		ev.Time = time.Unix(0, g.at).UTC()
		ev.Src, ev.DstPort, ev.Proto = g.src, g.port, g.proto
		ev.Flags, ev.Prefix = parsers.SYN, "SENTRY"
		if g.ufw {
			ev.Flags, ev.Prefix = 0, "[UFW BLOCK]"
		}
		d, _ = e.Step(&ev)
	}
	_ = d
	return e
}

// The generated log's events make what `replay` of that log reports: the
// benchmark below measures the engine on the work the replay benchmarks
// give it. cmd/sentry-nflog's TestGeneratedLogMatchesTheEngineBenchmark
// replays genLog's first 400,000 lines and checks the same numbers, so
// that neither generator drifts from the other.
func TestGeneratedEventsMatchTheReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("a million events")
	}
	for _, c := range []struct {
		lines                         int
		events, banned, bans, expired uint64
	}{
		{400000, 388095, 305178, 1133, 2701},
		{1000000, 970230, 808969, 1520, 31189},
	} {
		s := stepGenerated(t, generatedEvents(c.lines)).Stats()
		if s.Events != c.events || s.WhileBanned != c.banned || s.Decisions[Ban] != c.bans || s.Expired != c.expired {
			t.Errorf("%d lines: events %d, while banned %d, bans %d, expired %d; replay of the generated log: %d, %d, %d, %d",
				c.lines, s.Events, s.WhileBanned, s.Decisions[Ban], s.Expired, c.events, c.banned, c.bans, c.expired)
		}
	}
}

// BenchmarkStepGeneratedLog is the engine alone on the events of the
// generated 1M-line log under the shipped config: what replay's engine
// goroutine does per event, most of them from sources inside banned /24s.
func BenchmarkStepGeneratedLog(b *testing.B) {
	evs := generatedEvents(1000000)
	b.ReportAllocs()
	for b.Loop() {
		stepGenerated(b, evs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}
