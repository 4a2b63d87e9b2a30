package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/internal/hostinfo"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// eventQueue is the channel between the inputs and the engine. When the
// engine falls behind, inputs block, the NFLOG socket buffer fills and the
// kernel's drops are counted as overruns: loss is never silent.
const eventQueue = 4096

func cmdRun(ctx context.Context, e *env, args []string) int {
	fs := flags(e, "run", "[--config FILE] [--dry-run]", `Run the daemon: read the configured NFLOG groups, apply the rules and ban
offenders with timed elements in the nftables table it owns (inet sentry by
default). Bans stay in the kernel when the daemon stops; the kernel expires
them. Logs go to standard error (the journal under systemd). Stops cleanly
on SIGINT or SIGTERM.

It needs CAP_NET_ADMIN (root) and opens no network socket, only netlink.
Add the logging rules first: sentry-nflog firewall.

Examples:
  sentry-nflog run --dry-run      # decisions printed, nothing banned
  sentry-nflog run --config /etc/sentry-nflog/sentry.yaml`)
	cfgPath := fs.String("config", "", "config `FILE` (default: the embedded sentry.yaml)")
	dryRun := fs.Bool("dry-run", false, "decide and print, but ban nothing (decisions go to standard output)")
	health := fs.Duration("health-interval", time.Minute, "how often to log the one-line health summary")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitUsage
	}
	log := newLogger(e, cfg.Log)
	d, err := newDaemon(cfg, log, e, *dryRun)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFailure
	}
	defer d.close()
	if err := d.run(ctx, *health); err != nil {
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
// engine; inputs feed it through a channel.
type daemon struct {
	cfg    *config.Config
	log    *slog.Logger
	engine *rules.Engine
	nft    *actions.NFTables // nil in dry-run
	report *actions.Report   // dry-run output
	exec   *actions.Exec
	execOn []rules.Action
	inputs []*parsers.NFLOGSource
	wg     sync.WaitGroup

	pardons *pardonReader

	// Health counters, owned by the run goroutine.
	events, bans, banErrors uint64
	reaction                latencies
}

func newDaemon(cfg *config.Config, log *slog.Logger, e *env, dryRun bool) (*daemon, error) {
	if len(cfg.Inputs.Files) > 0 || cfg.Inputs.Kmsg {
		return nil, fmt.Errorf("%s: inputs.files and inputs.kmsg are read by `replay`; the daemon reads NFLOG groups (inputs.nflog)", cfg.File)
	}
	if len(cfg.Inputs.NFLOG) == 0 {
		return nil, fmt.Errorf("%s: no input: inputs.nflog is empty", cfg.File)
	}
	d := &daemon{cfg: cfg, log: log}
	ecfg := cfg.Engine
	ecfg.Ignore = resolveIgnore(cfg, log)
	var err error
	if d.engine, err = rules.NewEngine(ecfg); err != nil {
		return nil, err
	}
	if cfg.Exec != nil {
		if d.exec, err = actions.NewExec(cfg.Exec.Command, cfg.Exec.Timeout, 0); err != nil {
			return nil, fmt.Errorf("%s: actions.exec: %w", cfg.File, err)
		}
		d.execOn = cfg.Exec.On
	}
	if dryRun {
		d.report = actions.NewReport(e.stdout, false)
		log.Info("dry run: decisions are printed, nothing is banned")
	} else {
		d.nft, err = openTable(cfg)
		if err != nil {
			return nil, err
		}
		if err := d.nft.Setup(); err != nil {
			d.nft.Close()
			return nil, err
		}
		d.restoreBans()
	}
	d.pardons = &pardonReader{path: filepath.Join(cfg.StateDir, pardonFile)}
	// Pardons written before this start are history: only new ones apply.
	d.pardons.skipExisting()
	for _, in := range cfg.Inputs.NFLOG {
		d.inputs = append(d.inputs, parsers.NewNFLOGSource(parsers.NFLOGConfig{
			Group: in.Group, CopyRange: in.CopyRange, QueueThreshold: in.QueueThreshold,
			FlushTimeout: in.FlushTimeout, ReadBuffer: in.ReadBuffer, FixedBatching: !in.AdaptiveBatching, Logger: log,
		}))
	}
	return d, nil
}

// restoreBans tells the engine about bans already in the kernel (from
// before a restart), so packets that still reach us from those keys are
// not banned a second time.
func (d *daemon) restoreBans() {
	bans, err := d.nft.List()
	if err != nil {
		d.log.Warn("cannot read existing bans", "err", err)
		return
	}
	now := time.Now()
	for _, b := range bans {
		d.engine.Restore(b.Key, now.Add(b.Expires), now.Add(b.Expires-b.Timeout), 1)
	}
	if len(bans) > 0 {
		d.log.Info("kept bans from before the start", "bans", len(bans))
	}
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
	if d.nft != nil {
		d.nft.Close()
	}
}

func (d *daemon) run(ctx context.Context, healthEvery time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan parsers.Event, eventQueue)
	errs := make(chan error, len(d.inputs))
	for _, src := range d.inputs {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := src.Run(ctx, events); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	// Report running only once every group is bound: a probe logged
	// before that would be lost.
	for _, src := range d.inputs {
		select {
		case <-src.Ready():
		case err := <-errs:
			d.wg.Wait()
			return err
		case <-ctx.Done():
			d.wg.Wait()
			return nil
		}
	}
	d.log.Info("running", "groups", d.groups(), "table", "inet "+d.cfg.NFTables.Table,
		"rules", len(d.engine.Rules()), "dry_run", d.nft == nil)

	health := time.NewTicker(healthEvery)
	defer health.Stop()
	pardonTick := time.NewTicker(time.Second)
	defer pardonTick.Stop()
	last := time.Now()
	var lastEvents uint64
	for {
		select {
		case ev := <-events:
			d.step(ctx, &ev)
		case <-pardonTick.C:
			d.applyPardons()
		case now := <-health.C:
			d.healthLine(now.Sub(last), d.events-lastEvents)
			last, lastEvents = now, d.events
		case <-ctx.Done():
			d.wg.Wait()
			d.healthLine(time.Since(last), d.events-lastEvents)
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

func (d *daemon) groups() string {
	var g []string
	for _, in := range d.cfg.Inputs.NFLOG {
		g = append(g, fmt.Sprint(in.Group))
	}
	return strings.Join(g, ",")
}

func (d *daemon) step(ctx context.Context, ev *parsers.Event) {
	d.events++
	dec, ok := d.engine.Step(ev)
	if !ok {
		return
	}
	if dec.Action == rules.Ban && d.nft != nil {
		if err := d.nft.Ban(dec.Key, dec.Ban); err != nil {
			d.banErrors++
			d.log.Error("ban failed", "source", dec.Key, "rule", dec.Rule, "err", err)
		} else {
			d.bans++
			d.reaction.add(time.Since(ev.Time))
		}
	}
	d.logDecision(&dec)
	if d.report != nil {
		d.report.Act(&dec)
	}
	if d.exec != nil && slices.Contains(d.execOn, dec.Action) {
		f := actions.ExecFields{
			Source: dec.Key.String(), Address: dec.Source.String(), Rule: dec.Rule, Ports: dec.PortList(),
			Ban: dec.Ban, Hits: dec.Hits, Action: dec.Action.String(), Offence: dec.Offence, Time: dec.Time,
		}
		go func() {
			if err := d.exec.Run(ctx, f); err != nil {
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
		s := in.Stats()
		overruns += s.Overruns
		for o, n := range s.Malformed {
			if parsers.Outcome(o).Malformed() {
				malformed += n
			}
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
	ps, err := d.pardons.read()
	if err != nil {
		d.log.Warn("cannot read pardons", "path", d.pardons.path, "err", err)
		return
	}
	for _, p := range ps {
		n := d.engine.Pardon(p.key, p.at)
		d.log.Info("pardoned", "source", p.key, "keys", n)
	}
}
