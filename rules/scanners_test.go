package rules

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// A line stamped in the future (another host's clock in a shared syslog)
// must not make every tracked source look idle: the scan that follows it
// is banned, and a line five years ahead forgets no offence.
func TestFutureTimestampDoesNotBlindTheEngine(t *testing.T) {
	for _, ahead := range []time.Duration{2 * time.Minute, 5 * 365 * 24 * time.Hour} {
		t.Run(ahead.String(), func(t *testing.T) {
			e := newEngine(t, testConfig())
			// An offence to remember.
			fin := syn("203.0.113.66", 80, 0)
			fin.Flags = parsers.FIN
			if d, _ := e.Step(&fin); d.Action != Ban {
				t.Fatalf("no first ban: %+v", d)
			}
			// Two ports of a scan, then the line from the future.
			for i := 0; i < 2; i++ {
				ev := syn("203.0.113.7", uint16(i+1), time.Second)
				e.Step(&ev)
			}
			future := syn("192.0.2.200", 9, 2*time.Second+ahead)
			e.Step(&future)
			// The scan goes on, 18 more ports.
			var got Decision
			for i := 2; i < 20; i++ {
				ev := syn("203.0.113.7", uint16(i+1), 3*time.Second+time.Duration(i)*100*time.Millisecond)
				if d, ok := e.Step(&ev); ok {
					got = d
					break
				}
			}
			if got.Action != Ban || got.Key != netip.MustParsePrefix("203.0.113.7/32") {
				t.Fatalf("the scan after the future line was not banned: %+v", got)
			}
			if st := e.Stats(); st.ClockJumps != 1 {
				t.Errorf("ClockJumps = %d, want 1", st.ClockJumps)
			}
			// The FIN source's offence is remembered: banned again (after
			// its 10-minute first ban) it escalates.
			fin.Time = t0.Add(11 * time.Minute)
			if d, _ := e.Step(&fin); d.Action != Ban || d.Offence != 2 {
				t.Errorf("after the future line, a repeat offence is %+v, want offence 2", d)
			}
		})
	}
}

// A wall clock stepped back an hour (NFLOG stamps with the wall clock)
// must not blind the engine either.
func TestClockSteppedBack(t *testing.T) {
	e := newEngine(t, testConfig())
	for i := 0; i < 3; i++ {
		ev := syn("198.51.100.9", uint16(i+1), time.Duration(i)*time.Second)
		e.Step(&ev)
	}
	var got Decision
	for i := 0; i < 10; i++ {
		ev := syn("203.0.113.7", uint16(i+1), -time.Hour+time.Duration(i)*time.Second)
		if d, ok := e.Step(&ev); ok {
			got = d
			break
		}
	}
	if got.Action != Ban || got.Hits != 5 {
		t.Fatalf("scan after a clock step back: %+v, want a ban at the 5th port", got)
	}
	if st := e.Stats(); st.ClockJumps != 1 {
		t.Errorf("ClockJumps = %d, want 1 (one run of events behind)", st.ClockJumps)
	}
}

// One packet is a short ban; the same key again gets the rule's ban,
// escalated from there.
func TestSinglePacketEvidenceBansShortFirst(t *testing.T) {
	e := newEngine(t, testConfig())
	at := time.Duration(0)
	for i, want := range []time.Duration{10 * time.Minute, 24 * time.Hour, 48 * time.Hour} {
		ev := syn("203.0.113.66", 80, at)
		ev.Flags = parsers.FIN
		d, ok := e.Step(&ev)
		if !ok || d.Action != Ban || d.Ban != want || !d.SinglePacket || d.Offence != uint32(i+1) {
			t.Fatalf("offence %d: %v %+v, want a ban of %v", i+1, ok, d, want)
		}
		at += d.Ban + time.Second
	}
	// Multi-packet evidence is not capped.
	var d Decision
	for i := 0; i < 5; i++ {
		ev := syn("203.0.113.7", uint16(i+1), at)
		d, _ = e.Step(&ev)
	}
	if d.Ban != time.Hour || d.SinglePacket {
		t.Errorf("port scan: %+v, want the rule's 1h", d)
	}
}

// Tripwires have their own valve: a flood of forged single packets leaves
// the bans real scans need.
func TestSinglePacketValve(t *testing.T) {
	cfg := testConfig()
	cfg.Bans.SinglePacketPerMinute = 3
	cfg.Bans.OverValveBan = 0
	e := newEngine(t, cfg)
	var got []string
	for i := 0; i < 5; i++ {
		ev := syn(fmt.Sprintf("203.0.113.%d", 10+i), 80, time.Duration(i)*time.Millisecond)
		ev.Flags = 0
		d, _ := e.Step(&ev)
		got = append(got, d.Action.String())
	}
	if fmt.Sprint(got) != "[ban ban ban rate-limited rate-limited]" {
		t.Errorf("tripwires: %v", got)
	}
	var d Decision
	for i := 0; i < 5; i++ {
		ev := syn("198.51.100.77", uint16(i+1), time.Second)
		d, _ = e.Step(&ev)
	}
	if d.Action != Ban {
		t.Errorf("a port scan after the tripwire flood: %v, want ban", d.Action)
	}
}

