package actions

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// checkJSON fails t unless AppendJSON writes d as json.Marshal(ToJSON(d)).
func checkJSON(t *testing.T, d *rules.Decision) {
	t.Helper()
	want, err := json.Marshal(ToJSON(d))
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendJSON(nil, d); string(got) != string(want) {
		t.Fatalf("AppendJSON:\n%s\nencoding/json:\n%s", got, want)
	}
}

// AppendJSON writes what encoding/json writes, for decisions of every
// shape: times in zones and with nanoseconds, both families, zoned and
// invalid addresses, no ports and many, unnamed protocols, no flags, and
// rule names that need escaping.
func TestAppendJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	zones := []*time.Location{time.UTC, time.FixedZone("x", -(3*3600 + 30*60)), time.FixedZone("y", 5*3600+45*60)}
	names := []string{"tcp-portscan", "", "a b", `quote"back\slash`, "<html>&amp;", "tab\there", "nl\nx", "\x00\x1f\x7f", "ünïcødé", "\u2028\u2029", "bad\xffutf8", "emoji 🔥"}
	addrs := []netip.Addr{
		netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:1.2.3.4"),
		netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr(`fe80::1%a"<b>`), {},
	}
	for i := 0; i < 5000; i++ {
		src := addrs[r.IntN(len(addrs))]
		key := netip.Prefix{}
		if src.IsValid() {
			key, _ = src.WithZone("").Prefix(r.IntN(src.BitLen() + 1))
		}
		at := time.Unix(r.Int64N(4e9), r.Int64N(1e9)*int64(r.IntN(2))).In(zones[r.IntN(len(zones))])
		d := rules.Decision{
			Time: at, Action: rules.Action(r.IntN(3)), Key: key, Source: src, Rule: names[r.IntN(len(names))],
			FirstSeen: at.Add(-time.Duration(r.Int64N(1e12))), Hits: r.Uint32(), DistinctPorts: r.Uint32(),
			Flags: parsers.TCPFlags(r.IntN(256) * r.IntN(2)), Proto: []uint8{6, 17, 1, 58, 132, 136, 47, 0, 255}[r.IntN(9)],
			Ban: time.Duration(r.Int64N(1 << 50)), Offence: r.Uint32(),
		}
		d.NPorts = uint8(r.IntN(rules.MaxListedPorts + 1))
		for j := range d.Ports {
			d.Ports[j] = uint16(r.IntN(65536))
		}
		checkJSON(t, &d)
	}
}

// FuzzAppendJSON checks AppendJSON against encoding/json on arbitrary rule
// names, ports and times.
func FuzzAppendJSON(f *testing.F) {
	f.Add("tcp-portscan", int64(1795535899123456789), uint16(22), uint8(6), uint8(2))
	f.Add("<\x00\xff>", int64(0), uint16(0), uint8(47), uint8(0))
	f.Fuzz(func(t *testing.T, rule string, ns int64, port uint16, proto, flags uint8) {
		at := time.Unix(0, ns).UTC()
		d := rules.Decision{Time: at, FirstSeen: at, Rule: rule, Proto: proto, Flags: parsers.TCPFlags(flags),
			Key: netip.MustParsePrefix("203.0.113.0/24"), Source: netip.MustParseAddr("203.0.113.7"), NPorts: 1}
		d.Ports[0] = port
		checkJSON(t, &d)
	})
}
