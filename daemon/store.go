package daemon

import (
	"path/filepath"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/state"
)

// store is where the daemon keeps what it must not forget across restarts.
// A dry run has one that reads and writes nothing.
type store interface {
	// load returns the saved state; on an error it may still return a
	// usable (empty) state, as when a corrupt file was moved aside.
	load() (*state.State, error)
	save(*state.State) error
	// pardonPath is the file `unblock` appends pardons to, "" for none.
	pardonPath() string
}

// dirStore is state_dir.
type dirStore struct{ dir string }

func (s dirStore) load() (*state.State, error) { return state.Load(s.dir) }
func (s dirStore) save(st *state.State) error  { return state.Save(s.dir, st) }
func (s dirStore) pardonPath() string          { return filepath.Join(s.dir, PardonFile) }

// noStore is a dry run's: no history in, none out.
type noStore struct{}

func (noStore) load() (*state.State, error) { return &state.State{}, nil }
func (noStore) save(*state.State) error     { return nil }
func (noStore) pardonPath() string          { return "" }

// restore hands the saved offences to the engine.
func (d *Daemon) restore(st *state.State) {
	for _, o := range st.Offences {
		d.engine.Restore(o)
	}
}

// maybeSave writes the state when offences changed at least stateMinDelay
// after the last write, every stateEvery for file positions, and always
// when final.
func (d *Daemon) maybeSave(final bool) {
	since := time.Since(d.lastSave)
	if !final && !(d.stateDirty && since >= stateMinDelay) && since < stateEvery {
		return
	}
	st := &state.State{Saved: time.Now().UTC(), Offences: d.engine.Offences(), PardonOffset: d.pardons.offset}
	for _, in := range d.inputs {
		if in.file != nil {
			p := in.file.Position()
			st.Files = append(st.Files, state.Position{Path: p.Path, Dev: p.Dev, Inode: p.Inode, Offset: p.Offset})
		}
	}
	if err := d.store.save(st); err != nil {
		d.log.Error("cannot save state", "err", err)
		return
	}
	d.stateDirty = false
	d.lastSave = time.Now()
}

// applyPardons applies the pardons `unblock` appended since the last
// read: the kernel's first-strike counters of the key are dropped (stale
// ones must not strike it again) and the engine forgets the evidence and
// the offence decided before the pardon.
func (d *Daemon) applyPardons() {
	if d.pardons.path == "" {
		return
	}
	ps, err := d.pardons.read()
	if err != nil {
		d.log.Warn("cannot read pardons", "path", d.pardons.path, "err", err)
		return
	}
	for _, p := range ps {
		if d.deps.Table != nil {
			if err := d.deps.Table.Forget(p.key); err != nil {
				d.log.Warn("first strike: cannot forget a pardoned source", "source", p.key, "err", err)
			}
		}
		n := d.engine.Pardon(p.key, p.at)
		d.log.Info("pardoned", "source", p.key, "keys", n)
	}
	if len(ps) > 0 {
		d.stateDirty = true
	}
}
