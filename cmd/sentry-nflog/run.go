package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/internal/hostinfo"
	"github.com/sentry-nflog/sentry-nflog/internal/metrics"
	"github.com/sentry-nflog/sentry-nflog/internal/state"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// eventQueue is the channel between the inputs and the engine. When the
// engine falls behind, inputs block, the NFLOG socket buffer fills and the
// kernel's drops are counted as overruns: loss is never silent.
const eventQueue = 4096

// Periods of the daemon's housekeeping.
const (
	tamperEvery   = 2 * time.Second  // missing table, set or chain noticed within this
	stateEvery    = 30 * time.Second // file positions saved at least this often
	stateMinDelay = time.Second      // offences saved at most this long after a ban
)

func cmdRun(ctx context.Context, e *env, args []string) int {
	fs := flags(e, "run", "[--config FILE] [--dry-run]", `Run the daemon: read the configured inputs (NFLOG groups, kernel log files,
/dev/kmsg), apply the rules and ban offenders with timed elements in the
nftables table it owns (inet sentry by default). Bans stay in the kernel
when the daemon stops; the kernel expires them, and after a reboot the
daemon restores those with time left. Logs go to standard error (the
journal under systemd).

Signals: SIGHUP reloads the config (an invalid file keeps the running one
and logs what is wrong); SIGINT and SIGTERM stop cleanly.

It needs CAP_NET_ADMIN (root) and opens no network socket, only netlink.
Add the logging rules first (sentry-nflog firewall), or use advanced mode.

Examples:
  sentry-nflog run --dry-run      # decisions printed, nothing banned
  sentry-nflog run --config /etc/sentry-nflog/sentry.yaml`)
	cfgPath := fs.String("config", "", "config `FILE` (default: the embedded sentry.yaml)")
	dryRun := fs.Bool("dry-run", false, "decide and print, but ban nothing and save no state (decisions go to standard output)")
	health := fs.Duration("health-interval", time.Minute, "how often to log the one-line health summary")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	if *health < time.Second {
		fmt.Fprintf(e.stderr, "run: --health-interval %v: want 1s or more\n", *health)
		return exitUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	log := newLogger(e, cfg.Log)
	d, err := newDaemon(cfg, *cfgPath, log, e, *dryRun)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFailure
	}
	defer d.close()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := d.run(ctx, *health, hup); err != nil {
		log.Error("stopped", "err", err)
		return exitFailure
	}
	return exitOK
}

func newLogger(e *env, c config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(e.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(e.stderr, opts))
}

// daemon wires inputs -> engine -> actions. One goroutine (run) owns the
// engine and all state below; inputs feed it through a channel.
type daemon struct {
	cfg     *config.Config
	cfgPath string
	log     *slog.Logger
	dryRun  bool
	engine  *rules.Engine
	// table is the nftables table, nil in a dry run without advanced
	// mode; nft is the same table for banning, nil in a dry run.
	table   *actions.Table
	nft     *actions.Table
	ignore  []netip.Prefix  // resolved ignore list
	report  *actions.Report // dry-run output
	exec    *actions.Exec
	inputs  []*input
	metrics *metrics.Metrics
	pardons *pardonReader
	wg      sync.WaitGroup

	stateDirty bool
	lastSave   time.Time

	// Health counters.
	events, bans, banErrors uint64
	reaction                latencies
}

func newDaemon(cfg *config.Config, cfgPath string, log *slog.Logger, e *env, dryRun bool) (*daemon, error) {
	if len(cfg.Inputs.NFLOG) == 0 && len(cfg.Inputs.Files) == 0 && !cfg.Inputs.Kmsg {
		return nil, fmt.Errorf("%s: no input: inputs.nflog, inputs.files and inputs.kmsg are all empty", cfg.File)
	}
	d := &daemon{cfg: cfg, cfgPath: cfgPath, log: log, dryRun: dryRun}
	ecfg := cfg.Engine
	d.ignore = resolveIgnore(cfg, log)
	ecfg.Ignore = d.ignore
	var err error
	if d.engine, err = rules.NewEngine(ecfg); err != nil {
		return nil, err
	}
	if err := d.setExec(cfg); err != nil {
		return nil, err
	}
	st := &state.State{}
	if !dryRun {
		if st, err = state.Load(cfg.StateDir); err != nil {
			if st == nil {
				return nil, err
			}
			log.Error("state", "err", err)
		}
		for _, o := range st.Offences {
			d.engine.Restore(o)
		}
	}
	d.pardons = &pardonReader{path: filepath.Join(cfg.StateDir, pardonFile)}
	// Pardons given while the daemon was down apply now; each only undoes
	// bans decided before it.
	d.applyPardons()
	if dryRun {
		d.report = actions.NewReport(e.stdout, false)
		log.Info("dry run: decisions are printed, nothing is banned, no state is saved")
	}
	if err := d.applyTable(cfg); err != nil {
		d.close()
		return nil, err
	}
	if d.nft != nil {
		d.syncBans("start")
	}
	if cfg.Metrics.Textfile != "" {
		d.metrics = metrics.New()
	}
	d.inputs = buildInputs(cfg, st, log)
	return d, nil
}

