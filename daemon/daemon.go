package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/config"
	"github.com/sentry-nflog/sentry-nflog/internal/metrics"
	"github.com/sentry-nflog/sentry-nflog/internal/state"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/rules"
	"github.com/sentry-nflog/sentry-nflog/sources"
)

// eventQueue is the channel between the inputs and the engine. When the
// engine falls behind, inputs block, the NFLOG socket buffer fills and the
// kernel's drops are counted as overruns: loss is never silent.
const eventQueue = 4096

// Periods of the daemon's housekeeping.
const (
	tamperEvery = 2 * time.Second // missing table, set or chain noticed within this
	// verifyEvery paces the comparison of the ban sets' elements with the
	// engine's bans (a set dump, off the loop): a flushed set is refilled
	// within it.
	verifyEvery   = 10 * time.Second
	stateMinDelay = time.Second // offences and positions saved at most this long after they change
	// reapplyEvery paces attempts to reach the desired table after one
	// failed (a kernel without a feature first strike needs, a batch
	// refused): the daemon keeps banning with what is in place meanwhile.
	reapplyEvery = 30 * time.Second
	// inputRetryMax caps the pause before an input that failed is started
	// again.
	inputRetryMax = 30 * time.Second
)

// Table is the nftables table the daemon owns; *actions.Table is the real
// one. Its methods must be safe for concurrent use: the loop bans while the
// table keeper checks, repairs and reads the sets.
type Table interface {
	// Apply makes the kernel hold spec, in one batch.
	Apply(spec actions.TableSpec) error
	// Missing names what of the last applied spec is not in the kernel.
	Missing() ([]string, error)
	// Ban drops key for timeout, never shortening a ban in place.
	Ban(key netip.Prefix, timeout time.Duration) error
	// BanMany is Ban for each of bans, in few transactions (the bans a
	// flushed table lacks), with Ban's error for each.
	BanMany(bans []actions.KeyBan) []error
	// Unblock removes the bans overlapping key.
	Unblock(key netip.Prefix) ([]netip.Prefix, error)
	// List returns the active bans.
	List() ([]actions.BanEntry, error)
	// Snapshot returns the active bans as List does, without holding up a
	// Ban while it reads (a connection of its own): the table keeper's
	// periodic comparison uses it.
	Snapshot() ([]actions.BanEntry, error)
	// Forget drops first strike's counting state for key.
	Forget(key netip.Prefix) error
	// SetListening updates the ports first strike and advanced mode skip.
	SetListening(tcp, udp []uint16) error
}

// Host is what the daemon asks of the machine it runs on: the words of the
// ignore list and the ports something listens on. hostinfo.Paths is the
// real one.
type Host interface {
	Self() ([]netip.Prefix, error)
	Gateways() ([]netip.Prefix, error)
	Resolvers() ([]netip.Prefix, error)
	Listening() (tcp, udp []uint16, err error)
}

// Deps are what a Daemon works with besides its config.
type Deps struct {
	// Log receives the daemon's own log; nil discards it.
	Log *slog.Logger
	// Table is the table bans go to; nil for a dry run without advanced
	// mode, which needs no table.
	Table Table
	// DryRun writes decisions to Report instead of banning, and reads and
	// saves no state. Its table, if any, gets advanced mode's logging chain
	// only: no drop chains, no first strike.
	DryRun bool
	// Host answers the ignore words and the listening ports.
	Host Host
	// Report receives a dry run's decisions, one line each.
	Report io.Writer
	// Load reads the config again on Reload; nil makes Reload a no-op.
	Load func() (*config.Config, error)
	// HealthEvery is the period of the one-line health summary; a minute
	// when zero.
	HealthEvery time.Duration
	// Fleet links the daemon to the other hosts when the config has a
	// fleet section (fleet.go); nil otherwise, and in a dry run.
	Fleet Fleet
}

