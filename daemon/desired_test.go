package daemon

import (
	"reflect"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

func TestStrikeConfigFromRules(t *testing.T) {
	cfg, err := config.Load("t.yaml", []byte(`
rules:
  - {name: syn, proto: tcp, flags: [syn], threshold: {distinct_ports: 5, within: 60s}, ban: 1h}
  - {name: stealth, proto: tcp, flags: [null, fin, xmas], threshold: {hits: 1}, ban: 24h}
  - {name: udp-low, proto: udp, ports: ["1-1023", 5353], threshold: {distinct_ports: 3, within: 2m}, ban: 1h}
  - {name: ufw-only, prefix: "[UFW BLOCK]", threshold: {distinct_ports: 5, within: 60s}, ban: 1h}
  - {name: acks, proto: tcp, flags: [ack], threshold: {hits: 50, within: 10s}, ban: 1h}
  - {name: any, threshold: {hits: 100, within: 10s}, ban: 1h}
bans: {max_new_per_minute: 30}
first_strike: {provisional: 5m, set_size: 4096}
`))
	if err != nil {
		t.Fatal(err)
	}
	fc, notes, ok := StrikeConfig(cfg)
	if !ok {
		t.Fatal("nothing derived")
	}
	wantNotes := []string{
		"rule ufw-only left to the daemon: it selects a log prefix or interface",
	}
	if !reflect.DeepEqual(notes, wantNotes) {
		t.Errorf("notes\n got %q\nwant %q", notes, wantNotes)
	}
	want := []actions.FirstStrikeRule{
		{Name: "syn", Proto: 6, TCPFlags: rules.ClassSYN, DistinctPorts: 5, Window: time.Minute},
		{Name: "stealth", Proto: 6, TCPFlags: rules.ClassNull | rules.ClassFIN | rules.ClassXmas, Hits: 1},
		{Name: "udp-low", Proto: 17, Ports: []rules.PortRange{{Lo: 1, Hi: 1023}, {Lo: 5353, Hi: 5353}}, DistinctPorts: 3, Window: 2 * time.Minute},
		// ufw-only selects a log prefix: the daemon's. Every flag class
		// has its kernel match.
		{Name: "acks", Proto: 6, TCPFlags: rules.ClassACK, Hits: 50, Window: 10 * time.Second},
		// No protocol: every protocol the logging rules log, counted
		// together as the engine does.
		{Name: "any", Proto: 0, Hits: 100, Window: 10 * time.Second},
		// bans.aggregate, on by default: keys per /24 and /48.
		{Name: "aggregate", DistinctKeys: 8, Wide4: 24, Wide6: 48, Window: time.Minute},
	}
	if !reflect.DeepEqual(fc.Rules, want) {
		t.Errorf("rules\n got %+v\nwant %+v", fc.Rules, want)
	}
	if fc.Provisional != 5*time.Minute || fc.MaxPerMinute != 30 || fc.SetSize != 4096 || fc.Group != 7 {
		t.Errorf("config %+v", fc)
	}
	// Off, or without an NFLOG group to log strikes to: nothing.
	cfg.FirstStrike.Enabled = false
	if _, _, ok := StrikeConfig(cfg); ok {
		t.Error("derived with first_strike disabled")
	}
	cfg.FirstStrike.Enabled = true
	cfg.Inputs.NFLOG = nil
	if _, _, ok := StrikeConfig(cfg); ok {
		t.Error("derived without an NFLOG group")
	}
}
