package main

import (
	"reflect"

	"github.com/sentry-nflog/sentry-nflog/rules"
)

// reload re-reads the config (SIGHUP). An invalid file changes nothing.
// Rules, the ignore list, the exec action, first strike, advanced mode and
// metrics apply at once, keeping offences and bans; inputs, the nftables
// section and state_dir need a restart, which the log says.
func (d *daemon) reload() {
	cfg, err := loadConfig(d.cfgPath)
	if err != nil {
		d.log.Error("reload: the config is invalid; the running one stays", "err", err.Error())
		return
	}
	// The table's IPv4 key length is fixed until a restart, and the
	// engine's keys must match it.
	cfg.Engine.Bans.IPv4Prefix = d.cfg.Engine.Bans.IPv4Prefix
	ecfg := cfg.Engine
	d.ignore = resolveIgnore(cfg, d.log)
	ecfg.Ignore = d.ignore
	if sameEngine(cfg.Engine, d.cfg.Engine) {
		d.engine.SetIgnore(ecfg.Ignore)
	} else {
		ne, err := rules.NewEngine(ecfg)
		if err != nil {
			d.log.Error("reload: rules rejected; the running ones stay", "err", err)
			return
		}
		for _, o := range d.engine.Offences() {
			ne.Restore(o)
		}
		// The evidence windows restart with the new rules; offences, and
		// so escalation and bans, carry over.
		d.engine = ne
	}
	if err := d.setExec(cfg); err != nil {
		d.log.Error("reload: exec action", "err", err)
	}
	if cfg.Metrics.Textfile != "" && d.metrics == nil {
		d.log.Warn("reload: metrics.textfile takes effect at the next restart")
	}
	for _, w := range []struct {
		changed bool
		what    string
	}{
		{!reflect.DeepEqual(cfg.Inputs, d.cfg.Inputs), "inputs"},
		{!reflect.DeepEqual(cfg.NFTables, d.cfg.NFTables), "nftables"},
		{cfg.StateDir != d.cfg.StateDir, "state_dir"},
		{cfg.Log != d.cfg.Log, "log"},
		{cfg.Metrics != d.cfg.Metrics, "metrics"},
	} {
		if w.changed {
			d.log.Warn("reload: a changed section takes effect at the next restart", "section", w.what)
		}
	}
	keep := *cfg
	keep.Inputs, keep.NFTables, keep.StateDir, keep.Log, keep.Metrics = d.cfg.Inputs, d.cfg.NFTables, d.cfg.StateDir, d.cfg.Log, d.cfg.Metrics
	d.cfg = &keep
	// First strike, advanced mode and the allow list follow the new
	// config at once: the table is applied again as a whole.
	if err := d.applyTable(d.cfg); err != nil {
		d.log.Error("reload: nftables table", "err", err)
	}
	d.log.Info("reloaded", "file", cfg.File, "rules", len(cfg.Engine.Rules))
}

// sameEngine reports whether two configs give the same engine but for the
// ignore list, which can change in place.
func sameEngine(a, b rules.Config) bool {
	a.Ignore, b.Ignore = nil, nil
	return reflect.DeepEqual(a, b)
}