// Daemon is a running sentry-nflog: make it with New, run it with Run.
type Daemon struct {
	cfg  *config.Config
	deps Deps
	log  *slog.Logger

	engine *rules.Engine
	// tmu guards what the table keeper shares with the loop: desired and
	// listen (written by the loop, read by the keeper) and applied, full,
	// lastApply and raced (the keeper's).
	tmu     sync.Mutex
	guard   Guard // the checks on the ignore list and the ban key lengths
	desired Desired
	// applied is the table spec last applied with success; it differs
	// from desired.Table while first strike could not be installed.
	applied   actions.TableSpec
	full      fullState
	lastApply time.Time
	raced     bool // the last Apply failed racing a change of the table
	listen    actions.ListenPorts
	// tableWake asks the keeper to apply the plan (a reload); calls
	// carries its requests to the loop; looping says the loop serves
	// them; verifySoon asks it to verify the ban sets at its next check
	// (a ban failed).
	tableWake  chan struct{}
	calls      chan call
	looping    atomic.Bool
	verifySoon atomic.Bool

	door       []actions.Action
	exec       *actions.ExecAction
	retired    []*actions.ExecAction // replaced by a reload, closed when Run ends
	inputs     []*input
	metrics    *metrics.Metrics
	store      store
	saver      *saver
	pardons    pardonReader
	strikePfx  string
	reloadReq  chan struct{}
	stateDirty bool
	// gen is the generation of the last state.json written (or read);
	// savedFiles the positions last saved.
	gen        uint64
	savedFiles []state.Position
	fleet      *fleetState // nil without fleet mode
	scan       scanState   // what is said of scans held back: strikes.go
	opsState               // journal, manual bans, status (ops.go)

	c counters
}

// counters are the health line's figures, owned by Run's goroutine.
type counters struct {
	events, bans, banErrors uint64
	reaction                latencies
}

