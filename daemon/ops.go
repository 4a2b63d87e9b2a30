package daemon

import (
	"log/slog"
	"path/filepath"
	"time"

	"github.com/sentry-nflog/sentry-nflog/internal/state"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// opsState is what the daemon keeps for its operators besides deciding:
// the decision journal (journal.go), the manual bans (manual.go) and the
// status file (status.go). The loop owns it, but for kernelBans and
// kernelListed, which the table keeper writes under Daemon.tmu.
type opsState struct {
	journal *journal // nil in a dry run, or when it cannot be opened
	// blocks are the manual bans recorded in state_dir, replaced whole
	// when the file changes (the keeper reads the slice on the loop);
	// blocksSeen is the At of the last one noted in the journal.
	blocks     []Block
	blockFile  blockReader
	blocksSeen time.Time

	started      time.Time
	ring         *logRing
	status       *statusWriter
	kernelBans   map[string]int
	kernelListed time.Time
	tally        tally
}

// tally counts decisions since start (an engine's counters restart with
// a reload that replaces it) and samples the counters for the rates.
type tally struct {
	decisions uint64
	byAction  [3]uint64
	rates     rates
}

// initOps wraps the daemon's log so that its errors and warnings are kept
// for the status; New calls it first.
func (d *Daemon) initOps() {
	d.started = time.Now()
	d.ring = &logRing{}
	d.log = slog.New(&ringHandler{next: d.deps.Log.Handler(), ring: d.ring})
}

// openOps opens the journal and reads the manual bans, with what the saved
// state says of them; New calls it once the state is loaded, before the
// table is synced (which restores the manual bans too). A dry run keeps no
// journal and no status, and reads no manual ban.
func (d *Daemon) openOps(st *state.State) {
	if d.deps.DryRun {
		return
	}
	j, err := openJournal(d.cfg.StateDir, JournalMax, d.log)
	if err != nil {
		d.log.Error("no decision journal: history will miss what this run decides", "err", err)
	} else {
		d.journal = j
	}
	d.blocksSeen = st.BlocksSeen
	d.blockFile = blockReader{path: filepath.Join(d.cfg.StateDir, BlockFile)}
	d.applyBlocks()
}

// counted counts a decision for the status.
func (d *Daemon) counted(a rules.Action) {
	d.tally.decisions++
	if int(a) < len(d.tally.byAction) {
		d.tally.byAction[a]++
	}
}

// opsSecond is the loop's second for what this file keeps: the manual
// bans recorded since, and the journal written out.
func (d *Daemon) opsSecond() {
	d.applyBlocks()
	if d.journal != nil {
		d.journal.flush()
	}
}

// startStatus starts the status writer and writes the first status; Run
// calls it as the loop starts.
func (d *Daemon) startStatus() {
	if d.deps.DryRun {
		return
	}
	d.status = newStatusWriter(d.cfg.StateDir, d.log)
	d.writeStatus()
}

// writeStatus hands a snapshot to the writer.
func (d *Daemon) writeStatus() {
	if d.status != nil {
		d.status.offer(d.statusOf(time.Now()))
	}
}

// stopOps ends the status writer with a last status saying the daemon
// stopped, and writes the journal out; Run calls it when it is done.
func (d *Daemon) stopOps() {
	if d.journal != nil {
		d.journal.flush()
	}
	if d.status == nil {
		return
	}
	d.status.stop()
	st := d.statusOf(time.Now())
	st.Stopped = true
	if err := writeStatus(d.status.path, st); err != nil {
		d.log.Warn("cannot write the status file", "path", d.status.path, "err", err)
	}
	d.status = nil
}

// closeOps closes the journal; Close calls it.
func (d *Daemon) closeOps() {
	if d.journal != nil {
		if err := d.journal.close(); err != nil {
			d.log.Warn("journal: close", "err", err)
		}
		d.journal = nil
	}
}
