package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/fleet"
	"github.com/sentry-nflog/sentry-nflog/internal/metrics"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// Fleet is the daemon's link to the other hosts of a fleet; *fleet.Link is
// the real one.
type Fleet interface {
	// Publisher starts the action that publishes the daemon's own bans;
	// the daemon closes it when Run ends. Nil publishes nothing.
	Publisher() *fleet.Publisher
	// Receive sends other hosts' bans and pardons to out until ctx ends
	// (the contract of fleet.Link.Receive).
	Receive(ctx context.Context, out chan<- fleet.Message) error
	// Stats returns the link's counters.
	Stats() fleet.Stats
}

// remoteTable is what remote bans need of the table besides Table:
// *actions.Table has it.
type remoteTable interface {
	BanFrom(key netip.Prefix, timeout time.Duration, origin string) error
	// BanFromMany is BanFrom for each of bans, in few transactions (a
	// backlog), with BanFrom's error for each.
	BanFromMany(bans []actions.RemoteBan) []error
}

// maxRemoteBatch bounds the messages applyRemotes takes together: 256
// remote bans take about a millisecond into the sets, which the loop's
// other work waits for.
const maxRemoteBatch = 256

// remoteQueue is the channel between the fleet's receiver and the loop.
// When the loop falls behind, the receiver waits and the server holds the
// rest: nothing is lost.
const remoteQueue = 1024

// Reasons a remote ban is not applied, as counted and logged.
const (
	refIgnored    = "ignored"     // covers an address of this host's ignore list
	refAcceptFrom = "accept_from" // its origin is not in fleet.accept_from
	refTooWide    = "too_wide"    // /0, or wider than this host's ban prefixes
	refLength     = "length"      // an IPv4 key longer than bans.ipv4_prefix, which the set cannot hold
	refPardoned   = "pardoned"    // decided before a pardon of its key
	refValve      = "valve"       // fleet.max_remote_per_minute
	refCap        = "cap"         // fleet.max_remote_active
	refExpired    = "expired"     // arrived with less than a second left
	refError      = "error"       // the kernel refused the insert
)

// fleetState is fleet mode's part of the daemon, owned by Run's goroutine
// like the rest.
type fleetState struct {
	cfg *config.Fleet
	pub *fleet.Publisher
	// remote holds the remote bans in the sets, by key: bounded by
	// max_remote_active.
	remote map[netip.Prefix]remoteBan
	// pardons holds the pardons still in force, by key: a remote ban
	// decided before one is refused. Bounded like remote.
	pardons map[netip.Prefix]remotePardon
	valve   valve
	accept  map[string]bool // nil: every origin

	received, applied uint64
	refused           map[string]uint64
	delay             latencies
	// quiet is a backlog (a start, a reconnection) under way since since,
	// and what it applied and refused: logged as one line when it is
	// through.
	quiet struct {
		on               bool
		applied, refused int
		since            time.Time
	}
	refusalLogged map[string]time.Time
	refusalsSince map[string]int
	insertFailing bool
	// batch and pending are applyRemotes' buffers: the messages taken
	// together, and their bans that passed the checks, not yet inserted.
	batch   []fleet.Message
	pending []remoteInsert
}

// remoteInsert is a remote ban that passed this host's checks, waiting
// for its insertion into the sets (insertRemote). set is what remote holds
// for its key meanwhile, prev and had what it held before.
type remoteInsert struct {
	m         fleet.Message
	timeout   time.Duration
	backlog   bool
	set, prev remoteBan
	had       bool
}

type remoteBan struct {
	origin string
	until  time.Time
}

type remotePardon struct {
	at, until time.Time
}

