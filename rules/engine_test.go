package rules

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

var t0 = time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)

func testConfig() Config {
	return Config{
		Rules: []Rule{
			{Name: "tcp-portscan", Protos: []uint8{parsers.ProtoTCP}, Flags: ClassSYN, DistinctPorts: 5, Within: time.Minute, Ban: time.Hour},
			{Name: "stealth-scan", Protos: []uint8{parsers.ProtoTCP}, Flags: ClassNull | ClassFIN | ClassXmas, Hits: 1, Ban: 24 * time.Hour},
			{Name: "udp-portscan", Protos: []uint8{parsers.ProtoUDP}, DistinctPorts: 5, Within: time.Minute, Ban: time.Hour},
		},
		Ignore:            []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")},
		AcceptPrefixes:    []string{"[UFW ALLOW]", "[UFW AUDIT"},
		Bans:              DefaultBanPolicy(),
		MaxTrackedSources: 65536,
	}
}

func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func syn(src string, port uint16, at time.Duration) parsers.Event {
	return parsers.Event{Time: t0.Add(at), Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr("198.51.100.1"),
		Proto: parsers.ProtoTCP, Flags: parsers.SYN, SrcPort: 40000, DstPort: port, Prefix: "SENTRY"}
}

// probe is one event of a scenario and the action it must cause ("" none).
type probe struct {
	ev   parsers.Event
	want string
}

func run(t *testing.T, e *Engine, probes []probe) []Decision {
	t.Helper()
	var out []Decision
	for i, p := range probes {
		d, ok := e.Step(&p.ev)
		got := ""
		if ok {
			got = d.Action.String() + " " + d.Rule + " " + d.Key.String()
			out = append(out, d)
		}
		if got != p.want {
			t.Errorf("event %d (%s port %d at %s): got %q, want %q", i, p.ev.Src, p.ev.DstPort, p.ev.Time.Sub(t0), got, p.want)
		}
	}
	return out
}

