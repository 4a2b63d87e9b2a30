package actions

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

func TestSpecDefaults(t *testing.T) {
	got, err := TableSpec{
		FirstStrike: &FirstStrikeConfig{Rules: []FirstStrikeRule{{Proto: 6, DistinctPorts: 5, Window: time.Minute}, {Proto: 17, Hits: 3, Window: 90 * time.Second}}},
		Advanced:    &AdvancedConfig{},
		Allow:       []netip.Prefix{netip.MustParsePrefix("192.0.2.77/24"), netip.MustParsePrefix("::ffff:198.51.100.1/128")},
		Listen:      ListenPorts{TCP: []uint16{443, 22, 443}},
	}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := TableSpec{
		Table: DefaultTable, Hooks: []string{HookInput}, Priority: DefaultPriority, IPv4Prefix: 32, IPv6Prefix: 64,
		Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.1/32")},
		FirstStrike: &FirstStrikeConfig{Prefix: DefaultFirstStrikePrefix, Priority: DefaultFirstStrikePriority,
			SetSize: DefaultFirstStrikeSetSize, Provisional: 90 * time.Second,
			Rules: []FirstStrikeRule{{Proto: 6, DistinctPorts: 5, Window: time.Minute}, {Proto: 17, Hits: 3, Window: 90 * time.Second}}},
		Advanced: &AdvancedConfig{Prefix: DefaultAdvancedPrefix, Priority: DefaultAdvancedPriority},
		Listen:   ListenPorts{TCP: []uint16{22, 443}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("normalize:\n got %+v\nwant %+v", got, want)
		t.Errorf("first strike:\n got %+v\nwant %+v", *got.FirstStrike, *want.FirstStrike)
	}
	// Normalising is idempotent, so a spec from Spec() applies as is.
	again, err := got.normalize()
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Errorf("normalize twice: %+v, %v", again, err)
	}
	if !reflect.DeepEqual(got.clone(), got) {
		t.Error("clone differs")
	}
}

// TestSpecSharesNothing: the normalised spec and its clones are the
// Table's own: a caller changing its slices later changes nothing.
func TestSpecSharesNothing(t *testing.T) {
	in := TableSpec{
		Hooks:       []string{HookInput},
		Allow:       []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		FirstStrike: &FirstStrikeConfig{Rules: []FirstStrikeRule{{Proto: 17, Hits: 1, Ports: []rules.PortRange{{Lo: 1, Hi: 2}}}}},
		Advanced:    &AdvancedConfig{TCP: []rules.PortRange{{Lo: 1, Hi: 9}}, Exclude: []uint16{5}},
		Listen:      ListenPorts{UDP: []uint16{53}},
	}
	out, err := in.normalize()
	if err != nil {
		t.Fatal(err)
	}
	c := out.clone()
	in.Hooks[0] = HookForward
	in.Allow[0] = netip.Prefix{}
	in.FirstStrike.Rules[0].Ports[0].Hi = 99
	in.FirstStrike.Group = 9
	in.Advanced.TCP[0].Hi = 99
	in.Advanced.Exclude[0] = 7
	in.Listen.UDP[0] = 54
	c.FirstStrike.Rules[0].Hits = 7
	c.Advanced.Exclude[0] = 8
	if out.Hooks[0] != HookInput || !out.Allow[0].IsValid() || out.FirstStrike.Rules[0].Ports[0].Hi != 2 || out.FirstStrike.Group != 0 ||
		out.FirstStrike.Rules[0].Hits != 1 || out.Advanced.TCP[0].Hi != 9 || out.Advanced.Exclude[0] != 5 || out.Listen.UDP[0] != 53 {
		t.Errorf("the normalised spec shares memory: %+v %+v %+v", out, *out.FirstStrike, *out.Advanced)
	}
}