// initFleet sets up fleet mode: the publisher, and the remote bans already
// in the kernel (a restart), so they are known, bounded and not inserted
// again. It fails if the table cannot hold remote bans.
func (d *Daemon) initFleet() error {
	fc := d.cfg.Fleet
	if fc == nil || d.deps.DryRun {
		return nil
	}
	if d.deps.Fleet == nil {
		return errNoFleet
	}
	f := &fleetState{
		remote: map[netip.Prefix]remoteBan{}, pardons: map[netip.Prefix]remotePardon{},
		refused: map[string]uint64{}, refusalLogged: map[string]time.Time{}, refusalsSince: map[string]int{},
	}
	f.configure(fc)
	if fc.Apply {
		if _, ok := d.deps.Table.(remoteTable); !ok {
			return fmt.Errorf("fleet: the table cannot hold remote bans")
		}
		bans, err := d.deps.Table.List()
		if err != nil {
			d.log.Warn("fleet: cannot read the remote bans in the kernel", "err", err)
		}
		now := time.Now()
		for _, b := range bans {
			if origin, ok := remoteOrigin(b.Origin); ok && b.Timeout > 0 {
				f.remote[b.Key] = remoteBan{origin: origin, until: now.Add(b.Expires)}
			}
		}
		if len(f.remote) > 0 {
			d.log.Info("fleet: remote bans in the kernel", "count", len(f.remote))
		}
	}
	if fc.Publish {
		f.pub = d.deps.Fleet.Publisher()
		if f.pub != nil {
			// The bans this host holds now (restored, pardons applied),
			// whose messages may never have reached the stream.
			now := time.Now()
			active := d.engine.ActiveBans(now, nil)
			dir, name := d.cfg.StateDir, fc.Name
			f.pub.Republish(func() []fleet.Message {
				ms, err := activeBanMessages(dir, name, active, now)
				if err != nil {
					d.log.Warn("fleet: cannot read the journal for the bans to publish again", "err", err)
				}
				return ms
			})
		}
	}
	if d.metrics != nil {
		d.metrics.EnableFleet()
	}
	d.fleet = f
	return nil
}

// configure takes the settings a reload may change.
func (f *fleetState) configure(fc *config.Fleet) {
	f.cfg = fc
	f.accept = nil
	if len(fc.AcceptFrom) > 0 {
		f.accept = map[string]bool{}
		for _, o := range fc.AcceptFrom {
			f.accept[o] = true
		}
	}
	f.valve.resize(fc.MaxRemotePerMinute)
}

func remoteOrigin(origin string) (string, bool) {
	if len(origin) <= len(actions.OriginFleet) || origin[:len(actions.OriginFleet)] != actions.OriginFleet {
		return "", false
	}
	return origin[len(actions.OriginFleet):], true
}

// fleetAction is the door's fleet element: the publisher, or nil.
func (d *Daemon) fleetAction() actions.Action {
	if d.fleet == nil || d.fleet.pub == nil {
		return nil
	}
	return d.fleet.pub
}

// startFleet starts the receiver of remote bans, a source of its own, in
// wg; it returns the channel the loop reads, nil (never ready) without
// fleet mode or with fleet.apply off.
func (d *Daemon) startFleet(ctx context.Context, wg *sync.WaitGroup) <-chan fleet.Message {
	if d.fleet == nil || !d.fleet.cfg.Apply {
		return nil
	}
	out := make(chan fleet.Message, remoteQueue)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.deps.Fleet.Receive(ctx, out); err != nil {
			d.log.Error("fleet: receiving stopped", "err", err)
		}
	}()
	return out
}

// closeFleet stops the publisher; Close calls it.
func (d *Daemon) closeFleet() {
	if d.fleet != nil && d.fleet.pub != nil {
		d.fleet.pub.Close()
	}
}