// Beyond the valve, sources are dropped for a short time instead of not
// at all (nmap -D RND:80,ME): the real scanner among the decoys is held
// too, and no forged address for long.
func TestBeyondTheValveShortDrops(t *testing.T) {
	cfg := testConfig()
	cfg.Bans.MaxNewPerMinute = 60
	cfg.Bans.OverValvePerMinute = 30
	e := newEngine(t, cfg)
	counts := map[Action]int{}
	// 81 sources scan the same 5 ports at once.
	for port := uint16(1); port <= 5; port++ {
		for i := 0; i < 81; i++ {
			ev := syn(fmt.Sprintf("10.77.%d.%d", i/200, 1+i%200), port, time.Duration(port)*time.Millisecond)
			if d, ok := e.Step(&ev); ok {
				counts[d.Action]++
				if d.Action == Throttled && (d.Ban != 30*time.Second || d.Offence != 1) {
					t.Errorf("throttled %+v, want a 30s drop", d)
				}
			}
		}
	}
	if counts[Ban] != 60 || counts[Throttled] != 21 || counts[RateLimited] != 0 {
		t.Errorf("decisions %v, want 60 bans and 21 short drops", counts)
	}
	// A throttled source is held while its drop lasts, and is no offence.
	ev := syn("10.77.0.81", 6, 10*time.Second)
	if d, ok := e.Step(&ev); ok {
		t.Errorf("a throttled source decided again during its drop: %+v", d)
	}
	if !e.Held(netip.MustParseAddr("10.77.0.81"), t0.Add(10*time.Second)) {
		t.Error("Held is false for a throttled source")
	}
	if off := e.offences.get(netip.MustParsePrefix("10.77.0.81/32")); off == nil || off.count != 0 {
		t.Errorf("a short drop's record %+v, want one of count 0", off)
	}
}

// A scanner taking a new /64 inside its /48 for each probe is banned as
// the /48; a /48 holding an ignored address never is.
func TestAggregateBansTheWidePrefix(t *testing.T) {
	cfg := testConfig()
	cfg.Aggregate = DefaultAggregate()
	cfg.Ignore = append(cfg.Ignore, netip.MustParsePrefix("2001:db8:77::1/128"))
	e := newEngine(t, cfg)
	var got Decision
	n := 0
	for ok := false; n < 100 && !ok; n++ {
		ev := syn(fmt.Sprintf("2001:db8:bad:%x::1", n), uint16(1000+n), time.Duration(n)*time.Millisecond)
		got, ok = e.Step(&ev)
	}
	if got.Action != Ban || got.Key != netip.MustParsePrefix("2001:db8:bad::/48") || got.Rule != AggregateRule || n != 8 {
		t.Fatalf("after %d probes: %+v, want the /48 banned at the 8th /64", n, got)
	}
	// Held: any address of the /48.
	ev := syn("2001:db8:bad:ffff::9", 1, time.Second)
	if d, ok := e.Step(&ev); ok || !e.Held(ev.Src, ev.Time) {
		t.Errorf("inside the banned /48: %v %+v", ok, d)
	}
	for i := 0; i < 50; i++ {
		ev := syn(fmt.Sprintf("2001:db8:77:%x::1", i+1), 80, time.Duration(i)*time.Millisecond)
		if d, ok := e.Step(&ev); ok {
			t.Fatalf("a /48 holding an ignored address decided: %+v", d)
		}
	}
	// IPv4: a new address of one /24 for each probe.
	got = Decision{}
	for i, ok := 0, false; i < 20 && !ok; i++ {
		ev := syn(fmt.Sprintf("203.0.113.%d", 10+i), 80, 2*time.Second)
		got, ok = e.Step(&ev)
	}
	if got.Key != netip.MustParsePrefix("203.0.113.0/24") {
		t.Errorf("IPv4 rotation: %+v, want the /24", got)
	}
}

func TestDistinctProtos(t *testing.T) {
	cfg := testConfig()
	cfg.Rules = append(cfg.Rules, Rule{Name: "proto-scan", DistinctProtos: 3, Within: time.Minute, Ban: time.Hour})
	e := newEngine(t, cfg)
	var d Decision
	for i, p := range []uint8{parsers.ProtoUDP, 47, 47, parsers.ProtoSCTP} {
		ev := syn("203.0.113.9", 7, time.Duration(i)*time.Second)
		ev.Proto, ev.Flags = p, 0
		var ok bool
		if d, ok = e.Step(&ev); ok != (i == 3) {
			t.Fatalf("protocol %d (event %d): decision %v", p, i, ok)
		}
	}
	if d.Rule != "proto-scan" {
		t.Errorf("decision %+v", d)
	}
}