// New builds the daemon: it resolves the ignore list, compiles the rules,
// loads the saved state and makes the kernel hold the table (unless a dry
// run). Nothing reads events until Run.
func New(cfg *config.Config, deps Deps) (*Daemon, error) {
	if len(cfg.Inputs.NFLOG) == 0 && len(cfg.Inputs.Files) == 0 && !cfg.Inputs.Kmsg {
		return nil, fmt.Errorf("%s: no input: inputs.nflog, inputs.files and inputs.kmsg are all empty", cfg.File)
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.HealthEvery <= 0 {
		deps.HealthEvery = time.Minute
	}
	if deps.Report == nil {
		deps.Report = io.Discard
	}
	d := &Daemon{cfg: cfg, deps: deps, log: deps.Log, reloadReq: make(chan struct{}, 1),
		tableWake: make(chan struct{}, 1), calls: make(chan call)}
	d.initOps()
	ignore := d.resolveIgnore(cfg)
	d.desired = d.derive(cfg, prefixesOf(ignore))
	d.guard = NewGuard(ignore, d.desired.Engine)
	for _, n := range d.desired.Notes {
		d.log.Info("first strike: " + n)
	}
	var err error
	if d.engine, err = rules.NewEngine(d.desired.Engine); err != nil {
		return nil, err
	}
	d.strikePfx = actions.DefaultFirstStrikePrefix
	if fs := d.desired.Table.FirstStrike; fs != nil && fs.Prefix != "" {
		d.strikePfx = fs.Prefix
	}
	if deps.DryRun {
		d.store = noStore{}
		d.log.Info("dry run: decisions are printed, nothing is banned, no state is saved")
	} else {
		d.store = dirStore{dir: cfg.StateDir, max: cfg.MaxOffences}
	}
	st, err := d.store.load()
	if err != nil {
		if st == nil {
			return nil, err
		}
		d.log.Error("state", "err", err)
	}
	d.restore(st)
	d.gen, d.savedFiles = st.Generation, st.Files
	d.pardons = pardonReader{path: d.store.pardonPath(), offset: st.PardonOffset}
	// Pardons given while the daemon was down apply now, each once, to
	// what was decided before it.
	d.applyPardons()
	d.openOps(st)
	built := false
	defer func() {
		if !built {
			d.closeOps()
		}
	}()
	if cfg.Metrics.Textfile != "" {
		d.metrics = metrics.New()
	}
	if deps.Table != nil {
		d.refreshListening()
		if err := d.applyTable("start"); err != nil {
			return nil, err
		}
		if !deps.DryRun {
			d.syncBans(context.Background(), "start", true)
		}
	}
	ex, err := newExecAction(cfg, d.log)
	if err != nil {
		return nil, err
	}
	if err := d.initFleet(); err != nil {
		return nil, err
	}
	d.setDoor(ex)
	d.inputs = buildInputs(cfg, st, d.log)
	built = true
	return d, nil
}

// derive is Derive, shaped for a dry run: a dry run's table only logs
// (advanced mode); it drops and strikes nothing.
func (d *Daemon) derive(cfg *config.Config, ignore []netip.Prefix) Desired {
	want := Derive(cfg, ignore)
	if d.deps.DryRun {
		want.Table.FirstStrike = nil
		want.Table.ManageChain = false
	}
	return want
}

// Reload asks Run to read the config again (SIGHUP). Requests made while
// one is pending are merged. Safe from any goroutine.
func (d *Daemon) Reload() {
	select {
	case d.reloadReq <- struct{}{}:
	default:
	}
}

// setDoor makes the list of actions every decision goes through, with ex
// as the alert command's action. A replaced alert action is closed when
// Run ends, so its commands in flight finish without holding up the loop.
func (d *Daemon) setDoor(ex *actions.ExecAction) {
	var door []actions.Action
	if !d.deps.DryRun {
		door = append(door, &banAction{d: d})
	} else {
		door = append(door, actions.NewReport(d.deps.Report, false))
	}
	// Decisions are logged past the status's ring of errors: an ignored
	// source is a warning, not the daemon's trouble.
	door = append(door, logAction{log: d.deps.Log, held: &d.scan})
	if d.journal != nil {
		door = append(door, journalAction{j: d.journal})
	}
	if d.metrics != nil {
		door = append(door, metricsAction{m: d.metrics})
	}
	if a := d.fleetAction(); a != nil {
		door = append(door, a)
	}
	if d.exec != nil && d.exec != ex {
		d.retired = append(d.retired, d.exec)
	}
	d.exec = ex
	if ex != nil {
		door = append(door, ex)
	}
	d.door = door
}

func newExecAction(cfg *config.Config, log *slog.Logger) (*actions.ExecAction, error) {
	if cfg.Exec == nil {
		return nil, nil
	}
	ex, err := actions.NewExec(cfg.Exec.Command, cfg.Exec.Timeout, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: actions.exec: %w", cfg.File, err)
	}
	return actions.NewExecAction(ex, cfg.Exec.On, log), nil
}

// resolveIgnore returns the fixed ignore prefixes plus the resolved words
// (ResolveIgnore). A word that cannot be resolved is logged loudly; the
// daemon still starts with the rest, since refusing to start would leave
// the host unprotected.
func (d *Daemon) resolveIgnore(cfg *config.Config) []Ignored {
	host := d.deps.Host
	list, errs := ResolveIgnore(cfg, host)
	failed := map[string]bool{}
	for _, err := range errs {
		var we *WordError
		if errors.As(err, &we) {
			failed[we.Word] = true
			d.log.Error("cannot resolve ignore word", "word", we.Word, "err", we.Err)
		}
	}
	if host == nil {
		return list
	}
	for _, w := range []struct {
		on   bool
		word string
	}{{cfg.Ignore.Self, FromSelf}, {cfg.Ignore.Gateways, FromGateways}, {cfg.Ignore.Resolvers, FromResolvers}} {
		if !w.on || failed[w.word] {
			continue
		}
		ps := []netip.Prefix{}
		for _, ig := range list {
			if ig.From == w.word {
				ps = append(ps, ig.Prefix)
			}
		}
		d.log.Info("never banned", "word", w.word, "prefixes", fmt.Sprint(ps))
	}
	return list
}

// Run reads the inputs, decides and acts until ctx ends (see the package
// documentation for its contract).
func (d *Daemon) Run(ctx context.Context) error {
	inCtx, stopInputs := context.WithCancel(context.Background())
	defer stopInputs()
	events := make(chan sources.Item, eventQueue)
	fatal := make(chan error, len(d.inputs))
	var wg sync.WaitGroup
	for _, in := range d.inputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.supervise(inCtx, in, events); err != nil {
				fatal <- err
			}
		}()
	}
	// Remote bans are a source of their own, stopped with the inputs.
	remote := d.startFleet(inCtx, &wg)
	inputsDone := make(chan struct{})
	go func() { wg.Wait(); close(inputsDone) }()

	// The table keeper and the state writer work beside the loop, so that
	// neither a slow kernel nor a slow disk holds up decisions. The keeper
	// also refreshes the listening ports, for advanced mode and first
	// strike.
	listenEvery := config.DefaultAdvancedRefresh
	if d.cfg.Advanced != nil {
		listenEvery = d.cfg.Advanced.Refresh
	}
	d.looping.Store(true)
	keepCtx, stopKeeper := context.WithCancel(context.Background())
	keeperDone := make(chan struct{})
	if d.deps.Table != nil {
		go func() { defer close(keeperDone); d.keepTable(keepCtx, listenEvery) }()
	} else {
		close(keeperDone)
	}
	d.saver = newSaver(d.store, d.log)
	stopBeside := func() {
		stopKeeper()
		// The keeper may be waiting for the loop: serve it until it ends.
		for done := false; !done; {
			select {
			case c := <-d.calls:
				c.fn()
				close(c.done)
			case <-keeperDone:
				done = true
			}
		}
		d.looping.Store(false)
	}
	defer func() {
		if d.looping.Load() {
			stopBeside()
		}
	}()

	tick := func(every time.Duration) *time.Ticker { return time.NewTicker(every) }
	health, second, metricsT := tick(d.deps.HealthEvery), tick(stateMinDelay), tick(d.cfg.Metrics.Interval)
	statusT := tick(StatusEvery)
	defer statusT.Stop()
	d.startStatus()
	defer health.Stop()
	defer second.Stop()
	defer metricsT.Stop()

	// Events are decided from the start, while inputs get ready: an input
	// that reads a backlog before it is ready (the rest of a rotated file)
	// must not wait for a loop that waits for it.
	ready := d.readiness(inCtx)
	last := time.Now()
	var lastEvents uint64
	var runErr error