// applyRemotes applies m and the messages already waiting behind it in
// in, up to maxRemoteBatch, in order; their bans go into the sets
// together (see insertRemote), a few hundred in one transaction rather
// than one each when a host catches up (a start, a reconnection).
func (d *Daemon) applyRemotes(m fleet.Message, in <-chan fleet.Message) {
	f := d.fleet
	f.batch = append(f.batch[:0], m)
more:
	for len(f.batch) < maxRemoteBatch {
		select {
		case m := <-in:
			f.batch = append(f.batch, m)
		default:
			break more
		}
	}
	for i := range f.batch {
		d.applyRemote(&f.batch[i])
	}
	d.insertRemote()
	clear(f.batch) // their ports
}

// applyRemote handles one message from another host: a ban passes this
// host's checks and goes into its sets with its remaining time (when
// insertRemote runs: before a pardon, at the end of a backlog and at the
// end of applyRemotes' batch); a pardon lifts the key's bans and its
// evidence. Neither counts as an offence here, and neither is published
// again.
func (d *Daemon) applyRemote(m *fleet.Message) {
	f := d.fleet
	f.received++
	now := time.Now()
	backlog := m.Pending > 0 || f.quiet.on
	if backlog && !f.quiet.on {
		f.quiet.on, f.quiet.since = true, now
	}
	switch m.Kind {
	case fleet.KindBan:
		d.remoteBan(m, now, backlog)
	case fleet.KindPardon:
		// Bans before the pardon are in the sets before it lifts them.
		d.insertRemote()
		d.remotePardon(m, now)
	}
	if m.Pending == 0 && f.quiet.on {
		d.insertRemote() // for the line
		if f.quiet.applied+f.quiet.refused > 0 {
			d.log.Info("fleet: caught up", "applied", f.quiet.applied, "refused", f.quiet.refused,
				"took", time.Since(f.quiet.since).Round(time.Millisecond).String(), "remote_active", len(f.remote))
		}
		f.quiet.on, f.quiet.applied, f.quiet.refused = false, 0, 0
	}
}

// remoteBan checks a remote ban and, if it passes, puts it in pending
// for insertRemote. remote holds it from now on, so that the checks of
// the messages after it (held already, max_remote_active) count it.
func (d *Daemon) remoteBan(m *fleet.Message, now time.Time, backlog bool) {
	f := d.fleet
	timeout, ref := d.checkRemote(m, now)
	if ref.reason == "" && timeout == 0 {
		return // held already, as long or longer
	}
	if ref.reason != "" {
		d.refuseRemote(m, ref, now, backlog)
		return
	}
	in := remoteInsert{m: *m, timeout: timeout, backlog: backlog, set: remoteBan{origin: m.Origin, until: now.Add(timeout)}}
	in.prev, in.had = f.remote[m.Key]
	f.remote[m.Key] = in.set
	f.pending = append(f.pending, in)
}

// refuseRemote counts and logs a refused remote ban.
func (d *Daemon) refuseRemote(m *fleet.Message, ref refusal, now time.Time, backlog bool) {
	f := d.fleet
	f.refused[ref.reason]++
	if backlog {
		f.quiet.refused++
	}
	d.logRefusal(m, ref, now)
}

// insertRemote inserts the pending remote bans into the sets, together
// (Table.BanFromMany), and notes each applied; a ban the kernel refuses
// is refused with refError, and remote gets back what it held for its
// key before it.
func (d *Daemon) insertRemote() {
	f := d.fleet
	if len(f.pending) == 0 {
		return
	}
	bans := make([]actions.RemoteBan, len(f.pending))
	for i, p := range f.pending {
		bans[i] = actions.RemoteBan{Key: p.m.Key, Timeout: p.timeout, Origin: p.m.Origin}
	}
	errs := d.deps.Table.(remoteTable).BanFromMany(bans)
	// Back to front: a key that came twice gets back what it held before
	// the first.
	for i := len(f.pending) - 1; i >= 0; i-- {
		if p := &f.pending[i]; errs[i] != nil && f.remote[p.m.Key] == p.set {
			if p.had {
				f.remote[p.m.Key] = p.prev
			} else {
				delete(f.remote, p.m.Key)
			}
		}
	}
	now := time.Now()
	for i := range f.pending {
		p := &f.pending[i]
		if err := errs[i]; err != nil {
			if !f.insertFailing {
				d.log.Error("fleet: cannot insert remote bans", "source", p.m.Key, "origin", p.m.Origin, "err", err)
			}
			f.insertFailing = true
			d.refuseRemote(&p.m, refusal{reason: refError, err: err}, now, p.backlog)
			continue
		}
		if f.insertFailing {
			d.log.Info("fleet: inserting remote bans again")
			f.insertFailing = false
		}
		d.appliedRemote(&p.m, p.timeout, p.backlog)
	}
	clear(f.pending)
	f.pending = f.pending[:0]
}

