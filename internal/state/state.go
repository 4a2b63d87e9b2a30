// Package state keeps what the daemon must not forget across restarts and
// reboots: the offence history (for escalation, and to restore bans that
// still have time left after a reboot emptied the kernel's sets) and the
// positions of followed log files. It is one JSON file in state_dir,
// replaced atomically (temporary file, fsync, rename, fsync of the
// directory), so a crash at any moment leaves the old or the new state,
// never a mix.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

// FileName is the state file's name in state_dir.
const FileName = "state.json"

// version is the format written; Load refuses newer ones.
const version = 1

// State is the saved state.
type State struct {
	// Saved is when it was written.
	Saved time.Time `json:"saved"`
	// Offences is the engine's history, one entry per key.
	Offences []rules.Offence `json:"offences"`
	Files    []Position      `json:"files,omitempty"`
	// PardonOffset is how far the pardons file has been applied: each
	// pardon applies once.
	PardonOffset int64 `json:"pardon_offset,omitempty"`
}

// Position is how far a followed file was read.
type Position struct {
	Path   string `json:"path"`
	Dev    uint64 `json:"dev"`
	Inode  uint64 `json:"inode"`
	Offset int64  `json:"offset"`
}

type onDisk struct {
	Version int `json:"version"`
	State
}

// Load reads the state in dir. A missing file is an empty state. A file
// that cannot be read as state is moved aside (to state.json.bad-TIME) so
// that it is kept for inspection and the daemon can start; the error says
// so.
func Load(dir string) (*State, error) {
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &State{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var d onDisk
	if err := json.Unmarshal(data, &d); err != nil || d.Version < 1 || d.Version > version {
		bad := fmt.Sprintf("%s.bad-%s", path, time.Now().UTC().Format("20060102T150405"))
		if rerr := os.Rename(path, bad); rerr != nil {
			return nil, fmt.Errorf("state: %s is unreadable (%v) and cannot be moved aside: %w", path, err, rerr)
		}
		if err == nil {
			err = fmt.Errorf("format version %d, this binary reads 1-%d", d.Version, version)
		}
		return &State{}, fmt.Errorf("state: %s is unreadable (%v): moved to %s, starting without history", path, err, bad)
	}
	return &d.State, nil
}

// Save writes s to dir atomically, creating dir if needed.
func Save(dir string, s *State) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	data, err := json.Marshal(onDisk{Version: version, State: *s})
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, FileName+".tmp-*")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("state: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("state: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, FileName)); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	// The rename is durable only once the directory is synced.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("state: sync %s: %w", dir, err)
	}
	return nil
}