func (d *daemon) setExec(cfg *config.Config) error {
	d.exec = nil
	if cfg.Exec == nil {
		return nil
	}
	ex, err := actions.NewExec(cfg.Exec.Command, cfg.Exec.Timeout, 0)
	if err != nil {
		return fmt.Errorf("%s: actions.exec: %w", cfg.File, err)
	}
	d.exec = ex
	return nil
}

// applyTable makes the nftables table what cfg asks for (tableSpec), with
// the listening ports read now, so that clients of running services are
// never counted or logged. A dry run bans nothing: no first strike, and
// the ban chains left as they are; without advanced mode it has no table.
func (d *daemon) applyTable(cfg *config.Config) error {
	spec := tableSpec(cfg, d.ignore, d.log)
	if d.dryRun {
		spec.FirstStrike, spec.ManageChain = nil, false
		if d.table == nil && spec.Advanced == nil {
			return nil
		}
	}
	if d.table == nil {
		t, err := actions.OpenTable(spec, 0)
		if err != nil {
			return err
		}
		d.table = t
		if !d.dryRun {
			d.nft = t
		}
	}
	if spec.FirstStrike != nil || spec.Advanced != nil {
		tcp, udp, err := hostinfo.DefaultPaths().Listening()
		if err != nil {
			return err
		}
		spec.Listen = actions.ListenPorts{TCP: tcp, UDP: udp}
	}
	if err := d.applySpec(spec); err != nil {
		return err
	}
	spec = d.table.Spec()
	if fc := spec.FirstStrike; fc != nil {
		var names []string
		for _, r := range fc.Rules {
			names = append(names, fmt.Sprintf("%s/%s", r.Name, parsers.ProtoName(r.Proto)))
		}
		d.log.Info("first strike in the kernel", "rules", strings.Join(names, ","), "valve_per_minute", fc.MaxPerMinute)
	}
	if a := spec.Advanced; a != nil {
		d.log.Info("advanced mode", "tcp", fmt.Sprint(a.TCP), "udp", fmt.Sprint(a.UDP), "group", a.Group, "prefix", a.Prefix)
	}
	return nil
}

// applySpec applies spec to the table. Without first strike the daemon
// still bans, only later: a kernel that refuses it is no reason to leave
// the host open, so the spec is applied again without it.
func (d *daemon) applySpec(spec actions.TableSpec) error {
	err := d.table.Apply(spec)
	if err != nil && spec.FirstStrike != nil {
		d.log.Error("first strike unavailable; bans come from the daemon only", "err", err)
		spec.FirstStrike = nil
		err = d.table.Apply(spec)
	}
	return err
}

// refreshListening reads the listening ports and hands them to the table,
// whose first strike and advanced mode never count ports with a listener.
func (d *daemon) refreshListening() error {
	if d.table == nil {
		return nil
	}
	if s := d.table.Spec(); s.FirstStrike == nil && s.Advanced == nil {
		return nil
	}
	tcp, udp, err := hostinfo.DefaultPaths().Listening()
	if err != nil {
		return err
	}
	return d.table.SetListening(tcp, udp)
}