// appliedRemote notes a remote ban that is in the sets.
func (d *Daemon) appliedRemote(m *fleet.Message, timeout time.Duration, backlog bool) {
	f := d.fleet
	f.applied++
	delay := time.Since(m.Decided)
	f.delay.add(delay)
	if d.metrics != nil {
		d.metrics.ObservePropagation(delay)
	}
	attrs := []any{"source", m.Key.String(), "origin", m.Origin, "rule", m.Rule, "ban", actions.FormatDuration(timeout.Round(time.Second)),
		"delay", delay.Round(time.Microsecond).String()}
	d.note(JournalEntry{Time: m.Decided.UTC(), Action: rules.Ban.String(), Origin: actions.OriginFleet + m.Origin, Source: m.Key,
		Rule: m.Rule, BanSeconds: int64(timeout / time.Second)})
	if backlog {
		f.quiet.applied++
		d.log.Debug("fleet: applied a remote ban", attrs...)
		return
	}
	d.log.Info("fleet: applied a remote ban", attrs...)
}

// checkRemote applies this host's checks to a remote ban, in the order
// the README gives: its own ignore list first, then accept_from, the
// prefix, max_remote_ban, the remote valve and max_remote_active. It
// returns the time to ban for, or why not to; a zero timeout without a
// refusal means the ban is held already.
func (d *Daemon) checkRemote(m *fleet.Message, now time.Time) (timeout time.Duration, ref refusal) {
	f := d.fleet
	key := m.Key
	left := m.Until.Sub(now)
	if left < time.Second {
		return 0, refusal{reason: refExpired, d: left}
	}
	if ig := d.guard.covers(key); ig != nil {
		return 0, refusal{reason: refIgnored, p: ig.Prefix}
	}
	if f.accept != nil && !f.accept[m.Origin] {
		return 0, refusal{reason: refAcceptFrom}
	}
	bans, agg := d.desired.Engine.Bans, d.desired.Engine.Aggregate
	want, wide := bans.IPv4Prefix, agg.IPv4Prefix
	if key.Addr().Is6() {
		want, wide = bans.IPv6Prefix, agg.IPv6Prefix
	}
	// An aggregate's wider prefix is one this host bans too, when it
	// aggregates at the same length.
	aggregate := wide > 0 && key.Bits() == wide
	if key.Bits() == 0 || (key.Bits() < want && !aggregate) {
		return 0, refusal{reason: refTooWide, n: want}
	}
	if key.Addr().Is4() && key.Bits() != want && !aggregate {
		return 0, refusal{reason: refLength, n: want}
	}
	for p, pd := range f.pardons {
		if p.Overlaps(key) && !m.Decided.After(pd.at) && pd.until.After(now) {
			return 0, refusal{reason: refPardoned, p: p, at: pd.at}
		}
	}
	timeout = min(left, f.cfg.MaxRemoteBan).Round(time.Millisecond)
	// Held already, as long to within a second (a ban published again, or
	// received again after a reconnection): nothing to insert.
	held, ok := f.remote[key]
	if ok && held.until.After(now) && !held.until.Add(time.Second).Before(now.Add(timeout)) {
		return 0, refusal{}
	}
	if !f.valve.allow(m.Stored) {
		return 0, refusal{reason: refValve, n: f.cfg.MaxRemotePerMinute}
	}
	if !ok && len(f.remote) >= f.cfg.MaxRemoteActive {
		f.sweep(now)
		if len(f.remote) >= f.cfg.MaxRemoteActive {
			return 0, refusal{reason: refCap, n: len(f.remote)}
		}
	}
	return timeout, refusal{}
}

