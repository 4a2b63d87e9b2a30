package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// The table is kept whole by a goroutine of its own, the keeper, so that
// reading the kernel's sets and rebuilding the table never hold up
// decisions: the loop bans through the table while the keeper checks and
// repairs it (actions.Table serialises the two). What the keeper needs of
// the engine (the bans it holds, the bans to learn) it asks of the loop
// (onLoop), at most once per check.

// tablePlan is what the keeper works from: the desired spec (with the
// listening ports last read) and what admissible checks. The loop changes
// it (reload, listening ports) under Daemon.tmu.
type tablePlan struct {
	spec  actions.TableSpec
	guard Guard
}

// plan returns the current plan.
func (d *Daemon) plan() tablePlan {
	d.tmu.Lock()
	defer d.tmu.Unlock()
	p := tablePlan{spec: d.desired.Table, guard: d.guard}
	p.spec.Listen = d.listen
	return p
}

// applyTable makes the kernel hold the desired table, with the listening
// ports last read. If the kernel refuses a spec with first strike for a
// reason that lasts (a missing feature), the table is applied without it,
// so bans still work (only later, from the daemon), and the keeper tries
// the whole spec again every reapplyEvery. A failure that comes from the
// table changing under the batch (a `nft flush ruleset` racing it) keeps
// first strike in the spec and is retried at the next check.
func (d *Daemon) applyTable(why string) error {
	p := d.plan()
	spec := p.spec
	start := time.Now()
	err := d.deps.Table.Apply(spec)
	transient := err != nil && raced(err)
	if err != nil && spec.FirstStrike != nil && !transient {
		d.log.Error("first strike unavailable; bans come from the daemon only", "when", why, "err", err)
		spec.FirstStrike = nil
		err = d.deps.Table.Apply(spec)
	}
	d.tmu.Lock()
	d.lastApply, d.raced = start, transient
	before := d.applied
	if err == nil {
		d.applied = spec
	}
	d.tmu.Unlock()
	if err != nil {
		return err
	}
	if fs := spec.FirstStrike; fs != nil && (before.FirstStrike == nil || !reflect.DeepEqual(*fs, *before.FirstStrike)) {
		var names []string
		for _, r := range fs.Rules {
			names = append(names, fmt.Sprintf("%s/%s", r.Name, parsers.ProtoName(r.Proto)))
		}
		d.log.Info("first strike in the kernel", "rules", strings.Join(names, ","), "valve_per_minute", fs.MaxPerMinute)
	}
	if a := spec.Advanced; a != nil && (before.Advanced == nil || !reflect.DeepEqual(*a, *before.Advanced)) {
		d.log.Info("advanced mode", "tcp", fmt.Sprint(a.TCP), "udp", fmt.Sprint(a.UDP), "group", a.Group, "prefix", a.Prefix)
	}
	return nil
}

// raced reports whether a failed Apply failed because the table changed
// under it (objects it read went away before the batch), which the next
// attempt does not meet again.
func raced(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR)
}

// whole reports whether the applied table is the desired one (listening
// ports aside, which change on their own).
func (d *Daemon) whole() bool {
	d.tmu.Lock()
	defer d.tmu.Unlock()
	a := d.applied
	a.Listen = actions.ListenPorts{}
	return reflect.DeepEqual(a, d.desired.Table)
}

// appliedSpec returns the spec last applied with success.
func (d *Daemon) appliedSpec() actions.TableSpec {
	d.tmu.Lock()
	defer d.tmu.Unlock()
	return d.applied
}

// retryDue reports whether a desired table not applied whole is due for
// another attempt: at the next check after a race, every reapplyEvery
// after a refusal.
func (d *Daemon) retryDue() bool {
	d.tmu.Lock()
	last, raced := d.lastApply, d.raced
	d.tmu.Unlock()
	if d.whole() {
		return false
	}
	return raced || time.Since(last) >= reapplyEvery
}

// applyLater has the keeper apply the plan, off the loop: requests made
// while one is pending are merged, so a storm of reloads costs one Apply
// per check at most. Without a running keeper (before Run), it applies at
// once.
func (d *Daemon) applyLater(why string) {
	if !d.looping.Load() {
		if err := d.applyTable(why); err != nil {
			d.log.Error(why+": cannot apply the table; retrying", "err", err)
		}
		return
	}
	select {
	case d.tableWake <- struct{}{}:
	default:
	}
}

// keepTable is the keeper: until ctx ends it checks the table every
// tamperEvery, verifies the ban sets against the engine every verifyEvery
// (and soon after a ban failed), applies the plan when the loop asks (a
// reload), checks first strike's full sets every second and refreshes the
// listening ports every listenEvery.
func (d *Daemon) keepTable(ctx context.Context, listenEvery time.Duration) {
	tick := time.NewTicker(tamperEvery)
	defer tick.Stop()
	second := time.NewTicker(time.Second)
	defer second.Stop()
	listen := time.NewTicker(listenEvery)
	defer listen.Stop()
	lastVerify := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-second.C:
			d.checkStrikeSets(now)
		case <-listen.C:
			d.refreshListening()
		case <-d.tableWake:
			if !reflect.DeepEqual(d.plan().spec, d.appliedSpec()) {
				if err := d.applyTable("reload"); err != nil {
					d.log.Error("reload: cannot apply the table; retrying", "err", err)
				}
			}
		case <-tick.C:
			verify := time.Since(lastVerify) >= verifyEvery || d.verifySoon.Swap(false)
			if verify {
				lastVerify = time.Now()
			}
			d.checkTamper(ctx, verify)
		}
	}
}

