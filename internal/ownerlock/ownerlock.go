//go:build linux

// Package ownerlock makes one daemon the only owner of its nftables table
// and its state directory. Two daemons on one table fight over it (each
// rebuilds the chains the other wrote, first strike logs to whichever
// installed last); two on one state_dir overwrite each other's history. A
// second start must therefore refuse before it touches anything.
//
// The locks are flock(2) locks on files: the kernel drops them when their
// holder dies, even by SIGKILL, so a crashed daemon never blocks the next
// start, and no stale-pid guessing is needed. One lock is in the state
// directory; the other names the table and the network namespace (its
// device and inode), under a run directory, so daemons in different
// namespaces (or with different tables) do not block each other.
package ownerlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultRunDir is where the table locks live; the systemd unit creates it
// (RuntimeDirectory=sentry-nflog).
const DefaultRunDir = "/run/sentry-nflog"

// ErrHeld is matched (errors.Is) by the error of Acquire when another live
// process holds a lock.
var ErrHeld = errors.New("held by another running sentry-nflog")

// Lock holds the locks until Release (or the process's end).
type Lock struct{ files []*os.File }

// Acquire takes the lock of table in the current network namespace (under
// runDir) and the lock of stateDir, creating the directories if needed. If
// another process holds either, it returns an error matching ErrHeld that
// names the file and that process's pid, having taken nothing. An empty
// stateDir skips that lock (a dry run keeps no state).
func Acquire(runDir, stateDir, table string) (*Lock, error) {
	var fi unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &fi); err != nil {
		return nil, fmt.Errorf("lock: identify the network namespace: %w", err)
	}
	paths := []string{filepath.Join(runDir, fmt.Sprintf("table-%d-%d-%s.lock", fi.Dev, fi.Ino, table))}
	if stateDir != "" {
		paths = append(paths, filepath.Join(stateDir, "lock"))
	}
	l := &Lock{}
	for _, p := range paths {
		f, err := take(p)
		if err != nil {
			l.Release()
			return nil, err
		}
		l.files = append(l.files, f)
	}
	return l, nil
}

// take locks path, writing this process's pid into it.
func take(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b := make([]byte, 32)
			n, _ := f.ReadAt(b, 0)
			pid := strings.TrimSpace(string(b[:n]))
			if _, perr := strconv.Atoi(pid); perr != nil {
				pid = "unknown"
			}
			return nil, fmt.Errorf("lock %s: %w (pid %s)", path, ErrHeld, pid)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// Release drops the locks. The files stay: removing one could let a third
// process lock a new file while a second still holds the old one.
func (l *Lock) Release() {
	for _, f := range l.files {
		f.Close()
	}
	l.files = nil
}