// refusal is why a remote ban or pardon is refused: its reason, and what
// the log line says of it. The line is written once a minute at most, and
// the refused messages may be a flood: the words are put together only
// for the line.
type refusal struct {
	reason string
	p      netip.Prefix  // the ignored address's prefix, the pardoned key
	at     time.Time     // the pardon's time
	n      int           // this host's ban length, the valve, the bans held
	d      time.Duration // the time left
	err    error         // the kernel's
}

// why is the log line's account of the refusal of key.
func (r refusal) why(key netip.Prefix) string {
	switch r.reason {
	case refExpired:
		return fmt.Sprintf("%v left", r.d.Round(time.Millisecond))
	case refIgnored:
		return fmt.Sprintf("it covers %s, which is never banned here", r.p)
	case refAcceptFrom:
		return "origin not in fleet.accept_from"
	case refTooWide:
		return fmt.Sprintf("a /%d where bans here are /%d", key.Bits(), r.n)
	case refLength:
		return fmt.Sprintf("a /%d where IPv4 bans here are /%d", key.Bits(), r.n)
	case refPardoned:
		return fmt.Sprintf("%s was pardoned at %s", r.p, r.at.Format(time.RFC3339))
	case refValve:
		return fmt.Sprintf("more than %d remote bans in a minute", r.n)
	case refCap:
		return fmt.Sprintf("%d remote bans held", r.n)
	case refError:
		return r.err.Error()
	}
	return r.reason
}

// restoreRemote puts the remote bans this host holds and the kernel lacks
// (after a flush of the table or of a set) back into its sets, with their
// remaining time, and returns how many. It runs beside the loop, in the
// table keeper, and reads the held bans on the loop; syncBans restores the
// daemon's own offences, which these are not.
func (d *Daemon) restoreRemote(ctx context.Context, cov *actions.Coverage) int {
	type held struct {
		key    netip.Prefix
		until  time.Time
		origin string
	}
	now := time.Now()
	var bans []held
	if !d.onLoop(ctx, func() {
		f := d.fleet
		if f == nil {
			return
		}
		f.sweep(now)
		for k, b := range f.remote {
			bans = append(bans, held{k, b.until, b.origin})
		}
	}) || len(bans) == 0 {
		return 0
	}
	rt, ok := d.deps.Table.(remoteTable)
	if !ok {
		return 0
	}
	var missing []actions.RemoteBan
	for _, b := range bans {
		left := b.until.Sub(now)
		if left < time.Second || cov.Covers(b.key) {
			continue
		}
		missing = append(missing, actions.RemoteBan{Key: b.key, Timeout: left.Round(time.Millisecond), Origin: b.origin})
	}
	restored := 0
	for i, err := range rt.BanFromMany(missing) {
		if err != nil {
			d.log.Error("fleet: cannot restore a remote ban", "source", missing[i].Key, "origin", missing[i].Origin, "err", err)
			continue
		}
		restored++
	}
	if restored > 0 {
		d.log.Info("fleet: remote bans restored", "restored", restored)
	}
	return restored
}

