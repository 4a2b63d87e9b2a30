package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sentry-nflog/sentry-nflog/daemon"
)

// opsConfig writes a config with its state_dir in a temporary directory
// and returns its path and the state_dir.
func opsConfig(t *testing.T, extra string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	path := filepath.Join(dir, "sentry.yaml")
	yaml := fmt.Sprintf(`state_dir: %s
ignore: [127.0.0.0/8, 198.51.100.128/25, self, gateways, resolvers]
rules:
  - {name: tcp-portscan, proto: tcp, flags: [syn], threshold: {distinct_ports: 5, within: 60s}, ban: 1h}
%s`, stateDir, extra)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, stateDir
}

// opsHost is a host with fixed addresses, gateways and resolvers.
type opsHost struct{ resolversErr error }

func (opsHost) Self() ([]netip.Prefix, error) {
	return []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32"), netip.MustParsePrefix("2001:db8:51::1/128")}, nil
}
func (opsHost) Gateways() ([]netip.Prefix, error) {
	return []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}, nil
}
func (h opsHost) Resolvers() ([]netip.Prefix, error) {
	return []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32")}, h.resolversErr
}
func (opsHost) Listening() ([]uint16, []uint16, error) { return nil, nil, nil }

func runBlock(t *testing.T, host daemon.Host, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := block(&env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}, args, host)
	return code, out.String(), errb.String()
}