// checkTamper notices a table, set or chain removed behind the daemon's
// back (a firewall reload, `nft flush ruleset`) and applies the desired
// table again, putting the active bans back with their remaining time. It
// also retries a desired table that could not be applied whole. With
// verify, it compares the ban sets' elements with the bans the engine
// holds (a `nft flush set` leaves every object in place) and puts back
// what is missing.
func (d *Daemon) checkTamper(ctx context.Context, verify bool) {
	if d.deps.Table == nil {
		return
	}
	missing, err := d.deps.Table.Missing()
	if err != nil {
		d.log.Warn("cannot check the nftables table", "err", err)
		return
	}
	retry := d.retryDue()
	if len(missing) == 0 && !retry {
		if verify && !d.deps.DryRun {
			d.syncBans(ctx, "verify", false)
		}
		return
	}
	if len(missing) > 0 {
		d.log.Warn("nftables objects were removed: recreating them", "missing", strings.Join(missing, ", "))
	}
	if err := d.applyTable("tamper"); err != nil {
		d.log.Error("cannot recreate the nftables table", "err", err)
		return
	}
	if len(missing) > 0 && !d.deps.DryRun {
		d.syncBans(ctx, "tamper", true)
	}
}

// onLoop runs fn on the loop's goroutine and waits for it: how the keeper
// reads and changes the engine. Before Run (New's start), or without a
// loop, fn runs at once. It reports false if ctx ended first.
func (d *Daemon) onLoop(ctx context.Context, fn func()) bool {
	if !d.looping.Load() {
		fn()
		return true
	}
	done := make(chan struct{})
	select {
	case d.calls <- call{fn: fn, done: done}:
	case <-ctx.Done():
		return false
	}
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// call is a function the loop runs for the keeper.
type call struct {
	fn   func()
	done chan struct{}
}

// syncBans makes the kernel and the engine agree, at start, after the table
// was tampered with, and at each verification. With learn, the daemon's
// own bans in the kernel that the engine does not know are learned, so
// their keys are not banned again; the kernel's provisional first-strike
// bans are not: they are not offences, and the engine must still decide on
// the probes that follow. Bans the engine holds with time left that no
// element of the kernel covers (after a reboot, a `nft flush ruleset` or a
// `nft flush set`) are inserted again with the time left, if they pass
// the same checks as a new ban. Elements the daemon did not make are left
// as they are, and count as covering what they cover.
func (d *Daemon) syncBans(ctx context.Context, why string, learn bool) {
	kernel, err := d.deps.Table.Snapshot()
	if err != nil {
		d.log.Warn("cannot read bans", "err", err)
		return
	}
	now := time.Now()
	d.countKernel(kernel, now)
	if learn {
		var known []rules.Offence
		for _, b := range kernel {
			if b.Origin == actions.OriginDaemon && b.Timeout != 0 {
				known = append(known, rules.Offence{Key: b.Key, Count: 1, LastBan: now.Add(b.Expires - b.Timeout), BannedUntil: now.Add(b.Expires)})
			}
		}
		if !d.onLoop(ctx, func() {
			for _, o := range known {
				d.engine.Restore(o)
			}
		}) {
			return
		}
	}
	var active []rules.Offence
	if !d.onLoop(ctx, func() { active = d.engine.ActiveBans(now, nil) }) {
		return
	}
	p := d.plan()
	cov := newCoverage(kernel)
	restored, refused := 0, 0
	var missing []actions.KeyBan
	for _, o := range active {
		left := o.BannedUntil.Sub(now)
		if left < time.Second || cov.Covers(o.Key) {
			continue
		}
		if err := p.admissible(o.Key); err != nil {
			refused++
			if why != "verify" {
				d.log.Warn("not restoring a ban", "source", o.Key, "why", err)
			}
			continue
		}
		missing = append(missing, actions.KeyBan{Key: o.Key, Timeout: left.Round(time.Second)})
	}
	for i, err := range d.deps.Table.BanMany(missing) {
		if err != nil {
			d.log.Error("cannot restore ban", "source", missing[i].Key, "err", err)
			continue
		}
		restored++
	}
	restored += d.restoreRemote(ctx, cov)
	manual, manualRefused := d.restoreBlocks(ctx, cov, p, why)
	restored, refused = restored+manual, refused+manualRefused
	if why == "verify" {
		if restored > 0 {
			d.log.Warn("bans were missing from the kernel's sets (flushed?): put back", "restored", restored)
		}
		return
	}
	d.log.Info("bans in the kernel", "when", why, "kept", len(kernel), "restored", restored, "refused", refused)
}

// newCoverage is what the kernel's bans cover: the daemon's and anyone
// else's, not the provisional strikes (which the daemon's ban replaces).
func newCoverage(kernel []actions.BanEntry) *actions.Coverage {
	keys := make([]netip.Prefix, 0, len(kernel))
	for _, b := range kernel {
		if b.Origin != actions.OriginKernel {
			keys = append(keys, b.Key)
		}
	}
	return actions.NewCoverage(keys)
}

// admissible says why key must not be banned here, or nil
// (Guard.Admissible).
func (p tablePlan) admissible(key netip.Prefix) error { return p.guard.Admissible(key) }
