package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

func TestAcceptPatterns(t *testing.T) {
	cases := []struct {
		pattern string
		prefix  string
		want    bool
	}{
		// Without a star: the leading part, as accept_prefixes always was.
		{"[UFW ALLOW]", "[UFW ALLOW]", true},
		{"[UFW AUDIT", "[UFW AUDIT INVALID]", true},
		{"[UFW AUDIT", "x[UFW AUDIT]", false},
		// With stars: the whole prefix.
		{"*-ACC-*", "SFW2-INext-ACC-TCP", true},
		{"*-ACC-*", "SFW2-INext-ACC", false},
		{"*ACCEPT", "policy ACCEPT", true},
		{"*ACCEPT", "ACCEPT", true},
		{"*ACCEPT", "ACCEPTED-BUT-LOGGED", false},
		{"SFW2-*-ACC*", "SFW2-IN-ACC-RELATED", true},
		{"SFW2-*-ACC*", "SFW2-INext-DROP-DEFLT", false},
		{"ab*ba", "aba", false}, // the ends may not overlap
		{"ab*ba", "abba", true},
		{"a**b", "ab", true},
		{"*x*y*z*", "..x..y..z..", true},
		{"*x*y*z*", "..x..z..y..", false},
	}
	for _, tc := range cases {
		ps, err := compileAccept([]string{tc.pattern})
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		if got := ps[0].match(tc.prefix); got != tc.want {
			t.Errorf("%q matching %q = %v, want %v", tc.pattern, tc.prefix, got, tc.want)
		}
	}
	for _, bad := range []string{"", "*", "***"} {
		if err := CheckAcceptPrefixes([]string{"[UFW ALLOW]", bad}); err == nil || !strings.Contains(err.Error(), "accept_prefixes[1]") {
			t.Errorf("%q: err = %v, want one naming accept_prefixes[1]", bad, err)
		}
		cfg := testConfig()
		cfg.AcceptPrefixes = []string{bad}
		if _, err := NewEngine(cfg); err == nil {
			t.Errorf("NewEngine took accept pattern %q", bad)
		}
	}
}

// The default patterns against prefixes seen in real logs (see
// testdata/logs/real/README.md): every accept marker is taken, no drop or
// reject marker is.
func TestDefaultAcceptPrefixes(t *testing.T) {
	accepted := []string{
		"[UFW ALLOW]", "[UFW AUDIT]", "[UFW AUDIT INVALID]",
		"SFW2-INext-ACC-TCP", "SFW2-INext-ACC", "SFW2-IN-ACC-RELATED", "SFW2-INext-ACC-RELATED", "SFW2-FWDext-ACC-UDP",
		"[LAN_LOCAL-default-A]", "[WAN_OUT-2000-A]", "[SOMETHING-1234-A]", "[ipv4-INP-filter-10-A]",
		"[LAN_LOCAL-RET-2147483647]", "[LAN_IN-RET-2000]",
		"ACCEPT", "policy ACCEPT", "Shorewall:net2fw:ACCEPT", "Swl:AllowLPR:2:ACCEPT", "INPUT:ACCEPT",
	}
	dropped := []string{
		"", "SENTRY", "[UFW BLOCK]", "[UFW LIMIT BLOCK]",
		"SFW2-INext-DROP-DEFLT", "SFW2-INext-DROP-DEFLT-INV", "SuSE-FW-DROP-DEFAULT",
		"[WAN_LOCAL-default-D]", "[source-dest-default-D]", "[wan-lan-default-D]", "[LAN_IN-3001-D]", "[WAN_IN-10-R]",
		"[LAN_LOCAL-D-2147483647]", "[DNAT-br0]",
		"policy DROP", "policy REJECT", "DROP", "Shorewall:net2fw:DROP", "Shorewall:FORWARD:REJECT",
		"filter_IN_public_REJECT", "STATE_INVALID_DROP", "FINAL_REJECT", "reject wan in", "DROP(src wan)",
		"iptables DROP_INPUT", "IPTABLES-DROP", "IN-work", "DENY", "banIP/inbound/drop/country.v4",
	}
	e := newEngine(t, withAccept(DefaultAcceptPrefixes()))
	for _, p := range accepted {
		if !e.accepted(p) {
			t.Errorf("%q is an accept marker the defaults miss", p)
		}
	}
	for _, p := range dropped {
		if e.accepted(p) {
			t.Errorf("%q is no accept marker but the defaults take it", p)
		}
	}
}