loop:
	for {
		select {
		case it := <-events:
			d.decide(&it)
		case m := <-remote:
			d.applyRemotes(m, remote)
		case <-ready:
			ready = nil
			d.log.Info("running", "inputs", d.inputNames(), "table", "inet "+d.cfg.NFTables.Table,
				"rules", len(d.engine.Rules()), "dry_run", d.deps.DryRun)
		case err := <-fatal:
			runErr = err
			break loop
		case c := <-d.calls:
			c.fn()
			close(c.done)
		case now := <-second.C:
			d.applyPardons()
			d.opsSecond()
			d.bound()
			d.maybeSave(false)
			d.everySecond(now)
		case <-statusT.C:
			d.writeStatus()
		case <-metricsT.C:
			d.writeMetrics()
		case <-d.reloadReq:
			d.reload()
		case now := <-health.C:
			d.healthLine(now.Sub(last), d.c.events-lastEvents)
			last, lastEvents = now, d.c.events
		case <-ctx.Done():
			break loop
		}
	}
	stopBeside()
	// Stop reading, then decide every event already read: its file
	// position may be saved below, so it must not be lost.
	stopInputs()
	for done := false; !done; {
		select {
		case it := <-events:
			d.decide(&it)
		case <-inputsDone:
			done = true
		}
	}
	for n := len(events); n > 0; n-- {
		it := <-events
		d.decide(&it)
	}
	d.healthLine(time.Since(last), d.c.events-lastEvents)
	d.maybeSave(true)
	d.writeMetrics()
	d.stopOps()
	d.Close()
	if runErr != nil {
		return runErr
	}
	d.log.Info("stopped; bans stay in the kernel until they expire")
	return nil
}

// decide steps one item's event and then commits its mark: the position of
// its input moves past it only once every action has had the decision.
func (d *Daemon) decide(it *sources.Item) {
	d.step(&it.Event)
	it.Mark.Commit()
}

// bound forgets the oldest offences past limits.max_offences.
func (d *Daemon) bound() {
	if n := d.engine.ForgetOldest(d.cfg.MaxOffences, time.Now()); n > 0 {
		d.stateDirty = true
		d.log.Info("offence history over limits.max_offences: the oldest forgotten", "forgotten", n, "max", d.cfg.MaxOffences)
	}
}

