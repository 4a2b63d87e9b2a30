package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PardonFile, in state_dir, is how `unblock` tells a running daemon that a
// key was pardoned: one "RFC3339Nano PREFIX" line per pardon, appended with
// O_APPEND (atomic for a line this short), read by the daemon each second.
// The daemon saves how far it has read with its state, so each pardon
// applies once, to what existed before it, and never again at a restart.
const PardonFile = "pardons"

type pardon struct {
	key netip.Prefix
	at  time.Time
}

// AppendPardon records in stateDir that key was pardoned at at.
func AppendPardon(stateDir string, key netip.Prefix, at time.Time) error {
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(stateDir, PardonFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s %s\n", at.UTC().Format(time.RFC3339Nano), key)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// pardonReader follows the pardon file from an offset.
type pardonReader struct {
	path   string
	offset int64
}

// read returns the pardons appended since the last call. A file that
// shrank (replaced or truncated) is read from its start.
func (r *pardonReader) read() ([]pardon, error) {
	f, err := os.Open(r.path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() < r.offset {
		r.offset = 0
	}
	if fi.Size() == r.offset {
		return nil, nil
	}
	if _, err := f.Seek(r.offset, io.SeekStart); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, err
	}
	// Only whole lines: a line being written is read next time.
	end := bytes.LastIndexByte(data, '\n') + 1
	r.offset += int64(end)
	var out []pardon
	sc := bufio.NewScanner(bytes.NewReader(data[:end]))
	for sc.Scan() {
		at, key, ok := strings.Cut(sc.Text(), " ")
		t, err1 := time.Parse(time.RFC3339Nano, at)
		p, err2 := netip.ParsePrefix(key)
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		out = append(out, pardon{key: p, at: t})
	}
	return out, nil
}