// syncBans makes the kernel and the engine agree, at start and after the
// table was tampered with: bans in the kernel the engine does not know are
// learned (so their keys are not banned again), and bans the engine knows
// with time left that are missing from the kernel (after a reboot or a
// `nft flush ruleset`) are inserted again with the time left.
func (d *daemon) syncBans(why string) {
	kernel, err := d.nft.List()
	if err != nil {
		d.log.Warn("cannot read bans", "err", err)
		return
	}
	now := time.Now()
	present := map[netip.Prefix]bool{}
	for _, b := range kernel {
		present[b.Key] = true
		d.engine.Restore(rules.Offence{Key: b.Key, Count: 1, LastBan: now.Add(b.Expires - b.Timeout), BannedUntil: now.Add(b.Expires)})
	}
	restored := 0
	for _, o := range d.engine.Offences() {
		left := o.BannedUntil.Sub(now)
		if left < time.Second || present[o.Key] {
			continue
		}
		if err := d.nft.Ban(o.Key, left.Round(time.Second)); err != nil {
			d.log.Error("cannot restore ban", "source", o.Key, "err", err)
			continue
		}
		restored++
	}
	d.log.Info("bans in the kernel", "when", why, "kept", len(kernel), "restored", restored)
}

// resolveIgnore returns the fixed ignore prefixes plus the resolved words.
// A word that cannot be resolved is logged loudly; the daemon still starts
// with the rest, since refusing to start would leave the host unprotected.
func resolveIgnore(cfg *config.Config, log *slog.Logger) []netip.Prefix {
	out := slices.Clone(cfg.Ignore.Prefixes)
	paths := hostinfo.DefaultPaths()
	add := func(word string, on bool, f func() ([]netip.Prefix, error)) {
		if !on {
			return
		}
		ps, err := f()
		if err != nil {
			log.Error("cannot resolve ignore word", "word", word, "err", err)
			return
		}
		out = append(out, ps...)
		log.Info("never banned", "word", word, "prefixes", fmt.Sprint(ps))
	}
	add("self", cfg.Ignore.Self, hostinfo.Self)
	add("gateways", cfg.Ignore.Gateways, paths.Gateways)
	add("resolvers", cfg.Ignore.Resolvers, paths.Resolvers)
	return out
}

func (d *daemon) close() {
	if d.table != nil {
		d.table.Close()
	}
}

func (d *daemon) run(ctx context.Context, healthEvery time.Duration, hup <-chan os.Signal) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan parsers.Event, eventQueue)
	errs := make(chan error, len(d.inputs))
	for _, in := range d.inputs {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := in.run(ctx, events); err != nil {
				errs <- fmt.Errorf("%s: %w", in.name, err)
				cancel()
			}
		}()
	}
	// Report running only once every input is ready: a probe logged
	// before an NFLOG group is bound would be lost.
	for _, in := range d.inputs {
		if in.ready == nil {
			continue
		}
		select {
		case <-in.ready:
		case err := <-errs:
			d.wg.Wait()
			return err
		case <-ctx.Done():
			d.wg.Wait()
			return nil
		}
	}
	d.log.Info("running", "inputs", d.inputNames(), "table", "inet "+d.cfg.NFTables.Table,
		"rules", len(d.engine.Rules()), "dry_run", d.dryRun)

	tick := func(every time.Duration) *time.Ticker { return time.NewTicker(every) }
	health, second, tamper, metricsT := tick(healthEvery), tick(time.Second), tick(tamperEvery), tick(d.cfg.Metrics.Interval)
	defer health.Stop()
	defer second.Stop()
	defer tamper.Stop()
	defer metricsT.Stop()
	// Listening ports are refreshed for advanced mode and first strike.
	listenEvery := config.DefaultAdvancedRefresh
	if d.cfg.Advanced != nil {
		listenEvery = d.cfg.Advanced.Refresh
	}
	listenT := tick(listenEvery)
	defer listenT.Stop()
	last := time.Now()
	var lastEvents uint64
	for {
		select {
		case ev := <-events:
			d.step(ctx, &ev)
		case <-second.C:
			d.applyPardons()
			d.maybeSave(false)
		case <-tamper.C:
			d.checkTamper()
		case <-listenT.C:
			if err := d.refreshListening(); err != nil {
				d.log.Warn("cannot refresh listening ports", "err", err)
			}
		case <-metricsT.C:
			d.writeMetrics()
		case <-hup:
			d.reload()
		case now := <-health.C:
			d.healthLine(now.Sub(last), d.events-lastEvents)
			last, lastEvents = now, d.events
		case <-ctx.Done():
			d.wg.Wait()
			d.healthLine(time.Since(last), d.events-lastEvents)
			d.maybeSave(true)
			d.writeMetrics()
			select {
			case err := <-errs:
				return err
			default:
			}
			d.log.Info("stopped; bans stay in the kernel until they expire")
			return nil
		}
	}
}

func (d *daemon) inputNames() string {
	var names []string
	for _, in := range d.inputs {
		names = append(names, in.name)
	}
	return strings.Join(names, ",")
}

