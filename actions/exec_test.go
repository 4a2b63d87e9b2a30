//go:build unix

package actions

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// argsScript writes each of its arguments on its own line to the file
// given as $0.
const argsScript = `for a in "$@"; do printf '%s\n' "$a"; done > "$0"`

func TestExecSubstitutes(t *testing.T) {
	fields := ExecFields{
		Source:  "2001:db8::/64", // the ban key
		Address: "2001:db8::7",   // the address that crossed the threshold
		Rule:    "tcp-scan",
		Ports:   []uint16{22, 80, 443},
		Ban:     90*time.Second + 500*time.Millisecond,
		Hits:    12,
		Action:  "ban",
		Offence: 3,
		Time:    time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
	}
	tests := []struct {
		name string
		args []string
		f    ExecFields
		want []string
	}{
		{"each placeholder", []string{"{source}", "{address}", "{rule}", "{ports}", "{ban_seconds}", "{hits}", "{action}", "{offence}", "{time}"}, fields,
			[]string{"2001:db8::/64", "2001:db8::7", "tcp-scan", "22,80,443", "90", "12", "ban", "3", "2026-03-04T05:06:07Z"}},
		{"mixed with text", []string{"--who={address}/{rule}", "--key={source}", "{hits}{hits}", "plain"}, fields,
			[]string{"--who=2001:db8::7/tcp-scan", "--key=2001:db8::/64", "1212", "plain"}},
		{"literal braces", []string{"{", "{}", "{Source}", "a{b", "{1,2}"}, fields,
			[]string{"{", "{}", "{Source}", "a{b", "{1,2}"}},
		{"no splitting", []string{"{rule}"}, ExecFields{Rule: "a b; rm -rf / $(x)"},
			[]string{"a b; rm -rf / $(x)"}},
		{"empty values", []string{"{ports}", "{time}", "{source}"}, ExecFields{},
			[]string{"", "", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "args")
			e, err := NewExec(append([]string{"/bin/sh", "-c", argsScript, out}, tt.args...), 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Run(context.Background(), tt.f); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("args = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewExecRejects(t *testing.T) {
	for _, argv := range [][]string{nil, {""}, {"/bin/echo", "{sourc}"}, {"/bin/echo", "x{port}"}} {
		if _, err := NewExec(argv, 0, 0); err == nil {
			t.Errorf("NewExec(%q) succeeded", argv)
		}
	}
	if _, err := NewExec([]string{"/bin/true"}, -time.Second, 0); err == nil {
		t.Error("negative timeout accepted")
	}
}

func TestExecFailureCarriesBoundedOutput(t *testing.T) {
	e, err := NewExec([]string{"/bin/sh", "-c", `echo "to stderr {rule}" >&2; head -c 100000 /dev/zero | tr '\0' x; exit 3`}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = e.Run(context.Background(), ExecFields{Rule: "r"})
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "to stderr r") {
		t.Fatalf("Run = %v, want exit status 3 with the output", err)
	}
	if len(err.Error()) > execOutputLimit+200 {
		t.Errorf("error is %d bytes, want the output bounded to %d", len(err.Error()), execOutputLimit)
	}
	if _, err := NewExec([]string{"/nonexistent/cmd"}, 0, 0); err != nil {
		t.Fatal(err)
	}
	e, _ = NewExec([]string{"/nonexistent/cmd"}, 0, 0)
	if err := e.Run(context.Background(), ExecFields{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing program: %v, want os.ErrNotExist", err)
	}
}

// TestExecTimeoutKillsGroup: the script starts a background sleep, records
// its pid and sleeps; on timeout both must die.
func TestExecTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	e, err := NewExec([]string{"/bin/sh", "-c", `sleep 30 & echo $! > "$0"; sleep 30`, pidFile}, 300*time.Millisecond, 1)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = e.Run(context.Background(), ExecFields{})
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Run took %v with a 300ms timeout", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want context.DeadlineExceeded", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		// Dead but not yet reaped by init counts as gone.
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("background child %d survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A cancelled context kills too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Run(ctx, ExecFields{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with cancelled ctx = %v", err)
	}
}

func TestExecConcurrencyLimit(t *testing.T) {
	dir := t.TempDir()
	release := filepath.Join(dir, "release")
	// Each run marks that it started, then waits (bounded) for release.
	script := `touch "$0.$1"; i=0; while [ ! -e "$0" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done`
	e, err := NewExec([]string{"/bin/sh", "-c", script, release, "{hits}"}, 10*time.Second, 2)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { errs[i] = e.Run(context.Background(), ExecFields{Hits: uint32(i)}) })
	}
	for i := range 2 {
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := os.Stat(release + "." + strconv.Itoa(i)); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d did not start", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for range 3 {
		if err := e.Run(context.Background(), ExecFields{Hits: 9}); !errors.Is(err, ErrExecBusy) {
			t.Errorf("third concurrent Run = %v, want ErrExecBusy", err)
		}
	}
	if got := e.Dropped(); got != 3 {
		t.Errorf("Dropped = %d, want 3", got)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("run %d: %v", i, err)
		}
	}
	if _, err := os.Stat(release + ".9"); err == nil {
		t.Error("a dropped run ran")
	}
	// Slots are free again.
	if err := e.Run(context.Background(), ExecFields{Hits: 5}); err != nil {
		t.Errorf("Run after release: %v", err)
	}
}
