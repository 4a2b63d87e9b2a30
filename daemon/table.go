package daemon

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// applyTable makes the kernel hold the desired table, with the listening
// ports last read. If the kernel refuses a spec with first strike, the
// table is applied without it, so bans still work (only later, from the
// daemon), and checkTamper tries the whole spec again every reapplyEvery.
func (d *Daemon) applyTable(why string) error {
	spec := d.desired.Table
	spec.Listen = d.listen
	d.lastApply = time.Now()
	err := d.deps.Table.Apply(spec)
	if err != nil && spec.FirstStrike != nil {
		d.log.Error("first strike unavailable; bans come from the daemon only", "when", why, "err", err)
		spec.FirstStrike = nil
		err = d.deps.Table.Apply(spec)
	}
	if err != nil {
		return err
	}
	before := d.applied
	d.applied = spec
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

// whole reports whether the applied table is the desired one (listening
// ports aside, which change on their own).
func (d *Daemon) whole() bool {
	a := d.applied
	a.Listen = actions.ListenPorts{}
	return reflect.DeepEqual(a, d.desired.Table)
}

// checkTamper notices a table, set or chain removed behind the daemon's
// back (a firewall reload, `nft flush ruleset`) and applies the desired
// table again, putting the active bans back with their remaining time. It
// also retries a desired table that could not be applied whole.
func (d *Daemon) checkTamper() {
	if d.deps.Table == nil {
		return
	}
	missing, err := d.deps.Table.Missing()
	if err != nil {
		d.log.Warn("cannot check the nftables table", "err", err)
		return
	}
	retry := !d.whole() && time.Since(d.lastApply) >= reapplyEvery
	if len(missing) == 0 && !retry {
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
		d.syncBans("tamper")
		d.restoreRemote()
	}
}

// syncBans makes the kernel and the engine agree, at start and after the
// table was tampered with. The daemon's own bans in the kernel that the
// engine does not know are learned, so their keys are not banned again;
// the kernel's provisional first-strike bans are not: they are not
// offences, and the engine must still decide on the probes that follow.
// Bans the engine knows with time left that are missing from the kernel
// (after a reboot or a `nft flush ruleset`) are inserted again with the
// time left, if they pass the same checks as a new ban.
func (d *Daemon) syncBans(why string) {
	kernel, err := d.deps.Table.List()
	if err != nil {
		d.log.Warn("cannot read bans", "err", err)
		return
	}
	now := time.Now()
	present := map[netip.Prefix]bool{}
	for _, b := range kernel {
		present[b.Key] = true
		if b.Origin != actions.OriginDaemon || b.Timeout == 0 {
			continue
		}
		d.engine.Restore(rules.Offence{Key: b.Key, Count: 1, LastBan: now.Add(b.Expires - b.Timeout), BannedUntil: now.Add(b.Expires)})
	}
	restored, refused := 0, 0
	for _, o := range d.engine.Offences() {
		left := o.BannedUntil.Sub(now)
		if left < time.Second || present[o.Key] {
			continue
		}
		if err := d.admissible(o.Key); err != nil {
			refused++
			d.log.Warn("not restoring a ban", "source", o.Key, "why", err)
			continue
		}
		if err := d.deps.Table.Ban(o.Key, left.Round(time.Second)); err != nil {
			d.log.Error("cannot restore ban", "source", o.Key, "err", err)
			continue
		}
		restored++
	}
	d.log.Info("bans in the kernel", "when", why, "kept", len(kernel), "restored", restored, "refused", refused)
}

// admissible says why key must not be banned here, or nil: a ban put back
// from saved state goes through the checks a new one does. Its length must
// be one the engine makes (the configured key length, or a single address
// when the key was narrowed around an ignored address) and it must cover
// no address of the ignore list.
func (d *Daemon) admissible(key netip.Prefix) error {
	if !key.IsValid() {
		return fmt.Errorf("invalid key")
	}
	bans := d.desired.Engine.Bans
	want := bans.IPv4Prefix
	if key.Addr().Is6() {
		want = bans.IPv6Prefix
	}
	if b := key.Bits(); b != want && b != key.Addr().BitLen() {
		return fmt.Errorf("a /%d key where bans are /%d or single addresses", b, want)
	}
	for _, p := range d.ignore {
		if p.Overlaps(key) {
			return fmt.Errorf("it covers %s, which is never banned", p)
		}
	}
	return nil
}