func (d *daemon) step(ctx context.Context, ev *parsers.Event) {
	d.events++
	dec, ok := d.engine.Step(ev)
	if !ok {
		return
	}
	if dec.Action == rules.Ignored && ev.Prefix != "" && ev.Prefix == d.fsPrefix() {
		// The kernel struck a source the daemon never bans (an address
		// resolved into the ignore list since): lift it at once.
		d.lift(dec.Key, "first strike hit an ignored source")
	}
	if dec.Action == rules.Ban && d.nft != nil {
		if err := d.nft.Ban(dec.Key, dec.Ban); err != nil {
			d.banErrors++
			d.log.Error("ban failed", "source", dec.Key, "rule", dec.Rule, "err", err)
		} else {
			d.bans++
			lat := time.Since(ev.Time)
			d.reaction.add(lat)
			if d.metrics != nil {
				d.metrics.ObserveReaction(lat)
			}
		}
		d.stateDirty = true
	}
	if d.metrics != nil {
		d.metrics.Decision(dec.Action.String(), dec.Rule)
	}
	d.logDecision(&dec)
	if d.report != nil {
		d.report.Act(&dec)
	}
	if d.exec != nil && slices.Contains(d.cfg.Exec.On, dec.Action) {
		ex := d.exec
		f := actions.ExecFields{
			Source: dec.Key.String(), Address: dec.Source.String(), Rule: dec.Rule, Ports: dec.PortList(),
			Ban: dec.Ban, Hits: dec.Hits, Action: dec.Action.String(), Offence: dec.Offence, Time: dec.Time,
		}
		go func() {
			if err := ex.Run(ctx, f); err != nil {
				d.log.Warn("exec action failed", "source", f.Source, "err", err)
			}
		}()
	}
}

// logDecision logs one line per decision. Decisions are bounded by the
// valve (bans) and by threshold resets (ignored, rate-limited), so an
// attacker cannot turn this into a line per packet.
func (d *daemon) logDecision(dec *rules.Decision) {
	level := slog.LevelInfo
	if dec.Action != rules.Ban {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("action", dec.Action.String()),
		slog.String("source", dec.Key.String()),
		slog.String("rule", dec.Rule),
		slog.Int("hits", int(dec.Hits)),
		slog.Int("distinct_ports", int(dec.DistinctPorts)),
		slog.String("ports", portsString(dec)),
		slog.Int("offence", int(dec.Offence)),
	}
	if dec.Action == rules.Ban {
		attrs = append(attrs, slog.String("ban", actions.FormatDuration(dec.Ban)))
	}
	if dec.Key.Bits() != dec.Source.BitLen() {
		attrs = append(attrs, slog.String("address", dec.Source.String()))
	}
	d.log.LogAttrs(context.Background(), level, "decision", attrs...)
}

func portsString(dec *rules.Decision) string {
	var b strings.Builder
	for i, p := range dec.PortList() {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, p)
	}
	return b.String()
}

func (d *daemon) healthLine(elapsed time.Duration, events uint64) {
	st := d.engine.Stats()
	var overruns, malformed uint64
	for _, in := range d.inputs {
		s := in.stats()
		overruns += s.Overruns
		for _, n := range s.Malformed {
			malformed += n
		}
	}
	attrs := []any{
		"events_per_s", fmt.Sprintf("%.1f", float64(events)/elapsed.Seconds()),
		"events", d.events, "overruns", overruns, "malformed", malformed,
		"decisions_ban", st.Decisions[rules.Ban], "ignored", st.Decisions[rules.Ignored],
		"rate_limited", st.Decisions[rules.RateLimited], "tracked", st.Tracked,
	}
	if d.nft != nil {
		if bans, err := d.nft.List(); err == nil {
			attrs = append(attrs, "bans_active", len(bans))
		}
		attrs = append(attrs, "ban_errors", d.banErrors)
		if p50, p99, ok := d.reaction.percentiles(); ok {
			attrs = append(attrs, "reaction_p50", p50.String(), "reaction_p99", p99.String())
		}
	}
	d.log.Info("health", attrs...)
}