func TestSpecErrors(t *testing.T) {
	ok := FirstStrikeRule{Proto: 6, DistinctPorts: 5, Window: time.Minute}
	fs := func(c FirstStrikeConfig) *FirstStrikeConfig { return &c }
	for _, tc := range []struct {
		name string
		spec TableSpec
		want string
	}{
		{"hook", TableSpec{Hooks: []string{"output"}}, "output"},
		{"table name", TableSpec{Table: strings.Repeat("x", 300)}, "longer than"},
		{"v4 prefix low", TableSpec{IPv4Prefix: -1}, "IPv4"},
		{"v4 prefix high", TableSpec{IPv4Prefix: 33}, "IPv4"},
		{"v6 prefix", TableSpec{IPv6Prefix: 129}, "IPv6"},
		{"allow", TableSpec{Allow: []netip.Prefix{{}}}, "allow"},
		{"fs proto", TableSpec{FirstStrike: fs(FirstStrikeConfig{Rules: []FirstStrikeRule{{Proto: 1, Hits: 1}}})}, "ICMP is never counted"},
		{"fs ports without ports", TableSpec{FirstStrike: fs(FirstStrikeConfig{Rules: []FirstStrikeRule{{Proto: 47, DistinctPorts: 3, Window: time.Minute}}})}, "distinct ports on protocol 47"},
		{"fs ports and protos", TableSpec{FirstStrike: fs(FirstStrikeConfig{Rules: []FirstStrikeRule{{Proto: 6, DistinctPorts: 3, DistinctProtos: 3, Window: time.Minute}}})}, "both distinct"},
		{"fs udp flags", TableSpec{FirstStrike: fs(FirstStrikeConfig{Rules: []FirstStrikeRule{{Proto: 17, TCPFlags: rules.ClassSYN, Hits: 1}}})}, "TCP flags on a protocol 17"},
		{"fs unknown flags", TableSpec{FirstStrike: fs(FirstStrikeConfig{Rules: []FirstStrikeRule{{Proto: 6, TCPFlags: 1 << 12, Hits: 1}}})}, "unknown TCP flag"},
		{"fs no threshold", TableSpec{FirstStrike: fs(FirstStrikeConfig{Rules: []FirstStrikeRule{{Proto: 6}}})}, "needs hits, distinct"},
		{"fs no window", TableSpec{FirstStrike: fs(FirstStrikeConfig{Rules: []FirstStrikeRule{{Proto: 6, DistinctPorts: 5}}})}, "window"},
		{"fs hits", TableSpec{FirstStrike: fs(FirstStrikeConfig{Rules: []FirstStrikeRule{{Proto: 6, Hits: 5000, Window: time.Second}}})}, "hits 5000"},
		{"fs ports", TableSpec{FirstStrike: fs(FirstStrikeConfig{Rules: []FirstStrikeRule{{Proto: 6, Hits: 1, Ports: []rules.PortRange{{Lo: 9, Hi: 1}}}}})}, "start above end"},
		{"fs valve", TableSpec{FirstStrike: fs(FirstStrikeConfig{Rules: []FirstStrikeRule{ok}, MaxPerMinute: -1})}, "negative"},
		{"fs provisional", TableSpec{FirstStrike: fs(FirstStrikeConfig{Rules: []FirstStrikeRule{ok}, Provisional: time.Microsecond})}, "provisional"},
		{"fs log prefix", TableSpec{FirstStrike: fs(FirstStrikeConfig{Prefix: strings.Repeat("x", 128)})}, "log prefix"},
		{"adv reversed range", TableSpec{Advanced: &AdvancedConfig{TCP: []rules.PortRange{{Lo: 100, Hi: 1}}}}, "start above end"},
		{"adv reversed udp range", TableSpec{Advanced: &AdvancedConfig{UDP: []rules.PortRange{{Lo: 2, Hi: 1}}}}, "start above end"},
		{"adv long prefix", TableSpec{Advanced: &AdvancedConfig{Prefix: strings.Repeat("x", 128)}}, "log prefix"},
		{"adv NUL in prefix", TableSpec{Advanced: &AdvancedConfig{Prefix: "a\x00b"}}, "log prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.spec.normalize()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
			// OpenTable validates before it dials, on any system.
			if _, err := OpenTable(tc.spec, 0); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("OpenTable: err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestPortDiff(t *testing.T) {
	for _, tc := range []struct {
		have, want, add, del []uint16
	}{
		{nil, nil, nil, nil},
		{nil, []uint16{22, 80}, []uint16{22, 80}, nil},
		{[]uint16{22, 80}, nil, nil, []uint16{22, 80}},
		{[]uint16{22, 80, 443}, []uint16{22, 443, 8080}, []uint16{8080}, []uint16{80}},
		{[]uint16{1, 2, 3}, []uint16{1, 2, 3}, nil, nil},
	} {
		add, del := portDiff(tc.have, tc.want)
		if !slices.Equal(add, tc.add) || !slices.Equal(del, tc.del) {
			t.Errorf("portDiff(%v, %v) = +%v -%v, want +%v -%v", tc.have, tc.want, add, del, tc.add, tc.del)
		}
	}
	if got := (ListenPorts{TCP: []uint16{8080, 22, 113, 22}, UDP: []uint16{}}).normalize(); !slices.Equal(got.TCP, []uint16{22, 113, 8080}) || got.UDP != nil {
		t.Errorf("normalize = %+v", got)
	}
}
