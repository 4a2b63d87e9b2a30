//go:build linux

package ownerlock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSecondOwnerIsRefused(t *testing.T) {
	run, state := t.TempDir(), t.TempDir()
	l, err := Acquire(run, state, "sentry")
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to open files: a second Acquire in this process
	// opens the file again and conflicts, as another process would.
	for _, tc := range []struct{ name, state, table string }{
		{"same table, other state dir", t.TempDir(), "sentry"},
		{"same state dir, other table", state, "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Acquire(run, tc.state, tc.table)
			if !errors.Is(err, ErrHeld) {
				t.Fatalf("Acquire = %v, want ErrHeld", err)
			}
			if !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
				t.Errorf("error does not name the holder: %v", err)
			}
		})
	}
	// A different table with its own state directory is independent.
	other, err := Acquire(run, t.TempDir(), "other")
	if err != nil {
		t.Fatalf("independent daemon refused: %v", err)
	}
	other.Release()
	l.Release()
	again, err := Acquire(run, state, "sentry")
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	again.Release()
}

// A holder killed with SIGKILL leaves nothing that blocks the next start.
func TestKilledHolderFreesTheLock(t *testing.T) {
	run, state := t.TempDir(), t.TempDir()
	// flock(1) from util-linux holds the lock for a shell that we kill.
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	if err := os.MkdirAll(state, 0o750); err != nil {
		t.Fatal(err)
	}
	// -o: the lock is flock's own, not inherited by sleep, so killing
	// flock alone is the holder dying.
	cmd := exec.Command("flock", "-o", filepath.Join(state, "lock"), "sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	// Wait until the child holds it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := Acquire(run, state, "sentry")
		if errors.Is(err, ErrHeld) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
		if time.Now().After(deadline) {
			t.Fatal("the child never took the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	l, err := Acquire(run, state, "sentry")
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	l.Release()
}