func TestThresholds(t *testing.T) {
	udp := func(src string, port uint16, at time.Duration) parsers.Event {
		ev := syn(src, port, at)
		ev.Proto, ev.Flags = parsers.ProtoUDP, 0
		return ev
	}
	flags := func(src string, f parsers.TCPFlags) parsers.Event {
		ev := syn(src, 80, 0)
		ev.Flags = f
		return ev
	}
	const s = time.Second
	tests := []struct {
		name   string
		probes []probe
	}{
		{"exactly at the boundary: the 5th distinct port bans", []probe{
			{syn("203.0.113.7", 1, 0), ""}, {syn("203.0.113.7", 2, s), ""}, {syn("203.0.113.7", 3, 2*s), ""},
			{syn("203.0.113.7", 4, 3*s), ""}, {syn("203.0.113.7", 5, 4*s), "ban tcp-portscan 203.0.113.7/32"},
		}},
		{"repeated ports do not count twice", []probe{
			{syn("203.0.113.7", 1, 0), ""}, {syn("203.0.113.7", 1, s), ""}, {syn("203.0.113.7", 2, s), ""},
			{syn("203.0.113.7", 2, s), ""}, {syn("203.0.113.7", 3, s), ""}, {syn("203.0.113.7", 4, 2*s), ""},
			{syn("203.0.113.7", 4, 2*s), ""}, {syn("203.0.113.7", 5, 3*s), "ban tcp-portscan 203.0.113.7/32"},
		}},
		{"window slides: ports older than 60s drop out", []probe{
			{syn("203.0.113.7", 1, 0), ""}, {syn("203.0.113.7", 2, 10*s), ""}, {syn("203.0.113.7", 3, 20*s), ""},
			{syn("203.0.113.7", 4, 30*s), ""},
			{syn("203.0.113.7", 5, 61*s), ""}, // port 1 (t=0) expired: 4 in window
			{syn("203.0.113.7", 6, 65*s), "ban tcp-portscan 203.0.113.7/32"},
		}},
		{"exactly 60s apart is still inside the window", []probe{
			{syn("203.0.113.8", 1, 0), ""}, {syn("203.0.113.8", 2, 0), ""}, {syn("203.0.113.8", 3, 0), ""},
			{syn("203.0.113.8", 4, 0), ""}, {syn("203.0.113.8", 5, 60*s), "ban tcp-portscan 203.0.113.8/32"},
		}},
		{"slow scanner, one port every 70s, is never caught by a 60s window", func() []probe {
			var ps []probe
			for i := 0; i < 20; i++ {
				ps = append(ps, probe{syn("198.51.100.20", uint16(i+1), time.Duration(i)*70*s), ""})
			}
			return ps
		}()},
		{"IPv6 sources rotating inside one /64 are one key", []probe{
			{syn("2001:db8:bad:1::1", 1, 0), ""}, {syn("2001:db8:bad:1::2", 2, s), ""},
			{syn("2001:db8:bad:1:aaaa::3", 3, s), ""}, {syn("2001:db8:bad:1::4", 4, s),
				""}, {syn("2001:db8:bad:1:ffff:ffff:ffff:ffff", 5, s), "ban tcp-portscan 2001:db8:bad:1::/64"},
		}},
		{"different /64s are different keys", []probe{
			{syn("2001:db8:bad:1::1", 1, 0), ""}, {syn("2001:db8:bad:2::1", 2, 0), ""},
			{syn("2001:db8:bad:3::1", 3, 0), ""}, {syn("2001:db8:bad:4::1", 4, 0), ""}, {syn("2001:db8:bad:5::1", 5, 0), ""},
		}},
		{"tripwire: one FIN, NULL or XMAS bans", []probe{
			{flags("203.0.113.66", parsers.FIN), "ban stealth-scan 203.0.113.66/32"},
			{flags("203.0.113.67", 0), "ban stealth-scan 203.0.113.67/32"},
			{flags("203.0.113.68", parsers.FIN|parsers.PSH|parsers.URG), "ban stealth-scan 203.0.113.68/32"},
			{flags("203.0.113.69", parsers.SYN|parsers.ACK), ""},
			{flags("203.0.113.70", parsers.ACK), ""},
		}},
		{"ignored source is reported, never banned", []probe{
			{syn("127.0.0.9", 1, 0), ""}, {syn("127.0.0.9", 2, 0), ""}, {syn("127.0.0.9", 3, 0), ""},
			{syn("127.0.0.9", 4, 0), ""}, {syn("127.0.0.9", 5, 0), "ignored tcp-portscan 127.0.0.9/32"},
			{syn("127.0.0.9", 6, s), ""},
		}},
		{"UDP scan by its own rule", []probe{
			{udp("192.0.2.99", 53, 0), ""}, {udp("192.0.2.99", 123, s), ""}, {udp("192.0.2.99", 161, s), ""},
			{udp("192.0.2.99", 500, s), ""}, {udp("192.0.2.99", 1900, s), "ban udp-portscan 192.0.2.99/32"},
		}},
		{"banned source is not banned again while the ban lasts", []probe{
			{flags("203.0.113.66", parsers.FIN), "ban stealth-scan 203.0.113.66/32"},
			{flags("203.0.113.66", parsers.FIN), ""},
			{flags("203.0.113.66", 0), ""},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run(t, newEngine(t, testConfig()), tc.probes)
		})
	}
}

func TestAcceptPrefixNeverEvidence(t *testing.T) {
	e := newEngine(t, testConfig())
	for i := 0; i < 10; i++ {
		ev := syn("203.0.113.7", uint16(i+1), 0)
		ev.Prefix = "[UFW AUDIT INVALID]"
		if d, ok := e.Step(&ev); ok {
			t.Fatalf("accepted packet gave decision %+v", d)
		}
	}
	if s := e.Stats(); s.Accepted != 10 {
		t.Errorf("Accepted = %d, want 10", s.Accepted)
	}
}

func TestDecisionEvidence(t *testing.T) {
	e := newEngine(t, testConfig())
	var d Decision
	for i, port := range []uint16{22, 23, 23, 80, 443, 8080} {
		ev := syn("203.0.113.7", port, time.Duration(i)*time.Second)
		if i == 2 {
			ev.Flags |= parsers.ECE | parsers.CWR
		}
		var ok bool
		if d, ok = e.Step(&ev); ok {
			break
		}
	}
	if d.Action != Ban {
		t.Fatalf("no ban: %+v", d)
	}
	want := Decision{
		Time: t0.Add(5 * time.Second), Action: Ban, Key: netip.MustParsePrefix("203.0.113.7/32"),
		Source: netip.MustParseAddr("203.0.113.7"), Rule: "tcp-portscan",
		FirstSeen: t0, LastSeen: t0.Add(5 * time.Second), Hits: 6, DistinctPorts: 5,
		Ports: [MaxListedPorts]uint16{22, 23, 80, 443, 8080}, NPorts: 5,
		Flags: parsers.SYN | parsers.ECE | parsers.CWR, Proto: parsers.ProtoTCP, Ban: time.Hour, Offence: 1,
	}
	if d != want {
		t.Errorf("decision\n got %+v\nwant %+v", d, want)
	}
}

