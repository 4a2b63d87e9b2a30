package daemon

import (
	"reflect"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

// reload reads the config again and moves the daemon to what it derives.
// Everything new is built first (the engine, the alert command); if any of
// it fails, the running daemon stays exactly as it was. Then the engine and
// the actions are replaced and the table spec applied. Offences (so
// escalation and bans) carry over a new engine; its evidence windows start
// afresh. Sections that cannot change while running (inputs, the table's
// name and hooks, the ban key lengths, state_dir, log, metrics) are kept
// and named in a warning.
func (d *Daemon) reload() {
	if d.deps.Load == nil {
		return
	}
	loaded, err := d.deps.Load()
	if err != nil {
		d.log.Error("reload: the config is invalid; the running one stays", "err", err.Error())
		return
	}
	next, changed := pin(loaded, d.cfg)
	changed = append(changed, pinFleet(next, d.cfg)...)
	resolved := d.resolveIgnore(next)
	ignore := prefixesOf(resolved)
	want := d.derive(next, ignore)
	var engine *rules.Engine
	if !sameEngine(want.Engine, d.desired.Engine) {
		if engine, err = rules.NewEngine(want.Engine); err != nil {
			d.log.Error("reload: rules rejected; the running ones stay", "err", err)
			return
		}
		for _, o := range d.engine.Offences() {
			engine.Restore(o)
		}
	}
	ex, err := newExecAction(next, d.log)
	if err != nil {
		d.log.Error("reload: the running config stays", "err", err)
		return
	}

	if engine != nil {
		d.engine = engine
	} else {
		d.engine.SetIgnore(want.Engine.Ignore)
	}
	tableChanged := !reflect.DeepEqual(want.Table, d.desired.Table)
	d.tmu.Lock()
	d.cfg, d.desired = next, want
	d.guard = NewGuard(resolved, want.Engine)
	d.tmu.Unlock()
	for _, n := range want.Notes {
		d.log.Info("first strike: " + n)
	}
	d.reloadFleet()
	d.setDoor(ex)
	if d.deps.Table != nil && (tableChanged || !d.whole()) {
		d.applyLater("reload")
	}
	for _, c := range changed {
		d.log.Warn("reload: a changed section takes effect at the next restart", "section", c)
	}
	d.log.Info("reloaded", "file", next.File, "rules", len(next.Engine.Rules))
}

// sameEngine reports whether two engine configs give the same engine but
// for the ignore list, which an engine takes in place.
func sameEngine(a, b rules.Config) bool {
	a.Ignore, b.Ignore = nil, nil
	return reflect.DeepEqual(a, b)
}
