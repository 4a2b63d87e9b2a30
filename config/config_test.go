package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	sentrynflog "github.com/sentry-nflog/sentry-nflog"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

func TestParseReference(t *testing.T) {
	cfg, err := Load("sentry.yaml", sentrynflog.DefaultConfig())
	if err != nil {
		t.Fatalf("shipped sentry.yaml: %v", err)
	}
	if len(cfg.Engine.Rules) != 7 {
		t.Fatalf("rules = %d, want 7", len(cfg.Engine.Rules))
	}
	r := cfg.Engine.Rules[0]
	if r.Name != "tcp-portscan" || r.DistinctPorts != 5 || r.Within != time.Minute || r.Ban != time.Hour ||
		r.Flags != rules.ClassSYN || !reflect.DeepEqual(r.Protos, []uint8{parsers.ProtoTCP}) {
		t.Errorf("tcp-portscan = %+v", r)
	}
	if s := cfg.Engine.Rules[1]; s.Flags != rules.ClassNull|rules.ClassFIN|rules.ClassXmas|rules.ClassSYNFIN|rules.ClassOdd || s.Hits != 1 || !s.Tripwire() {
		t.Errorf("stealth-scan = %+v", s)
	}
	// Every flag class but rst (which no port answers) is banned by some
	// rule of the shipped file.
	var covered rules.FlagClass
	for _, r := range cfg.Engine.Rules {
		if slices.Contains(r.Protos, parsers.ProtoTCP) && r.Flags != 0 {
			covered |= r.Flags
		}
	}
	if want := rules.AllClasses &^ rules.ClassRST; covered != want {
		t.Errorf("flag classes with a rule: %v, want %v", covered, want)
	}
	if p := cfg.Engine.Rules[5]; p.Name != "proto-scan" || p.DistinctProtos != 3 || len(p.Protos) != 0 {
		t.Errorf("proto-scan = %+v", p)
	}
	if sl := cfg.Engine.Rules[6]; sl.Name != "slow-scan" || sl.DistinctPorts != 15 || sl.Within != time.Hour {
		t.Errorf("slow-scan = %+v", sl)
	}
	if b := cfg.Engine.Bans; b.OverValveBan != 30*time.Second || b.SinglePacketBan != 10*time.Minute || b.SinglePacketPerMinute != 20 {
		t.Errorf("bans = %+v", b)
	}
	if a := cfg.Engine.Aggregate; a != rules.DefaultAggregate() {
		t.Errorf("aggregate = %+v", a)
	}
	want := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	if !reflect.DeepEqual(cfg.Ignore.Prefixes, want) || !cfg.Ignore.Self || !cfg.Ignore.Gateways || !cfg.Ignore.Resolvers {
		t.Errorf("ignore = %+v", cfg.Ignore)
	}
}

