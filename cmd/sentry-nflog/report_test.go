package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplayReport: replay --report writes the page next to its usual
// output, with the log's top source first.
func TestReplayReport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.html")
	code, out, errOut := runCLI(t, nil, "replay", "--year", "2026", "--report", path, filepath.Join("..", "..", "testdata", "logs", "kern.log"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "203.0.113.7") {
		t.Errorf("decisions no longer printed with --report:\n%s", out)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	for _, want := range []string{`<section id="timeline">`, `<section id="sources">`, `<section id="rules">`, `<section id="malformed">`,
		"<h3>1. <code>203.0.113.7/32</code>", "tcp-portscan", "kern.log with embedded sentry.yaml"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// TestReplayReportErrors: a report that cannot be written fails before the
// replay, and a replay that fails leaves no half-written report.
func TestReplayReportErrors(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join("..", "..", "testdata", "logs", "kern.log")
	code, out, errOut := runCLI(t, nil, "replay", "--report", filepath.Join(dir, "missing", "r.html"), log)
	if code != exitFailure || out != "" || !strings.Contains(errOut, "--report") {
		t.Errorf("unwritable report: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	path := filepath.Join(dir, "r.html")
	code, _, errOut = runCLI(t, nil, "replay", "--report", path, filepath.Join(dir, "no-such.log"))
	if code != exitFailure {
		t.Errorf("missing input: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("report of a failed replay left behind: %v", err)
	}
}