// remotePardon lifts the bans of a key another host pardoned, whoever
// made them, and forgets the evidence behind them here: the origin
// pardons its evidence this way too.
func (d *Daemon) remotePardon(m *fleet.Message, now time.Time) {
	f := d.fleet
	if !m.Until.After(now) {
		f.refused[refExpired]++
		return
	}
	if !f.valve.allow(m.Stored) {
		f.refused[refValve]++
		d.logRefusal(m, refusal{reason: refValve, n: f.cfg.MaxRemotePerMinute}, now)
		return
	}
	if len(f.pardons) >= f.cfg.MaxRemoteActive {
		f.sweep(now)
	}
	if len(f.pardons) < f.cfg.MaxRemoteActive {
		f.pardons[m.Key] = remotePardon{at: m.Decided, until: m.Until}
	}
	for k := range f.remote {
		if k.Overlaps(m.Key) {
			delete(f.remote, k)
		}
	}
	d.lift(m.Key, "pardoned by the fleet ("+m.Origin+")")
	d.keepBlocks(m.Key)
	n := d.engine.Pardon(m.Key, m.Decided)
	d.stateDirty = true
	d.note(JournalEntry{Time: m.Decided.UTC(), Action: ActionPardon, Origin: actions.OriginFleet + m.Origin, Source: m.Key})
	d.log.Info("fleet: pardoned", "source", m.Key, "origin", m.Origin, "keys", n)
}

// sweep forgets remote bans and pardons that have ended.
func (f *fleetState) sweep(now time.Time) {
	for k, b := range f.remote {
		if !b.until.After(now) {
			delete(f.remote, k)
		}
	}
	for k, p := range f.pardons {
		if !p.until.After(now) {
			delete(f.pardons, k)
		}
	}
}

// logRefusal logs a refused remote ban: the first of each reason at once,
// then at most one line a minute per reason with the count since, so a
// flood of forged bans is a few lines.
func (d *Daemon) logRefusal(m *fleet.Message, r refusal, now time.Time) {
	f := d.fleet
	f.refusalsSince[r.reason]++
	if last, ok := f.refusalLogged[r.reason]; ok && now.Sub(last) < time.Minute {
		return
	}
	d.log.Warn("fleet: refused a remote ban", "reason", r.reason, "source", m.Key, "origin", m.Origin, "why", r.why(m.Key),
		"refused_since_last_line", f.refusalsSince[r.reason])
	f.refusalLogged[r.reason] = now
	f.refusalsSince[r.reason] = 0
}

// fleetHealth is fleet mode's part of the health line.
func (d *Daemon) fleetHealth() []any {
	f := d.fleet
	if f == nil {
		return nil
	}
	s := d.deps.Fleet.Stats()
	f.sweep(time.Now())
	var refused uint64
	for _, n := range f.refused {
		refused += n
	}
	attrs := []any{"fleet_connected", s.Connected, "fleet_published", s.Published, "fleet_received", f.received,
		"fleet_applied", f.applied, "fleet_refused", refused + s.Invalid, "fleet_remote_active", len(f.remote)}
	if p50, p99, ok := f.delay.percentiles(); ok {
		attrs = append(attrs, "fleet_delay_p50", p50.String(), "fleet_delay_p99", p99.String())
	}
	return attrs
}

// fleetMetrics is fleet mode's part of the metrics snapshot.
func (d *Daemon) fleetMetrics() *metrics.Fleet {
	f := d.fleet
	if f == nil {
		return nil
	}
	s := d.deps.Fleet.Stats()
	f.sweep(time.Now())
	refused := map[string]uint64{}
	for r, n := range f.refused {
		refused[r] = n
	}
	if s.Invalid > 0 {
		refused["invalid"] = s.Invalid
	}
	return &metrics.Fleet{Connected: s.Connected, Published: s.Published, PublishDropped: s.PublishDropped,
		Received: f.received, Applied: f.applied, Refused: refused, RemoteActive: len(f.remote)}
}

