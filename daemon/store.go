package daemon

import (
	"log/slog"
	"path/filepath"
	"slices"
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
	// savePositions saves newer file positions for the state of
	// generation gen.
	savePositions(gen uint64, files []state.Position) error
	// pardonPath is the file `unblock` appends pardons to, "" for none.
	pardonPath() string
}

// dirStore is state_dir; max bounds the offences loaded
// (limits.max_offences).
type dirStore struct {
	dir string
	max int
}

func (s dirStore) load() (*state.State, error) { return state.LoadBounded(s.dir, s.max, time.Now()) }
func (s dirStore) save(st *state.State) error  { return state.Save(s.dir, st) }
func (s dirStore) savePositions(gen uint64, files []state.Position) error {
	return state.SavePositions(s.dir, gen, files)
}
func (s dirStore) pardonPath() string { return filepath.Join(s.dir, PardonFile) }

// noStore is a dry run's: no history in, none out.
type noStore struct{}

func (noStore) load() (*state.State, error)                  { return &state.State{}, nil }
func (noStore) save(*state.State) error                      { return nil }
func (noStore) savePositions(uint64, []state.Position) error { return nil }
func (noStore) pardonPath() string                           { return "" }

// restore hands the saved offences to the engine.
func (d *Daemon) restore(st *state.State) {
	for _, o := range st.Offences {
		d.engine.Restore(o)
	}
}

// positions returns where the followed files stand, every event read from
// them up to there decided.
func (d *Daemon) positions() []state.Position {
	var out []state.Position
	for _, in := range d.inputs {
		if in.file != nil {
			p := in.file.Position()
			out = append(out, state.Position{Path: p.Path, Dev: p.Dev, Inode: p.Inode, Offset: p.Offset,
				Sum: p.Sum, SumLen: p.SumLen, Size: p.Size, Lines: p.Lines, Events: p.Events})
		}
	}
	return out
}

// maybeSave saves what changed, and always when final: the whole state
// when offences changed (with the positions of that moment: they go
// together, so a restart neither repeats a decision nor skips one), else
// the positions alone, when the followed files moved. The loop calls it
// every stateMinDelay. The snapshot is taken here, on the loop; the writing
// (and its fsync) is the saver's, beside the loop, except the final save,
// which waits for it.
func (d *Daemon) maybeSave(final bool) {
	now := time.Now()
	files := d.positions()
	moved := !slices.Equal(files, d.savedFiles)
	if !final && !d.stateDirty && !moved {
		return
	}
	job := saveJob{gen: d.gen, files: files}
	if final || d.stateDirty {
		job.full = &state.State{Saved: now.UTC(), Offences: d.engine.Offences(), Files: files,
			PardonOffset: d.pardons.offset, BlocksSeen: d.blocksSeen, Generation: d.gen + 1}
		job.gen = d.gen + 1
	}
	if final {
		if d.saver != nil {
			d.saver.stop()
			d.saver = nil
		}
		if err := job.run(d.store); err != nil {
			d.log.Error("cannot save state", "err", err)
			return
		}
	} else if d.saver == nil || !d.saver.offer(job) {
		// The last write is still going on: this one waits for the next
		// tick, with everything that changed since.
		return
	}
	d.gen, d.savedFiles = job.gen, files
	if job.full != nil {
		d.stateDirty = false
	}
}

// saveJob is one write: the whole state, or positions for generation gen.
type saveJob struct {
	full  *state.State
	gen   uint64
	files []state.Position
}

func (j saveJob) run(s store) error {
	if j.full != nil {
		return s.save(j.full)
	}
	return s.savePositions(j.gen, j.files)
}

// saver writes state beside the loop, one job at a time, in order: the loop
// offers a job only when the previous one is done, so a slow disk delays
// saves, never decisions.
type saver struct {
	jobs chan saveJob
	done chan struct{}
}

func newSaver(s store, log *slog.Logger) *saver {
	sv := &saver{jobs: make(chan saveJob), done: make(chan struct{})}
	go func() {
		defer close(sv.done)
		for j := range sv.jobs {
			if err := j.run(s); err != nil {
				log.Error("cannot save state", "err", err)
			}
		}
	}()
	return sv
}

// offer hands j to the saver if it is idle; false if it is still writing.
func (sv *saver) offer(j saveJob) bool {
	select {
	case sv.jobs <- j:
		return true
	default:
		return false
	}
}

// stop waits for the job being written and ends the saver.
func (sv *saver) stop() {
	close(sv.jobs)
	<-sv.done
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
		d.note(JournalEntry{Time: p.at.UTC(), Action: ActionPardon, Origin: OriginManual, Source: p.key})
	}
	if len(ps) > 0 {
		d.stateDirty = true
	}
}