func (d *daemon) writeMetrics() {
	if d.metrics == nil {
		return
	}
	st := d.engine.Stats()
	snap := metrics.Snapshot{RuleEvents: map[string]uint64{}, Tracked: st.Tracked}
	for i, r := range d.engine.Rules() {
		snap.RuleEvents[r.Name] = st.RuleEvents[i]
	}
	for _, in := range d.inputs {
		snap.Inputs = append(snap.Inputs, in.stats())
	}
	if d.nft != nil {
		if bans, err := d.nft.List(); err == nil {
			snap.BansActive = len(bans)
		}
	}
	d.metrics.Update(snap)
	if err := d.metrics.WriteTextfile(d.cfg.Metrics.Textfile); err != nil {
		d.log.Warn("cannot write metrics", "path", d.cfg.Metrics.Textfile, "err", err)
	}
}

// latencies keeps the last reaction times (packet logged -> ban in the
// kernel) for the health line's percentiles.
type latencies struct {
	ring [1024]time.Duration
	n    int
}

func (l *latencies) add(d time.Duration) {
	l.ring[l.n%len(l.ring)] = d
	l.n++
}

func (l *latencies) percentiles() (p50, p99 time.Duration, ok bool) {
	n := min(l.n, len(l.ring))
	if n == 0 {
		return 0, 0, false
	}
	s := slices.Clone(l.ring[:n])
	slices.Sort(s)
	return s[n/2], s[(n*99)/100], true
}

func (d *daemon) applyPardons() {
	if d.dryRun {
		return
	}
	ps, err := d.pardons.read()
	if err != nil {
		d.log.Warn("cannot read pardons", "path", d.pardons.path, "err", err)
		return
	}
	for _, p := range ps {
		if d.nft != nil {
			// Stale kernel counters must not strike the source again.
			if err := d.nft.Forget(p.key); err != nil {
				d.log.Warn("first strike: cannot forget a pardoned source", "source", p.key, "err", err)
			}
		}
		n := d.engine.Pardon(p.key, p.at)
		d.stateDirty = true
		d.log.Info("pardoned", "source", p.key, "keys", n)
	}
}

// maybeSave writes the state when offences changed at least stateMinDelay
// after the last write, every stateEvery for file positions, and always
// when final.
func (d *daemon) maybeSave(final bool) {
	if d.dryRun {
		return
	}
	since := time.Since(d.lastSave)
	if !final && !(d.stateDirty && since >= stateMinDelay) && since < stateEvery {
		return
	}
	st := &state.State{Saved: time.Now().UTC(), Offences: d.engine.Offences()}
	for _, in := range d.inputs {
		if in.file != nil {
			p := in.file.Position()
			st.Files = append(st.Files, state.Position{Path: p.Path, Dev: p.Dev, Inode: p.Inode, Offset: p.Offset})
		}
	}
	if err := state.Save(d.cfg.StateDir, st); err != nil {
		d.log.Error("cannot save state", "err", err)
		return
	}
	d.stateDirty = false
	d.lastSave = time.Now()
}

// checkTamper notices a table, set or chain removed behind our back (a
// firewall reload, `nft flush ruleset`), applies the table's spec again,
// which recreates it, and puts the active bans back with their remaining
// time.
func (d *daemon) checkTamper() {
	if d.table == nil {
		return
	}
	missing, err := d.table.Missing()
	if err != nil {
		d.log.Warn("cannot check the nftables table", "err", err)
		return
	}
	if len(missing) == 0 {
		return
	}
	d.log.Warn("nftables objects were removed: recreating them", "missing", strings.Join(missing, ", "))
	if err := d.applySpec(d.table.Spec()); err != nil {
		d.log.Error("cannot recreate the nftables table", "err", err)
		return
	}
	if d.nft != nil {
		d.syncBans("tamper")
	}
}

// fsPrefix is the log prefix of first strike's strikes, "" without first
// strike.
func (d *daemon) fsPrefix() string {
	if d.nft == nil {
		return ""
	}
	if fc := d.nft.Spec().FirstStrike; fc != nil {
		return fc.Prefix
	}
	return ""
}

// lift removes a kernel ban the daemon disagrees with and the kernel's
// counters for it.
func (d *daemon) lift(key netip.Prefix, why string) {
	removed, err := d.nft.Unblock(key)
	if err != nil && !errors.Is(err, actions.ErrNotBanned) {
		d.log.Error("cannot lift a kernel ban", "source", key, "err", err)
	}
	if err := d.nft.Forget(key); err != nil {
		d.log.Warn("first strike: cannot forget a lifted source", "source", key, "err", err)
	}
	d.log.Warn("lifted a kernel ban", "source", key, "removed", fmt.Sprint(removed), "why", why)
}