// pinFleet keeps what of fleet mode cannot change while the daemon runs
// (the link: servers, name, credentials, TLS, bucket, publish, apply) and
// names the section if it differed; accept_from and the remote limits
// change with a reload.
func pinFleet(next, running *config.Config) []string {
	a, b := next.Fleet, running.Fleet
	if a == nil && b == nil {
		return nil
	}
	if a == nil || b == nil {
		next.Fleet = b
		return []string{"fleet"}
	}
	link := func(f *config.Fleet) config.Fleet {
		return config.Fleet{Servers: f.Servers, Name: f.Name, Creds: f.Creds, TLS: f.TLS, Bucket: f.Bucket, Publish: f.Publish, Apply: f.Apply}
	}
	if reflect.DeepEqual(link(a), link(b)) {
		return nil
	}
	kept := *a
	kept.Servers, kept.Name, kept.Creds, kept.TLS, kept.Bucket, kept.Publish, kept.Apply =
		slices.Clone(b.Servers), b.Name, b.Creds, b.TLS, b.Bucket, b.Publish, b.Apply
	next.Fleet = &kept
	return []string{"fleet (servers, name, creds, tls, bucket, publish, apply)"}
}

// reloadFleet takes a reloaded config's fleet limits.
func (d *Daemon) reloadFleet() {
	if d.fleet != nil && d.cfg.Fleet != nil {
		d.fleet.configure(d.cfg.Fleet)
	}
}

// valve is the remote valve: at most n remote bans a minute, counted by
// the time the server stored them, which the publisher cannot forge. In
// stream order, as they arrive, the same bans pass on every host.
type valve struct {
	n    int
	ring []time.Time // the last n accepted times, oldest at next
	next int
}

func (v *valve) resize(n int) {
	if n == v.n {
		return
	}
	*v = valve{n: n}
}

// allow reports whether one more remote ban stored at t may pass, and
// counts it if so.
func (v *valve) allow(t time.Time) bool {
	if v.n <= 0 {
		return true
	}
	if len(v.ring) < v.n {
		v.ring = append(v.ring, t)
		return true
	}
	if t.Sub(v.ring[v.next]) < time.Minute {
		return false
	}
	v.ring[v.next] = t
	v.next = (v.next + 1) % v.n
	return true
}

// errNoFleet is returned by New when the config has a fleet section and
// Deps no link (a wiring bug).
var errNoFleet = errors.New("fleet: configured, but Deps.Fleet is nil")

// activeBanMessages returns the messages of this host's bans still in
// force, for Publisher.Republish: of each key the engine holds banned
// (active), the last ban the journal in dir has of it, as published then
// (decided at the journal's time), if it has more than a second left and
// came after the key's last pardon. A key held only by a short drop
// beyond the valve (never published) has no such ban left. Oldest first.
func activeBanMessages(dir, origin string, active []rules.Offence, now time.Time) ([]fleet.Message, error) {
	// pardoned is the key's last pardon (zero for none), for each key held.
	pardoned := make(map[netip.Prefix]time.Time, len(active))
	for _, o := range active {
		pardoned[o.Key] = o.PardonedAt
	}
	last := map[netip.Prefix]JournalEntry{}
	ban := rules.Ban.String()
	_, err := ReadJournal(dir, func(e *JournalEntry) error {
		if p, ok := pardoned[e.Source]; ok && e.Origin == actions.OriginDaemon && e.Action == ban && e.Time.After(p) {
			last[e.Source] = *e
		}
		return nil
	})
	var ms []fleet.Message
	for key, e := range last {
		length := time.Duration(e.BanSeconds) * time.Second
		until := e.Time.Add(length)
		if until.Sub(now) <= time.Second {
			continue
		}
		addr := e.Address
		if !addr.IsValid() {
			addr = key.Addr()
		}
		ms = append(ms, fleet.Message{Kind: fleet.KindBan, Origin: origin, Key: key, Address: addr, Rule: e.Rule,
			Ban: length, Decided: e.Time, Until: until, Offence: e.Offence, Ports: e.Ports, Hits: e.Hits})
	}
	slices.SortFunc(ms, func(a, b fleet.Message) int { return a.Decided.Compare(b.Decided) })
	return ms, err
}
