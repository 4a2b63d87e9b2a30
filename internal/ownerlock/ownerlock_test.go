//go:build linux

package ownerlock

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
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

// TestHelperHold is not a test: run by TestKilledHolderFreesTheLock in a
// child process, it takes the locks, says so and waits to be killed.
func TestHelperHold(t *testing.T) {
	run, state := os.Getenv("OWNERLOCK_RUN"), os.Getenv("OWNERLOCK_STATE")
	if run == "" {
		t.Skip("helper process only")
	}
	if _, err := Acquire(run, state, "sentry"); err != nil {
		t.Fatal(err)
	}
	fmt.Println("held")
	time.Sleep(time.Minute)
}

// A holder killed with SIGKILL leaves nothing that blocks the next start.
func TestKilledHolderFreesTheLock(t *testing.T) {
	run, state := t.TempDir(), t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHold$")
	cmd.Env = append(os.Environ(), "OWNERLOCK_RUN="+run, "OWNERLOCK_STATE="+state)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "held\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	_, err = Acquire(run, state, "sentry")
	if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("while held: %v, want ErrHeld naming pid %d", err, cmd.Process.Pid)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	l, err := Acquire(run, state, "sentry")
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	l.Release()
}