func withAccept(patterns []string) Config {
	cfg := testConfig()
	cfg.AcceptPrefixes = patterns
	return cfg
}

func TestAcceptedNeverEvidence(t *testing.T) {
	e := newEngine(t, withAccept(DefaultAcceptPrefixes()))
	for i, prefix := range []string{"SFW2-INext-ACC-TCP", "[WAN_LOCAL-10-A]", "[LAN_LOCAL-RET-2147483647]", "policy ACCEPT", "Shorewall:net2fw:ACCEPT"} {
		for port := range uint16(10) {
			ev := syn("203.0.113.7", port+1, time.Duration(i*10+int(port))*time.Second)
			ev.Prefix = prefix
			if d, ok := e.Step(&ev); ok {
				t.Fatalf("%s: accepted packet gave decision %+v", prefix, d)
			}
		}
	}
	if s := e.Stats(); s.Accepted != 50 {
		t.Errorf("Accepted = %d, want 50", s.Accepted)
	}
}

func TestAcceptMatchAllocs(t *testing.T) {
	e := newEngine(t, withAccept(DefaultAcceptPrefixes()))
	prefixes := []string{"[UFW BLOCK]", "SFW2-INext-DROP-DEFLT", "[WAN_LOCAL-default-D]", "policy DROP", "SENTRY"}
	if n := testing.AllocsPerRun(100, func() {
		for _, p := range prefixes {
			e.accepted(p)
		}
	}); n != 0 {
		t.Errorf("accepted allocates %v times per run", n)
	}
}

// A packet without its transport header (a later fragment) is neither a
// NULL probe nor a probe of port 0: rules with flag classes or ports never
// match it, and it adds no distinct port.
func TestNoL4HeaderEvents(t *testing.T) {
	e := newEngine(t, testConfig())
	for i := range 20 {
		ev := syn("203.0.113.7", 0, time.Duration(i)*time.Second)
		ev.Flags, ev.NoL4Header = 0, true
		if d, ok := e.Step(&ev); ok {
			t.Fatalf("fragment %d gave %+v", i, d)
		}
	}
	if s := e.Stats(); s.RuleEvents[1] != 0 || s.Unmatched != 20 {
		t.Errorf("stats %+v: stealth-scan took a fragment", s)
	}

	// A rule without flags or ports counts such packets, but not as ports.
	cfg := testConfig()
	cfg.Rules = []Rule{{Name: "udp-any", Protos: []uint8{parsers.ProtoUDP}, DistinctPorts: 3, Within: time.Minute, Ban: time.Hour}}
	e = newEngine(t, cfg)
	step := func(port uint16, noL4 bool, at time.Duration) bool {
		ev := syn("198.51.100.7", port, at)
		ev.Proto, ev.Flags, ev.NoL4Header = parsers.ProtoUDP, 0, noL4
		_, ok := e.Step(&ev)
		return ok
	}
	if step(53, false, 0) || step(0, true, time.Second) || step(0, true, 2*time.Second) || step(123, false, 3*time.Second) {
		t.Fatal("banned with two known ports")
	}
	if !step(161, false, 4*time.Second) {
		t.Error("no ban at the third known port")
	}
	if got := e.Stats().RuleEvents[0]; got != 5 {
		t.Errorf("rule events = %d, want 5", got)
	}
}
