package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestTextfile(t *testing.T) {
	m := New()
	m.Update(Snapshot{
		Inputs:     []Input{{Name: "nflog:7", Events: 1234, Overruns: 2, Failures: 1, Unspecified: 5, Malformed: map[string]uint64{"bad-port": 3, "truncated": 1}}},
		RuleEvents: map[string]uint64{"tcp-portscan": 1000, "udp-portscan": 34},
		BansActive: 5, Tracked: 17,
	})
	m.Decision("ban", "tcp-portscan")
	m.Decision("ban", "tcp-portscan")
	m.Decision("rate-limited", "udp-portscan")
	m.ObserveReaction(700 * time.Microsecond)
	path := filepath.Join(t.TempDir(), "sentry.prom")
	if err := m.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{
		`sentry_nflog_input_events_total{input="nflog:7"} 1234`,
		`sentry_nflog_input_malformed_total{input="nflog:7",reason="bad-port"} 3`,
		`sentry_nflog_nflog_overruns_total{input="nflog:7"} 2`,
		`sentry_nflog_input_failures_total{input="nflog:7"} 1`,
		`sentry_nflog_input_unspecified_source_total{input="nflog:7"} 5`,
		`sentry_nflog_rule_events_total{rule="udp-portscan"} 34`,
		`sentry_nflog_decisions_total{action="ban",rule="tcp-portscan"} 2`,
		`sentry_nflog_decisions_total{action="rate-limited",rule="udp-portscan"} 1`,
		`sentry_nflog_bans_active 5`,
		`sentry_nflog_tracked_sources 17`,
		`sentry_nflog_reaction_seconds_bucket{le="0.001"} 1`,
		`sentry_nflog_reaction_seconds_bucket{le="0.0005"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("textfile lacks %q:\n%s", want, text)
		}
	}
	if n, err := testutil.GatherAndCount(m.Registry()); err != nil || n < 10 {
		t.Errorf("gathered %d metrics, err %v", n, err)
	}
	// No temporary file is left beside it.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the textfile", len(entries))
	}
}

func TestFleetMetrics(t *testing.T) {
	m := New()
	m.EnableFleet()
	m.Update(Snapshot{Fleet: &Fleet{Connected: true, Published: 3, Received: 9, Applied: 5,
		Refused: map[string]uint64{"ignored": 1, "valve": 3}, RemoteActive: 5}})
	m.ObservePropagation(800 * time.Microsecond)
	m.ObservePropagation(-time.Millisecond) // clocks apart: counted as 0
	path := filepath.Join(t.TempDir(), "sentry.prom")
	if err := m.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	for _, want := range []string{
		`sentry_nflog_fleet_connected 1`,
		`sentry_nflog_fleet_published_total 3`,
		`sentry_nflog_fleet_received_total 9`,
		`sentry_nflog_fleet_applied_total 5`,
		`sentry_nflog_fleet_refused_total{reason="valve"} 3`,
		`sentry_nflog_fleet_remote_bans_active 5`,
		`sentry_nflog_fleet_propagation_seconds_bucket{le="0.00025"} 1`,
		`sentry_nflog_fleet_propagation_seconds_bucket{le="0.001"} 2`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("textfile lacks %q:\n%s", want, data)
		}
	}
	// Without fleet mode none of it appears.
	m2 := New()
	m2.Update(Snapshot{})
	m2.WriteTextfile(path)
	if data, _ := os.ReadFile(path); strings.Contains(string(data), "fleet") {
		t.Errorf("fleet metrics without fleet mode:\n%s", data)
	}
}