// readiness returns a channel closed once every input has settled: it is
// ready, or it failed (which supervise logged).
func (d *Daemon) readiness(ctx context.Context) <-chan struct{} {
	all := make(chan struct{})
	go func() {
		for _, in := range d.inputs {
			select {
			case <-in.settled:
			case <-ctx.Done():
				return
			}
		}
		close(all)
	}()
	return all
}

// supervise runs one input until ctx ends. An input that fails is logged,
// counted and run again after a pause that doubles up to inputRetryMax,
// while the others go on; only a fatal failure before the input was ever
// ready (another process reads its NFLOG group) stops the daemon.
func (d *Daemon) supervise(ctx context.Context, in *input, out chan<- sources.Item) error {
	go func() {
		select {
		case <-in.src.Ready():
			in.settle()
		case <-ctx.Done():
		}
	}()
	pause := time.Second
	for {
		err := in.src.Run(ctx, out)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("stopped without an error")
		}
		if !isClosed(in.src.Ready()) && fatal(err) {
			return fmt.Errorf("%s: %w", in.src.Name(), err)
		}
		in.failures.Add(1)
		in.settle()
		d.log.Error("input failed; restarting it", "input", in.src.Name(), "err", err, "in", pause)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
		pause = min(2*pause, inputRetryMax)
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (d *Daemon) inputNames() string {
	var names []string
	for _, in := range d.inputs {
		names = append(names, in.src.Name())
	}
	return strings.Join(names, ",")
}

// step decides one event and hands a decision to every action.
func (d *Daemon) step(ev *parsers.Event) {
	d.c.events++
	dec, ok := d.engine.Step(ev)
	d.noteStrike(ev, &dec, ok)
	if !ok {
		return
	}
	d.counted(dec.Action)
	if dec.Action == rules.Ignored && !d.deps.DryRun && ev.Prefix == d.strikePfx {
		// The kernel struck a source the daemon never bans (an address
		// resolved into the ignore list since): lift it at once.
		d.lift(dec.Key, "first strike hit an ignored source")
	}
	for _, a := range d.door {
		if err := a.Act(&dec); err != nil {
			d.log.Error("action failed", "action", fmt.Sprintf("%T", a), "source", dec.Key, "err", err)
		}
	}
}

// lift removes a kernel ban the daemon disagrees with and the kernel's
// counters for it. It leaves the manual bans made with `block`: those are
// this host's operator's, whom only `unblock` overrules.
func (d *Daemon) lift(key netip.Prefix, why string) {
	unblock := d.deps.Table.Unblock
	if mt, ok := d.deps.Table.(manualTable); ok {
		unblock = mt.Pardon
	}
	removed, err := unblock(key)
	if err != nil && !errors.Is(err, actions.ErrNotBanned) {
		d.log.Error("cannot lift a kernel ban", "source", key, "why", why, "err", err)
		return
	}
	if err := d.deps.Table.Forget(key); err != nil {
		d.log.Error("cannot forget a lifted source's first-strike counters", "source", key, "err", err)
	}
	if len(removed) > 0 {
		d.log.Warn("lifted a kernel ban", "source", key, "removed", fmt.Sprint(removed), "why", why)
	}
}

// refreshListening reads the listening ports and hands them to the table,
// whose first strike and advanced mode never count ports with a listener.
func (d *Daemon) refreshListening() {
	if d.deps.Table == nil || d.deps.Host == nil {
		return
	}
	tcp, udp, err := d.deps.Host.Listening()
	if err != nil {
		d.log.Warn("cannot read the listening ports", "err", err)
		return
	}
	d.tmu.Lock()
	d.listen = actions.ListenPorts{TCP: tcp, UDP: udp}
	d.tmu.Unlock()
	if a := d.appliedSpec(); a.FirstStrike == nil && a.Advanced == nil {
		return
	}
	if err := d.deps.Table.SetListening(tcp, udp); err != nil {
		d.log.Warn("cannot update the listening ports in the table", "err", err)
	}
}

// Close waits for the alert commands in flight. Run calls it before it
// returns; call it for a daemon that New made but Run never ran.
func (d *Daemon) Close() error {
	d.closeFleet()
	d.closeOps()
	for _, ex := range append(d.retired, d.exec) {
		if ex != nil {
			ex.Close()
		}
	}
	d.retired = nil
	return nil
}
