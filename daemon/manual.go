package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/internal/state"
)

// Manual bans (`sentry-nflog block`) are kept in state_dir, in BlockFile,
// so that they outlive the kernel's sets: the daemon puts them back with
// their remaining time at start and whenever its sets lack them (a flush,
// a reboot), as it does its own bans. They are never offences (no
// escalation, no evidence), never published to the fleet, and pass the
// same checks as every ban (Guard.Manual) each time they are put back.
//
// The commands block and unblock rewrite the file (a temporary file,
// synced and renamed over it), taking turns under a lock; the daemon only
// reads it, each second when it changed, so it works whether the daemon
// runs or not.

// BlockFile is the manual bans' file in state_dir: one JSON object a line
// (Block), rewritten whole.
const BlockFile = "blocks.jsonl"

// blockLock is the lock the commands take to rewrite BlockFile.
const blockLock = "blocks.lock"

// MaxBlocks bounds the manual bans state_dir holds at once.
const MaxBlocks = 65536

// maxBlockFile bounds what is read of BlockFile: MaxBlocks lines and room.
const maxBlockFile = 64 << 20

// Block is one manual ban.
type Block struct {
	// Key is what is banned: an address's ban key, or a prefix.
	Key netip.Prefix `json:"key"`
	// At is when it was made; unique and increasing within the file, so
	// the daemon notes each once.
	At time.Time `json:"at"`
	// Until is when it ends.
	Until time.Time `json:"until"`
	// Reason is the operator's, if given.
	Reason string `json:"reason,omitempty"`
	// Force records that Key may be wider than the ban keys (block
	// --force); it never lifts the ignore list.
	Force bool `json:"force,omitempty"`
}