// TestMemoryPerSource reports what one tracked source costs with the
// default rules; the README quotes it.
func TestMemoryPerSource(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 65536 sources")
	}
	cfg := testConfig()
	cfg.Rules = defaultRulesForTest()
	cfg.Aggregate = DefaultAggregate()
	e := newEngine(t, cfg)
	const n = 65536
	before := heapInUse()
	ev := syn("10.0.0.0", 1, 0)
	for i := 0; i < n; i++ {
		// Four addresses per /24, under the aggregate's threshold.
		ev.Src = netip.AddrFrom4([4]byte{10, byte(i >> 10), byte(i >> 2), byte(1 + i%4)})
		ev.DstPort = uint16(1 + i%3)
		ev.Time = t0.Add(time.Duration(i) * time.Microsecond)
		e.Step(&ev)
	}
	per := (heapInUse() - before) / n
	t.Logf("%d bytes per tracked source (heap in use), %d tracked", per, e.Stats().Tracked)
	if per > 2048 {
		t.Errorf("%d bytes per tracked source", per)
	}
}

// defaultRulesForTest are the shipped sentry.yaml's rules (config's tests
// check the file against its own loader; this copy measures memory).
func defaultRulesForTest() []Rule {
	tcp, udp, sctp := []uint8{parsers.ProtoTCP}, []uint8{parsers.ProtoUDP}, []uint8{parsers.ProtoSCTP}
	low := NewPortSet(PortRange{1, 32767})
	return []Rule{
		{Name: "tcp-portscan", Protos: tcp, Flags: ClassSYN, DistinctPorts: 5, Within: time.Minute, Ban: time.Hour},
		{Name: "stealth-scan", Protos: tcp, Flags: ClassNull | ClassFIN | ClassXmas | ClassSYNFIN | ClassOdd, Hits: 1, Ban: 24 * time.Hour},
		{Name: "ack-scan", Protos: tcp, Flags: ClassACK | ClassFINACK | ClassSYNACK, Ports: low, DistinctPorts: 5, Within: time.Minute, Ban: time.Hour},
		{Name: "udp-portscan", Protos: udp, DistinctPorts: 5, Within: time.Minute, Ban: time.Hour},
		{Name: "sctp-portscan", Protos: sctp, DistinctPorts: 5, Within: time.Minute, Ban: time.Hour},
		{Name: "proto-scan", DistinctProtos: 3, Within: time.Minute, Ban: time.Hour},
		{Name: "slow-scan", Protos: []uint8{parsers.ProtoTCP, parsers.ProtoUDP, parsers.ProtoSCTP}, Ports: low, DistinctPorts: 15, Within: time.Hour, Ban: time.Hour},
	}
}

func heapInUse() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// A slot reused by another source keeps its buffers, which another rule
// may have sized: each rule's threshold must still be reached.
func TestReusedSlotKeepsEachRulesThreshold(t *testing.T) {
	cfg := testConfig()
	cfg.Rules = []Rule{
		{Name: "udp", Protos: []uint8{parsers.ProtoUDP}, DistinctPorts: 2, Hits: 2, Within: time.Minute, Ban: time.Hour},
		{Name: "tcp", Protos: []uint8{parsers.ProtoTCP}, DistinctPorts: 5, Hits: 6, Within: time.Minute, Ban: time.Hour},
	}
	cfg.MaxTrackedSources = 1
	e := newEngine(t, cfg)
	u := syn("192.0.2.50", 1, 0)
	u.Proto = parsers.ProtoUDP
	e.Step(&u)
	var d Decision
	var ok bool
	for i := 0; i < 6 && !ok; i++ {
		ev := syn("192.0.2.60", uint16(1+i%5), time.Second)
		d, ok = e.Step(&ev)
	}
	if !ok || d.Rule != "tcp" || d.Hits != 6 {
		t.Fatalf("in a reused slot: %v %+v, want the tcp rule at 6 hits and 5 ports", ok, d)
	}
}

// BenchmarkStepShippedRules is the engine step of a known source under the
// shipped rules and aggregation: the figure the README quotes.
func BenchmarkStepShippedRules(b *testing.B) {
	cfg := testConfig()
	cfg.Rules = defaultRulesForTest()
	cfg.Aggregate = DefaultAggregate()
	benchKnownSource(b, cfg)
}

func TestStepShippedRulesAllocs(t *testing.T) {
	cfg := testConfig()
	cfg.Rules = defaultRulesForTest()
	cfg.Aggregate = DefaultAggregate()
	e := newEngine(t, cfg)
	ev := syn("203.0.113.7", 1, 0)
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		i++
		ev.DstPort = uint16(i % 4)
		ev.Time = t0.Add(time.Duration(i) * time.Millisecond)
		e.Step(&ev)
	}); n != 0 {
		t.Errorf("Step under the shipped rules: %v allocs, want 0", n)
	}
}