func TestEscalationAndForgetting(t *testing.T) {
	cfg := testConfig()
	cfg.Bans.MaxBan = 5 * time.Hour
	cfg.Bans.SinglePacketBan = 0
	e := newEngine(t, cfg)
	fin := func(at time.Duration) parsers.Event {
		ev := syn("203.0.113.66", 80, at)
		ev.Flags = parsers.FIN
		return ev
	}
	cfg.Rules[1].Ban = time.Hour
	e = newEngine(t, func() Config {
		c := cfg
		c.Rules = append([]Rule(nil), cfg.Rules...)
		c.Rules[1].Ban = time.Hour
		return c
	}())
	var at time.Duration
	for i, want := range []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour, 5 * time.Hour, 5 * time.Hour} {
		ev := fin(at)
		d, ok := e.Step(&ev)
		if !ok || d.Ban != want || d.Offence != uint32(i+1) {
			t.Fatalf("offence %d: got %v %+v, want ban %v", i+1, ok, d, want)
		}
		at += d.Ban + time.Second // probe again right after the ban ends
	}
	// More than forget_after (168h) after the last ban: a first offence again.
	at += 169 * time.Hour
	ev := fin(at)
	d, ok := e.Step(&ev)
	if !ok || d.Offence != 1 || d.Ban != time.Hour {
		t.Fatalf("after forget_after: %+v, want first offence of 1h", d)
	}
}

func TestValve(t *testing.T) {
	cfg := testConfig()
	cfg.Bans.MaxNewPerMinute = 3
	cfg.Bans.SinglePacketPerMinute = 0 // tripwires share the valve
	cfg.Bans.OverValveBan = 0          // no short drops beyond it
	e := newEngine(t, cfg)
	var got []string
	for i := 0; i < 6; i++ {
		ev := syn(fmt.Sprintf("203.0.113.%d", 10+i), 80, time.Duration(i)*time.Second)
		ev.Flags = 0
		d, ok := e.Step(&ev)
		if !ok {
			t.Fatalf("event %d: no decision", i)
		}
		got = append(got, d.Action.String())
	}
	want := []string{"ban", "ban", "ban", "rate-limited", "rate-limited", "rate-limited"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
	// 60 s after the first ban the valve lets one more through.
	ev := syn("203.0.113.99", 80, 60*time.Second)
	ev.Flags = 0
	if d, _ := e.Step(&ev); d.Action != Ban {
		t.Errorf("after a minute: %v, want ban", d.Action)
	}
	// A rate-limited source is not banned by its next packet either: it has
	// to cross the threshold again, so the valve is not bypassed.
	if s := e.Stats(); s.Decisions[RateLimited] != 3 || s.Decisions[Ban] != 4 {
		t.Errorf("decisions = %v", s.Decisions)
	}
}

func TestIgnoreInsideBanKeyShrinksKey(t *testing.T) {
	cfg := testConfig()
	cfg.Ignore = append(cfg.Ignore, netip.MustParsePrefix("2001:db8:1:1::53/128"))
	e := newEngine(t, cfg)
	ev := syn("2001:db8:1:1::666", 80, 0)
	ev.Flags = parsers.FIN
	d, ok := e.Step(&ev)
	if !ok || d.Action != Ban || d.Key != netip.MustParsePrefix("2001:db8:1:1::666/128") {
		t.Fatalf("got %+v, want a ban of the single address", d)
	}
}

func TestPardon(t *testing.T) {
	e := newEngine(t, testConfig())
	var probes []probe
	for i := 1; i <= 5; i++ {
		probes = append(probes, probe{syn("203.0.113.7", uint16(i), time.Duration(i)*time.Second), ""})
	}
	probes[4].want = "ban tcp-portscan 203.0.113.7/32"
	run(t, e, probes)
	if n := e.Pardon(netip.MustParsePrefix("203.0.113.7/32"), t0.Add(10*time.Second)); n != 1 {
		t.Fatalf("Pardon affected %d keys", n)
	}
	// Events logged before the pardon (in flight when the operator unblocked)
	// are not held against the source.
	for i := 0; i < 5; i++ {
		ev := syn("203.0.113.7", uint16(100+i), 9*time.Second)
		if d, ok := e.Step(&ev); ok {
			t.Fatalf("re-banned by pardoned evidence: %+v", d)
		}
	}
	// New evidence after the pardon counts again, as a first offence.
	var d Decision
	for i := 0; i < 5; i++ {
		ev := syn("203.0.113.7", uint16(200+i), 11*time.Second)
		d, _ = e.Step(&ev)
	}
	if d.Action != Ban || d.Offence != 1 {
		t.Errorf("after pardon: %+v, want a first-offence ban", d)
	}
	// A pardon of an address inside a banned /64 pardons the /64.
	run(t, e, []probe{{func() parsers.Event {
		ev := syn("2001:db8:bad:1::1", 9, 20*time.Second)
		ev.Flags = 0
		return ev
	}(), "ban stealth-scan 2001:db8:bad:1::/64"}})
	if n := e.Pardon(netip.MustParsePrefix("2001:db8:bad:1::77/128"), t0.Add(21*time.Second)); n != 1 {
		t.Errorf("Pardon of an address inside a /64 affected %d keys", n)
	}
}

func TestEvictionBoundsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000,000 sources: not in -short")
	}
	cfg := testConfig()
	cfg.MaxTrackedSources = 65536
	e := newEngine(t, cfg)
	var ms runtime.MemStats
	next := 0
	step := func(n int) {
		ev := syn("10.0.0.0", 1, 0)
		for i := next; i < next+n; i++ {
			a := [4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)}
			ev.Src = netip.AddrFrom4(a)
			ev.DstPort = uint16(i)
			ev.Time = t0.Add(time.Duration(i) * time.Microsecond)
			e.Step(&ev)
		}
		next += n
	}
	// The map settles once it has seen churn; from there on memory must
	// not move however many new sources arrive.
	step(1000000)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	step(1000000)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	s := e.Stats()
	if s.Tracked > cfg.MaxTrackedSources {
		t.Errorf("tracked %d > max %d", s.Tracked, cfg.MaxTrackedSources)
	}
	if s.Evicted == 0 {
		t.Error("nothing evicted")
	}
	if grow := int64(ms.HeapAlloc) - int64(before); grow > 1<<20 {
		t.Errorf("heap grew %d bytes from 1M to 2M distinct sources, want bounded", grow)
	}
	if ms.HeapAlloc > 64<<20 {
		t.Errorf("heap %d MiB for %d tracked sources", ms.HeapAlloc>>20, s.Tracked)
	}
	t.Logf("tracked %d, evicted %d, heap %d MiB", s.Tracked, s.Evicted, ms.HeapAlloc>>20)
}