// Refusals are decided before anything is recorded or inserted: these
// run without a table (and never touch this host's firewall).
func TestBlockRefusals(t *testing.T) {
	cfg, stateDir := opsConfig(t, "")
	tests := []struct {
		name string
		host daemon.Host
		args []string
		code int
		want string
	}{
		{"gateway", opsHost{}, []string{"192.0.2.1"}, exitFailure, "block: refused: 192.0.2.1/32: is 192.0.2.1, this host's gateway (ignore: gateways): never banned"},
		{"own address", opsHost{}, []string{"192.0.2.10"}, exitFailure, "is 192.0.2.10, an address of this host (ignore: self)"},
		{"own IPv6 address, forced", opsHost{}, []string{"--force", "2001:db8:51::/48"}, exitFailure, "covers 2001:db8:51::1, an address of this host (ignore: self): never banned"},
		{"resolver", opsHost{}, []string{"192.0.2.53"}, exitFailure, "this host's DNS resolver"},
		{"ignore list", opsHost{}, []string{"198.51.100.200"}, exitFailure, "is inside 198.51.100.128/25, in the ignore list"},
		{"one refused refuses all", opsHost{}, []string{"203.0.113.7", "192.0.2.1"}, exitFailure, "1 of 2 refused: nothing banned"},
		{"too wide", opsHost{}, []string{"203.0.113.0/24"}, exitFailure, "a /24 is wider than the /32 bans here (bans.ipv4_prefix); --force bans it all"},
		{"forced past the cap", opsHost{}, []string{"--force", "10.0.0.0/8"}, exitFailure, "16777216 bans of /32"},
		{"unresolved word", opsHost{resolversErr: errors.New("no resolv.conf")}, []string{"203.0.113.7"}, exitFailure, "cannot resolve the ignore word resolvers: no resolv.conf: refusing"},
		{"not an address", opsHost{}, []string{"example.com"}, exitUsage, `"example.com" is not an address or prefix`},
		{"bad duration", opsHost{}, []string{"--for", "soon", "203.0.113.7"}, exitUsage, "--for: invalid duration"},
		{"newline in reason", opsHost{}, []string{"--reason", "a\nb", "203.0.113.7"}, exitUsage, "control characters"},
		{"nothing", opsHost{}, nil, exitUsage, "Usage: sentry-nflog block"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runBlock(t, tc.host, "", append([]string{"--config", cfg}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
	if bs, err := daemon.ReadBlocks(stateDir); err != nil || len(bs) != 0 {
		t.Errorf("refusals recorded %v (%v)", bs, err)
	}
}

// writeJournal writes entries as the daemon's journal in stateDir.
func writeJournal(t *testing.T, stateDir string, es ...daemon.JournalEntry) {
	t.Helper()
	os.MkdirAll(stateDir, 0o750)
	var b bytes.Buffer
	for _, e := range es {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(data, '\n'))
	}
	if err := os.WriteFile(filepath.Join(stateDir, daemon.JournalFile), b.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestHistoryTextAndFilters(t *testing.T) {
	cfg, stateDir := opsConfig(t, "")
	now := time.Now().UTC().Truncate(time.Second)
	old := now.Add(-10 * 24 * time.Hour)
	writeJournal(t, stateDir,
		daemon.JournalEntry{Time: old, Action: "ban", Origin: "daemon", Source: netip.MustParsePrefix("203.0.113.7/32"), Rule: "tcp-portscan",
			BanSeconds: 3600, Hits: 6, Distinct: 5, Ports: []uint16{22, 23, 80, 443, 8080}, Proto: "TCP", Flags: "SYN", Offence: 1},
		daemon.JournalEntry{Time: now.Add(-2 * time.Hour), Action: "ban", Origin: "daemon", Source: netip.MustParsePrefix("2001:db8:bad:1::/64"),
			Address: netip.MustParseAddr("2001:db8:bad:1::9"), Rule: "stealth-scan", BanSeconds: 86400, Hits: 1, Distinct: 1, Ports: []uint16{22}, Proto: "TCP", Flags: "FIN", Offence: 2},
		daemon.JournalEntry{Time: now.Add(-time.Hour), Action: "ban", Origin: "fleet:web2", Source: netip.MustParsePrefix("198.51.100.9/32"), Rule: "udp-portscan", BanSeconds: 1800},
		daemon.JournalEntry{Time: now.Add(-30 * time.Minute), Action: "block", Origin: "manual", Source: netip.MustParsePrefix("203.0.113.7/32"), BanSeconds: 7 * 86400, Reason: "ssh brute force"},
		daemon.JournalEntry{Time: now.Add(-time.Minute), Action: "pardon", Origin: "manual", Source: netip.MustParsePrefix("203.0.113.7/32")},
	)
	// A line a crash cut short, at the end.
	f, _ := os.OpenFile(filepath.Join(stateDir, daemon.JournalFile), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"time":"2026-`)
	f.Close()

	code, out, stderr := runCLI(t, nil, "history", "--config", cfg)
	if code != exitOK || !strings.Contains(stderr, "1 unreadable lines skipped") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "TIME") {
		t.Fatalf("history:\n%s", out)
	}
	for i, want := range []string{
		"ban     203.0.113.7/32       daemon      tcp-portscan  1h   hits=6 ports=22,23,80,443,8080 (5 distinct) flags=SYN proto=TCP offence=1",
		"ban     2001:db8:bad:1::/64  daemon      stealth-scan  1d   addr=2001:db8:bad:1::9 hits=1 ports=22 (1 distinct) flags=FIN proto=TCP offence=2",
		"ban     198.51.100.9/32      fleet:web2  udp-portscan  30m",
		`block   203.0.113.7/32       manual      -             7d   "ssh brute force"`,
		"pardon  203.0.113.7/32       manual      -             -",
	} {
		if got := strings.TrimSpace(lines[i+1][strings.IndexByte(lines[i+1], ' '):]); got != want {
			t.Errorf("line %d:\n got %q\nwant %q", i+1, got, want)
		}
	}

	// --since and --source, and their JSON.
	_, out, _ = runCLI(t, nil, "history", "--config", cfg, "--since", "7d", "--source", "203.0.113.7", "--json")
	var got []daemon.JournalEntry
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var e daemon.JournalEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		got = append(got, e)
	}
	if len(got) != 2 || got[0].Action != "block" || got[1].Action != "pardon" {
		t.Errorf("--since 7d --source 203.0.113.7: %+v", got)
	}
	_, out, _ = runCLI(t, nil, "history", "--config", cfg, "--source", "2001:db8:bad:1::77", "--json")
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"address":"2001:db8:bad:1::9"`) {
		t.Errorf("an address inside a banned /64: %s", out)
	}
	code, _, stderr = runCLI(t, nil, "history", "--config", cfg, "--source", "192.0.2.200")
	if code != exitOK || !strings.Contains(stderr, "no decision") {
		t.Errorf("no match: exit %d, %s", code, stderr)
	}
}

// status reads the file, says whether the daemon runs and exits 1 when
// not; --json carries the file and the verdict.
func TestStatusCommand(t *testing.T) {
	cfg, stateDir := opsConfig(t, "")
	if code, _, stderr := runCLI(t, nil, "status", "--config", cfg); code != exitFailure || !strings.Contains(stderr, "has not run") {
		t.Errorf("no status file: exit %d, %s", code, stderr)
	}
	// The rendering itself is tested in package ops; this is the command.
	st := &daemon.Status{PID: os.Getpid(), Started: time.Now().Add(-time.Hour), Written: time.Now(), IntervalSeconds: 5,
		Table: "inet sentry", Bans: daemon.BanStatus{Active: map[string]int{"daemon": 12}}}
	writeStatusFile(t, stateDir, st)
	code, out, _ := runCLI(t, nil, "status", "--config", cfg)
	if code != exitOK || !strings.Contains(out, fmt.Sprintf("running, pid %d", os.Getpid())) {
		t.Errorf("running: exit %d:\n%s", code, out)
	}
	st.Stopped = true
	writeStatusFile(t, stateDir, st)
	code, out, _ = runCLI(t, nil, "status", "--config", cfg, "--json")
	var got struct {
		Running bool   `json:"running"`
		Note    string `json:"note"`
		PID     int    `json:"pid"`
		Bans    struct {
			Active map[string]int `json:"active"`
		} `json:"bans"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if code != exitFailure || got.Running || !strings.Contains(got.Note, "stopped") || got.PID != os.Getpid() || got.Bans.Active["daemon"] != 12 {
		t.Errorf("stopped, --json: exit %d, %+v", code, got)
	}
}

func writeStatusFile(t *testing.T, dir string, st *daemon.Status) {
	t.Helper()
	os.MkdirAll(dir, 0o750)
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, daemon.StatusFile), data, 0o640); err != nil {
		t.Fatal(err)
	}
}
