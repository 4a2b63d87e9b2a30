package ops

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/daemon"
	"github.com/sentry-nflog/sentry-nflog/internal/testkit"
)

// golden compares got with testdata/golden/name at the repository's root.
func golden(t *testing.T, name, got string) {
	t.Helper()
	testkit.Golden(t, filepath.Join("..", "..", "testdata", "golden", name), []byte(got))
}

func TestBlockTargetsFromAFile(t *testing.T) {
	list := "# scanners seen this week\n203.0.113.7\n\n2001:db8:bad:1::/64   # the whole /64\n  198.51.100.9 \n"
	got, err := ReadTargets([]string{"203.0.113.8"}, "-", strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, tg := range got {
		s = append(s, fmt.Sprintf("%s@%d", tg.Key, tg.Line))
	}
	if want := "203.0.113.8/32@0 203.0.113.7/32@2 2001:db8:bad:1::/64@4 198.51.100.9/32@5"; strings.Join(s, " ") != want {
		t.Errorf("targets %s, want %s", strings.Join(s, " "), want)
	}
	if _, err := ReadTargets(nil, "-", strings.NewReader("203.0.113.7\nnot-an-address\n")); err == nil || !strings.Contains(err.Error(), "- line 2") {
		t.Errorf("a bad line: %v, want its line number", err)
	}
	var big strings.Builder
	for i := range daemon.MaxBlockKeys + 1 {
		fmt.Fprintf(&big, "10.%d.%d.%d\n", i>>16, (i>>8)&255, i&255)
	}
	path := filepath.Join(t.TempDir(), "big.txt")
	os.WriteFile(path, []byte(big.String()), 0o644)
	if _, err := ReadTargets(nil, path, nil); err == nil || !strings.Contains(err.Error(), "more than 10000 addresses") {
		t.Errorf("one past the cap: %v", err)
	}
}

func statusFixture() *daemon.Status {
	t0 := time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)
	return &daemon.Status{
		PID: 4242, Started: t0, Written: t0.Add(2*time.Hour + 3*time.Minute), IntervalSeconds: 5,
		Config: "/etc/sentry-nflog/sentry.yaml", Table: "inet sentry",
		Inputs: []daemon.InputStatus{
			{Name: "nflog:7", Ready: true, Events: 120345, Malformed: 2, Overruns: 0},
			{Name: "file:/var/log/kern.log", Ready: false, Events: 17, Failures: 3},
		},
		Events: 120362, EventsPerMinute: 812.4, DecisionsPerMinute: 0.4,
		Decisions: map[string]uint64{"ban": 41, "ignored": 3},
		Bans: daemon.BanStatus{Active: map[string]int{"daemon": 12, "fleet": 30, "block": 2, "manual": 1, "kernel": 1},
			Listed: t0.Add(2*time.Hour + 2*time.Minute + 57*time.Second), Errors: 1},
		FirstStrike: "degraded",
		Fleet: &daemon.FleetStatus{Connected: true, Published: 41, Received: 130, Applied: 120,
			Refused: map[string]uint64{"valve": 7, "ignored": 3}, RemoteActive: 30},
		LastErrors: []daemon.LogRecord{
			{Time: t0.Add(time.Minute), Level: "ERROR", Message: "first strike unavailable; bans come from the daemon only", Attrs: "when=start err=\"nftables: ...: operation not supported\""},
			{Time: t0.Add(2 * time.Hour), Level: "WARN", Message: "nftables objects were removed: recreating them", Attrs: `missing="table inet sentry"`},
		},
	}
}

func TestStatusRendering(t *testing.T) {
	st := statusFixture()
	now := st.Written.Add(2 * time.Second)
	var b bytes.Buffer
	running, note := liveness(st, now, func(int) bool { return true })
	if !running {
		t.Fatalf("a fresh status of a live pid: not running (%s)", note)
	}
	renderStatus(&b, st, now, running, note)
	golden(t, "status-running.txt", b.String())

	// Stale three ways: stopped cleanly, pid gone, too old.
	stopped := *st
	stopped.Stopped = true
	for _, tc := range []struct {
		name  string
		st    *daemon.Status
		now   time.Time
		alive bool
		want  string
	}{
		{"stopped", &stopped, st.Written.Add(time.Hour), false, "the daemon stopped at 2026-11-24T17:03:00Z (1h ago)"},
		{"killed", st, now, false, "pid 4242 is gone: the daemon was killed or crashed; last status 2s ago"},
		{"stuck", st, st.Written.Add(16 * time.Second), true, "the status is 16s old (written every 5s): the daemon is not running, or stuck"},
	} {
		running, note := liveness(tc.st, tc.now, func(int) bool { return tc.alive })
		if running || note != tc.want {
			t.Errorf("%s: running %v, %q; want %q", tc.name, running, note, tc.want)
		}
	}
	b.Reset()
	_, note = liveness(&stopped, st.Written.Add(time.Hour), func(int) bool { return false })
	stopped.LastErrors = nil
	stopped.Fleet = nil
	renderStatus(&b, &stopped, st.Written.Add(time.Hour), false, note)
	golden(t, "status-stopped.txt", b.String())
}