func TestIdleExpiry(t *testing.T) {
	e := newEngine(t, testConfig())
	ev := syn("203.0.113.7", 1, 0)
	e.Step(&ev)
	ev = syn("203.0.113.8", 1, 2*time.Minute)
	e.Step(&ev)
	// The clock takes a jump of more than ClockSkew once the next event
	// agrees.
	ev = syn("203.0.113.8", 2, 2*time.Minute+time.Second)
	e.Step(&ev)
	if s := e.Stats(); s.Tracked != 1 || s.Expired != 1 {
		t.Errorf("tracked %d expired %d, want 1 and 1", s.Tracked, s.Expired)
	}
}

func TestStepAllocs(t *testing.T) {
	e := newEngine(t, testConfig())
	ev := syn("203.0.113.7", 1, 0)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		ev.DstPort = uint16(i % 4) // stays under the threshold
		ev.Time = t0.Add(time.Duration(i) * time.Millisecond)
		e.Step(&ev)
	})
	if allocs != 0 {
		t.Errorf("Step for a known source: %v allocs, want 0", allocs)
	}
}

// TestClassifyEveryCombination checks all 64 combinations of the six flags
// against the classes written out by hand, with and without ECE and CWR.
func TestClassifyEveryCombination(t *testing.T) {
	const F, S, R, P, A, U = parsers.FIN, parsers.SYN, parsers.RST, parsers.PSH, parsers.ACK, parsers.URG
	want := map[parsers.TCPFlags]FlagClass{}
	for class, fs := range map[FlagClass][]parsers.TCPFlags{
		ClassSYN:    {S, S | P, S | U, S | P | U},
		ClassSYNFIN: {S | F, S | F | P, S | F | U, S | F | P | U, S | F | A, S | F | A | P, S | F | A | U, S | F | A | P | U},
		ClassSYNACK: {S | A, S | A | P, S | A | U, S | A | P | U},
		ClassNull:   {0},
		ClassFIN:    {F},
		ClassXmas:   {F | P | U},
		ClassOdd:    {P, U, P | U, F | P, F | U},
		ClassACK:    {A, A | P, A | U, A | P | U},
		ClassFINACK: {F | A, F | A | P, F | A | U, F | A | P | U},
	} {
		for _, f := range fs {
			if _, dup := want[f]; dup {
				t.Fatalf("%v listed twice", f)
			}
			want[f] = class
		}
	}
	for f := parsers.TCPFlags(0); f <= FlagMask; f++ {
		if f&R != 0 {
			want[f] = ClassRST
		}
	}
	if len(want) != 64 {
		t.Fatalf("%d combinations written out, want 64", len(want))
	}
	for f, class := range want {
		for _, ecn := range []parsers.TCPFlags{0, parsers.ECE, parsers.CWR, parsers.ECE | parsers.CWR} {
			if got := Classify(f | ecn); got != class {
				t.Errorf("Classify(%q) = %v, want %v", (f | ecn).String(), got, class)
			}
		}
	}
	// FlagCombinations is the inverse: each class's combinations, each
	// combination in one class.
	total := 0
	for i := 0; i < numClasses; i++ {
		c := FlagClass(1) << i
		for _, f := range FlagCombinations(c) {
			if want[f] != c {
				t.Errorf("FlagCombinations(%v) holds %q, of class %v", c, f.String(), want[f])
			}
			total++
		}
		if name := c.String(); name == "" || func() bool { p, err := ParseFlagClass(name); return err != nil || p != c }() {
			t.Errorf("class %d has no name that parses back: %q", i, name)
		}
	}
	if total != 64 || len(FlagCombinations(AllClasses)) != 64 {
		t.Errorf("the classes hold %d combinations, want 64", total)
	}
}