// TestDefaultsMatchReference keeps the built-in defaults of omitted keys
// equal to the shipped file, so leaving a key out means what the file says.
func TestDefaultsMatchReference(t *testing.T) {
	ref, err := Load("sentry.yaml", sentrynflog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	minimal := `
rules:
  - {name: tcp-portscan, proto: tcp, flags: [syn], threshold: {distinct_ports: 5, within: 60s}, ban: 1h}
  - {name: stealth-scan, proto: tcp, flags: [null, fin, xmas, synfin, odd], threshold: {hits: 1}, ban: 24h}
  - {name: ack-scan, proto: tcp, flags: [ack, finack, synack], ports: "1-32767", threshold: {distinct_ports: 5, within: 60s}, ban: 1h}
  - {name: udp-portscan, proto: udp, threshold: {distinct_ports: 5, within: 60s}, ban: 1h}
  - {name: sctp-portscan, proto: sctp, threshold: {distinct_ports: 5, within: 60s}, ban: 1h}
  - {name: proto-scan, threshold: {distinct_protos: 3, within: 60s}, ban: 1h}
  - {name: slow-scan, proto: [tcp, udp, sctp], ports: "1-32767", threshold: {distinct_ports: 15, within: 1h}, ban: 1h}
`
	got, err := Load("minimal.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	got.File = ref.File
	if !reflect.DeepEqual(got, ref) {
		t.Errorf("defaults differ from sentry.yaml:\n got %+v\nwant %+v", got, ref)
	}
}

func TestInvalidFiles(t *testing.T) {
	files, err := filepath.Glob("../testdata/config/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid configs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var wants []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# wantErr: "); ok {
					wants = append(wants, w)
				}
			}
			if len(wants) == 0 {
				t.Fatal("file has no # wantErr: header")
			}
			_, err = Load(filepath.Base(f), data)
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Load = %v, want *Error", err)
			}
			for _, w := range wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestValidFiles(t *testing.T) {
	files, _ := filepath.Glob("../testdata/config/valid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no valid configs")
	}
	for _, f := range files {
		if _, err := LoadFile(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestRuleSelectors(t *testing.T) {
	cfg, err := Load("t.yaml", []byte(`
ignore: [192.0.2.7, "2001:db8::/32"]
rules:
  - name: web
    prefix: ["[UFW BLOCK] ", "filter_IN_*"]
    proto: [tcp, udp, 132]
    ports: [22, "1000-1002", "8080,8443"]
    interface: [eth0, "wg*"]
    threshold: {hits: 3, distinct_ports: 2, within: 1d12h}
    ban: 7d
`))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Engine.Rules[0]
	if !reflect.DeepEqual(r.Prefixes, []rules.Pattern{"[UFW BLOCK]", "filter_IN_*"}) {
		t.Errorf("prefixes = %q", r.Prefixes)
	}
	if !reflect.DeepEqual(r.Protos, []uint8{6, 17, 132}) {
		t.Errorf("protos = %v", r.Protos)
	}
	for _, p := range []uint16{22, 1000, 1001, 1002, 8080, 8443} {
		if !r.Ports.Has(p) {
			t.Errorf("port %d missing", p)
		}
	}
	for _, p := range []uint16{0, 21, 23, 999, 1003, 65535} {
		if r.Ports.Has(p) {
			t.Errorf("port %d present", p)
		}
	}
	if r.Within != 36*time.Hour || r.Ban != 7*24*time.Hour || r.Hits != 3 || r.DistinctPorts != 2 {
		t.Errorf("threshold = %+v", r)
	}
	if got := cfg.Ignore.Prefixes; len(got) != 2 || got[0] != netip.MustParsePrefix("192.0.2.7/32") {
		t.Errorf("ignore = %v", got)
	}
	if cfg.Ignore.Self {
		t.Error("self set without being listed")
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90s", 90 * time.Second, true},
		{"1h30m", 90 * time.Minute, true},
		{"7d", 168 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"6x", 0, false},
		{"d", 0, false},
		{"", 0, false},
		{"1.5d", 0, false},
	} {
		got, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add(sentrynflog.DefaultConfig())
	files, _ := filepath.Glob("../testdata/config/*/*.yaml")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Load("fuzz.yaml", data)
		if err != nil {
			var cerr *Error
			if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
				t.Fatalf("error is not a *Error with problems: %v", err)
			}
			return
		}
		// A config that loads must give an engine.
		if _, err := rules.NewEngine(cfg.Engine); err != nil {
			t.Fatalf("loaded config rejected by the engine: %v", err)
		}
	})
}

func TestAcceptPatternErrorsAreLocated(t *testing.T) {
	_, err := Load("t.yaml", []byte("accept_prefixes: [\"[UFW ALLOW]\", \"**\"]\nrules:\n  - {name: a, threshold: {hits: 1}, ban: 1h}\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "t.yaml:1:") || !strings.Contains(err.Error(), "accept_prefixes[1]") {
		t.Fatalf("Load = %v, want a located error on accept_prefixes[1]", err)
	}
}