// ReadBlocks returns the manual bans recorded in stateDir, ended ones
// included, in the order they were made. A missing file holds none.
func ReadBlocks(stateDir string) ([]Block, error) {
	f, err := os.Open(filepath.Join(stateDir, BlockFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBlockFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxBlockFile {
		return nil, fmt.Errorf("%s: larger than %d MiB, not written by sentry-nflog", f.Name(), maxBlockFile>>20)
	}
	bs, err := parseBlocks(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return bs, nil
}

// parseBlocks reads BlockFile's lines.
func parseBlocks(data []byte) ([]Block, error) {
	var out []Block
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var b Block
		if err := json.Unmarshal(line, &b); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if !b.Key.IsValid() || b.Until.IsZero() {
			return nil, fmt.Errorf("line %d: not a manual ban", n)
		}
		out = append(out, b)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// writeBlocks replaces BlockFile with bs.
func writeBlocks(stateDir string, bs []Block) error {
	return state.WriteAtomic(stateDir, BlockFile, func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		for i := range bs {
			if err := enc.Encode(&bs[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// editBlocks rewrites BlockFile through edit, under the commands' lock,
// dropping the bans ended at now.
func editBlocks(stateDir string, now time.Time, edit func([]Block) ([]Block, error)) error {
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return err
	}
	unlock, err := lockFile(filepath.Join(stateDir, blockLock))
	if err != nil {
		return err
	}
	defer unlock()
	all, err := ReadBlocks(stateDir)
	if err != nil {
		return err
	}
	live := all[:0]
	for _, b := range all {
		if b.Until.After(now) {
			live = append(live, b)
		}
	}
	next, err := edit(live)
	if err != nil {
		return err
	}
	return writeBlocks(stateDir, next)
}

// AddBlocks records manual bans in stateDir and returns them as recorded.
// Each gets its At (now, or just after the last one recorded, so At
// increases); a ban of a key already recorded replaces its record, ending
// at the later of the two times (a ban is never shortened). Refused, with
// nothing written, if the file would hold more than MaxBlocks.
func AddBlocks(stateDir string, add []Block, now time.Time) ([]Block, error) {
	var out []Block
	err := editBlocks(stateDir, now, func(bs []Block) ([]Block, error) {
		at := now.UTC()
		for _, b := range bs {
			if !b.At.Before(at) {
				at = b.At.Add(time.Nanosecond)
			}
		}
		prev := make(map[netip.Prefix]Block, len(bs))
		for _, b := range bs {
			prev[b.Key] = b
		}
		fresh := map[netip.Prefix]int{} // index in out
		for _, nb := range add {
			nb.Until = nb.Until.UTC()
			if old, ok := prev[nb.Key]; ok {
				nb.Until = latest(nb.Until, old.Until)
				if nb.Reason == "" {
					nb.Reason = old.Reason
				}
			}
			prev[nb.Key] = nb
			if i, ok := fresh[nb.Key]; ok {
				out[i] = nb
				continue
			}
			fresh[nb.Key] = len(out)
			out = append(out, nb)
		}
		// Re-blocked keys move to the end, so the file stays in the order
		// of At.
		next := make([]Block, 0, len(bs)+len(out))
		for _, b := range bs {
			if _, ok := fresh[b.Key]; !ok {
				next = append(next, b)
			}
		}
		for i := range out {
			out[i].At = at
			at = at.Add(time.Nanosecond)
		}
		next = append(next, out...)
		if len(next) > MaxBlocks {
			return nil, fmt.Errorf("%d manual bans would be recorded, more than %d: unblock some first", len(next), MaxBlocks)
		}
		return next, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// RemoveBlocks removes from stateDir the manual bans overlapping key (an
// address inside a manual ban's prefix lifts that ban) and returns those
// still in force at now.
func RemoveBlocks(stateDir string, key netip.Prefix, now time.Time) ([]Block, error) {
	var removed []Block
	err := editBlocks(stateDir, now, func(bs []Block) ([]Block, error) {
		kept := bs[:0]
		for _, b := range bs {
			if b.Key.Overlaps(key) {
				removed = append(removed, b)
				continue
			}
			kept = append(kept, b)
		}
		return kept, nil
	})
	return removed, err
}

// manualTable is what manual bans need of the table besides Table:
// *actions.Table has it. Pardon is Unblock but for the manual bans, which
// a pardon from elsewhere (the fleet's) leaves in place.
type manualTable interface {
	BanManual(key netip.Prefix, timeout time.Duration) error
	Pardon(key netip.Prefix) ([]netip.Prefix, error)
}

// blockReader follows BlockFile: a stat each second, a read when it
// changed.
type blockReader struct {
	path string
	last os.FileInfo // nil: missing (or never read)
}

// read returns the file's bans and true if it changed since the last
// call.
func (r *blockReader) read() ([]Block, bool, error) {
	fi, err := os.Stat(r.path)
	if errors.Is(err, os.ErrNotExist) {
		changed := r.last != nil
		r.last = nil
		return nil, changed, nil
	}
	if err != nil {
		return nil, false, err
	}
	if r.last != nil && os.SameFile(fi, r.last) && fi.Size() == r.last.Size() && fi.ModTime().Equal(r.last.ModTime()) {
		return nil, false, nil
	}
	bs, err := ReadBlocks(filepath.Dir(r.path))
	if err != nil {
		// Read again at the next change only: the daemon keeps what it
		// had.
		r.last = fi
		return nil, false, err
	}
	r.last = fi
	return bs, true, nil
}

// applyBlocks takes note of the manual bans recorded since the last
// check, on the loop, each second: the new ones go into the journal (once
// each, across restarts: BlocksSeen is saved with the state), and the
// table keeper is asked to verify the sets soon, which puts in any the
// command could not insert.
func (d *Daemon) applyBlocks() {
	if d.blockFile.path == "" {
		return
	}
	bs, changed, err := d.blockFile.read()
	if err != nil {
		d.log.Warn("cannot read the manual bans; keeping the ones read before", "err", err)
		return
	}
	if !changed {
		return
	}
	d.blocks = bs
	now := time.Now()
	p := d.plan()
	noted := 0
	for _, b := range bs {
		if !b.At.After(d.blocksSeen) {
			continue
		}
		d.blocksSeen = b.At
		noted++
		d.note(JournalEntry{Time: b.At.UTC(), Action: ActionBlock, Origin: OriginManual, Source: b.Key,
			BanSeconds: int64(b.Until.Sub(b.At) / time.Second), Reason: b.Reason})
		attrs := []any{"source", b.Key.String(), "until", b.Until.Format(time.RFC3339)}
		if b.Reason != "" {
			attrs = append(attrs, "reason", b.Reason)
		}
		if !b.Until.After(now) {
			continue
		}
		if _, err := p.guard.Manual(b.Key, b.Force); err != nil {
			// At start, the sync that follows says so.
			if d.looping.Load() {
				d.log.Warn("manual ban refused here; it will not be put back", append(attrs, "why", err.Error())...)
			}
			continue
		}
		d.log.Info("manual ban", attrs...)
	}
	if noted > 0 {
		d.stateDirty = true
		d.verifySoon.Store(true)
	}
}

// restoreBlocks puts the manual bans in force that the kernel lacks back
// into the sets with their remaining time, if they still pass this host's
// checks, and returns how many keys it put back and how many bans it
// refused. It runs in the table keeper and reads the bans on the loop.
func (d *Daemon) restoreBlocks(ctx context.Context, cov *actions.Coverage, p tablePlan, why string) (restored, refused int) {
	mt, ok := d.deps.Table.(manualTable)
	if !ok {
		return 0, 0
	}
	var bs []Block
	if !d.onLoop(ctx, func() { bs = d.blocks }) {
		return 0, 0
	}
	now := time.Now()
	if missing(bs, cov, now) && d.blockFile.path != "" {
		// The loop's copy may be up to a second old: `unblock` removes
		// the record, then the elements, and a ban it just lifted must
		// not come back from the copy. Put back only what the file holds
		// now.
		fresh, err := ReadBlocks(filepath.Dir(d.blockFile.path))
		if err != nil {
			d.log.Warn("cannot read the manual bans", "err", err)
			return 0, 0
		}
		bs = fresh
	}
	for _, b := range bs {
		left := b.Until.Sub(now)
		if left < time.Second {
			continue
		}
		keys, err := p.guard.Manual(b.Key, b.Force)
		if err != nil {
			refused++
			if why != "verify" {
				d.log.Warn("not restoring a manual ban", "source", b.Key, "why", err)
			}
			continue
		}
		for _, k := range keys {
			if cov.Covers(k) {
				continue
			}
			if err := mt.BanManual(k, left.Round(time.Second)); err != nil {
				d.log.Error("cannot restore a manual ban", "source", k, "err", err)
				continue
			}
			restored++
		}
	}
	return restored, refused
}

// missing reports whether a manual ban in force has a key no element
// covers; keys refused by the checks count, which is rare and harmless.
func missing(bs []Block, cov *actions.Coverage, now time.Time) bool {
	for _, b := range bs {
		if b.Until.Sub(now) >= time.Second && !cov.Covers(b.Key.Masked()) {
			return true
		}
	}
	return false
}

// keepBlocks puts back at once the manual bans overlapping key that a
// fleet's pardon has just lifted: lift leaves a manual ban's own elements,
// but not a wider ban of the daemon's that took one in (an aggregate over
// a blocked address, which keeps the longer time). A manual ban is this
// host's operator's, and only `unblock` here lifts it. For the others,
// BanManual finds their element and changes nothing.
func (d *Daemon) keepBlocks(key netip.Prefix) {
	mt, ok := d.deps.Table.(manualTable)
	if !ok {
		return
	}
	now := time.Now()
	p := d.plan()
	for _, b := range d.blocks {
		left := b.Until.Sub(now)
		if left < time.Second || !b.Key.Overlaps(key) {
			continue
		}
		keys, err := p.guard.Manual(b.Key, b.Force)
		if err != nil {
			continue
		}
		for _, k := range keys {
			if err := mt.BanManual(k, left.Round(time.Second)); err != nil {
				d.log.Error("cannot keep a manual ban", "source", k, "err", err)
			}
		}
		d.log.Info("a fleet pardon does not lift a manual ban of this host", "source", b.Key)
	}
}