func BenchmarkStepKnownSource(b *testing.B) { benchKnownSource(b, testConfig()) }

// benchKnownSource steps one source over four ports a millisecond apart:
// below every threshold, so each step is a known source's.
func benchKnownSource(b *testing.B, cfg Config) {
	e := newEngine(b, cfg)
	ev := syn("203.0.113.7", 1, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev.DstPort = uint16(i % 4)
		ev.Time = t0.Add(time.Duration(i) * time.Millisecond)
		e.Step(&ev)
	}
}

func BenchmarkStepSpoofedFlood(b *testing.B) {
	cfg := testConfig()
	e := newEngine(b, cfg)
	ev := syn("203.0.113.7", 1, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev.Src = netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)})
		ev.Time = t0.Add(time.Duration(i) * time.Microsecond)
		e.Step(&ev)
	}
}

func TestPortSetRanges(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []PortRange
		want []PortRange
	}{
		{"empty", nil, nil},
		{"one port", []PortRange{{Lo: 22, Hi: 22}}, []PortRange{{Lo: 22, Hi: 22}}},
		{"overlapping and adjacent merge", []PortRange{{Lo: 10, Hi: 20}, {Lo: 15, Hi: 30}, {Lo: 31, Hi: 40}, {Lo: 50, Hi: 50}},
			[]PortRange{{Lo: 10, Hi: 40}, {Lo: 50, Hi: 50}}},
		{"across words", []PortRange{{Lo: 60, Hi: 200}}, []PortRange{{Lo: 60, Hi: 200}}},
		{"edges", []PortRange{{Lo: 0, Hi: 0}, {Lo: 65534, Hi: 65535}}, []PortRange{{Lo: 0, Hi: 0}, {Lo: 65534, Hi: 65535}}},
		{"everything", []PortRange{{Lo: 0, Hi: 65535}}, []PortRange{{Lo: 0, Hi: 65535}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NewPortSet(tc.in...).Ranges()
			if !slices.Equal(got, tc.want) {
				t.Errorf("Ranges() = %v, want %v", got, tc.want)
			}
		})
	}
	s := NewPortSet(PortRange{Lo: 1, Hi: 5})
	s.Remove(3)
	if got, want := s.Ranges(), []PortRange{{Lo: 1, Hi: 2}, {Lo: 4, Hi: 5}}; !slices.Equal(got, want) {
		t.Errorf("after Remove(3): %v, want %v", got, want)
	}
}
