package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// The status file: one screen of what the running daemon is doing, for
// `sentry-nflog status`, without a socket. Every StatusEvery the loop takes
// a snapshot of its counters (cheap: no kernel read, no walk of the
// offences) and hands it to a writer beside the loop, which replaces the
// file (a temporary file renamed over it: a reader sees the old or the new
// one). The bans by origin are the table keeper's, counted when it last
// listed the sets. When Run ends, a last one says the daemon stopped.

// StatusFile is the status file's name in state_dir.
const StatusFile = "status.json"

// StatusEvery is how often the status file is rewritten. A file older
// than three of these was left by a daemon that no longer runs.
const StatusEvery = 5 * time.Second

// lastErrors is how many of the last error and warning log records the
// status keeps.
const lastErrors = 10

// Status is the status file's content.
type Status struct {
	// PID is the daemon's process; Started when it started, Written when
	// this was written, every IntervalSeconds.
	PID             int       `json:"pid"`
	Started         time.Time `json:"started"`
	Written         time.Time `json:"written"`
	IntervalSeconds int       `json:"interval_seconds"`
	// Stopped is set in the last status of a daemon that stopped cleanly.
	Stopped bool          `json:"stopped,omitempty"`
	Config  string        `json:"config"`
	Table   string        `json:"table"`
	Inputs  []InputStatus `json:"inputs"`
	// Events counts every event read since start; the rates are over the
	// last minute (or since start, if shorter).
	Events             uint64  `json:"events"`
	EventsPerMinute    float64 `json:"events_per_minute"`
	DecisionsPerMinute float64 `json:"decisions_per_minute"`
	// Decisions counts decisions since start, by action.
	Decisions map[string]uint64 `json:"decisions"`
	Bans      BanStatus         `json:"bans"`
	// FirstStrike is "applied" (the kernel strikes), "degraded" (it was
	// refused: bans come from the daemon alone until a retry succeeds) or
	// "off".
	FirstStrike string       `json:"first_strike"`
	Fleet       *FleetStatus `json:"fleet,omitempty"`
	// LastErrors are the last error and warning records of the daemon's
	// log, oldest first.
	LastErrors []LogRecord `json:"last_errors"`
}

// InputStatus is one input's health.
type InputStatus struct {
	Name      string `json:"name"`
	Ready     bool   `json:"ready"`
	Events    uint64 `json:"events"`
	Malformed uint64 `json:"malformed"`
	Overruns  uint64 `json:"overruns"`
	Failures  uint64 `json:"failures"`
}

// BanStatus counts the bans.
type BanStatus struct {
	// Active counts the elements of the ban sets by origin (daemon,
	// kernel, fleet, block, manual: actions.BanEntry's, every fleet:<host>
	// counted as fleet), as the table keeper listed them at Listed (at
	// start, then every 10 s).
	Active map[string]int `json:"active"`
	Listed time.Time      `json:"listed,omitzero"`
	// Errors counts the bans the kernel refused since start.
	Errors uint64 `json:"errors"`
}

// FleetStatus is fleet mode's state.
type FleetStatus struct {
	Connected    bool              `json:"connected"`
	Published    uint64            `json:"published"`
	Received     uint64            `json:"received"`
	Applied      uint64            `json:"applied"`
	Refused      map[string]uint64 `json:"refused"`
	RemoteActive int               `json:"remote_active"`
}

// LogRecord is one record of the daemon's log.
type LogRecord struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	Attrs   string    `json:"attrs,omitempty"`
}

// ReadStatus reads the status file in stateDir.
func ReadStatus(stateDir string) (*Status, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, StatusFile))
	if err != nil {
		return nil, err
	}
	var st Status
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(stateDir, StatusFile), err)
	}
	return &st, nil
}

// statusOf takes the snapshot, on the loop.
func (d *Daemon) statusOf(now time.Time) *Status {
	st := &Status{
		PID: os.Getpid(), Started: d.started.UTC(), Written: now.UTC(), IntervalSeconds: int(StatusEvery / time.Second),
		Config: d.cfg.File, Table: "inet " + d.cfg.NFTables.Table, Events: d.c.events, Decisions: map[string]uint64{},
		Inputs: []InputStatus{}, FirstStrike: d.strikeState(), LastErrors: d.ring.records(),
	}
	for _, in := range d.inputs {
		s := in.stats()
		is := InputStatus{Name: s.Name, Ready: isClosed(in.src.Ready()), Events: s.Events, Overruns: s.Overruns, Failures: s.Failures}
		for _, n := range s.Malformed {
			is.Malformed += n
		}
		st.Inputs = append(st.Inputs, is)
	}
	for a, n := range d.tally.byAction {
		if n > 0 {
			st.Decisions[rules.Action(a).String()] = n
		}
	}
	d.tally.rates.add(now, d.c.events, d.tally.decisions)
	st.EventsPerMinute, st.DecisionsPerMinute = d.tally.rates.perMinute()
	d.tmu.Lock()
	st.Bans = BanStatus{Active: d.kernelBans, Listed: d.kernelListed.UTC(), Errors: d.c.banErrors}
	d.tmu.Unlock()
	if st.Bans.Active == nil {
		st.Bans.Active = map[string]int{}
	}
	if f := d.fleet; f != nil {
		s := d.deps.Fleet.Stats()
		fs := &FleetStatus{Connected: s.Connected, Published: s.Published, Received: f.received, Applied: f.applied,
			Refused: map[string]uint64{}, RemoteActive: len(f.remote)}
		for r, n := range f.refused {
			fs.Refused[r] = n
		}
		if s.Invalid > 0 {
			fs.Refused["invalid"] = s.Invalid
		}
		st.Fleet = fs
	}
	return st
}

// strikeState says whether first strike is in the kernel.
func (d *Daemon) strikeState() string {
	d.tmu.Lock()
	defer d.tmu.Unlock()
	switch {
	case d.desired.Table.FirstStrike == nil:
		return "off"
	case d.applied.FirstStrike != nil:
		return "applied"
	}
	return "degraded"
}

// countKernel keeps the ban sets' elements by origin for the status; the
// table keeper calls it with what it listed.
func (d *Daemon) countKernel(kernel []actions.BanEntry, at time.Time) {
	counts := map[string]int{}
	for _, b := range kernel {
		o := b.Origin
		if strings.HasPrefix(o, actions.OriginFleet) {
			o = "fleet"
		}
		counts[o]++
	}
	d.tmu.Lock()
	d.kernelBans, d.kernelListed = counts, at
	d.tmu.Unlock()
}

// rates keeps samples of the counters, one per status, for the rates over
// the last minute.
type rates struct {
	s [1 + int(time.Minute/StatusEvery)]sample
	n int
}

type sample struct {
	at                time.Time
	events, decisions uint64
}

func (r *rates) add(at time.Time, events, decisions uint64) {
	r.s[r.n%len(r.s)] = sample{at, events, decisions}
	r.n++
}

// perMinute returns the rates between the oldest sample kept and the
// newest, per minute; zero before two samples.
func (r *rates) perMinute() (events, decisions float64) {
	if r.n < 2 {
		return 0, 0
	}
	newest := r.s[(r.n-1)%len(r.s)]
	oldest := r.s[max(r.n-len(r.s), 0)%len(r.s)]
	el := newest.at.Sub(oldest.at).Minutes()
	if el <= 0 {
		return 0, 0
	}
	return float64(newest.events-oldest.events) / el, float64(newest.decisions-oldest.decisions) / el
}

// statusWriter writes the status file beside the loop: the loop offers a
// snapshot and goes on; one still being written makes the loop skip this
// one (the next is five seconds away).
type statusWriter struct {
	path string
	jobs chan *Status
	done chan struct{}
}

func newStatusWriter(dir string, log *slog.Logger) *statusWriter {
	w := &statusWriter{path: filepath.Join(dir, StatusFile), jobs: make(chan *Status), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		failing := false
		for st := range w.jobs {
			err := writeStatus(w.path, st)
			if err != nil && !failing {
				log.Warn("cannot write the status file", "path", w.path, "err", err)
			}
			failing = err != nil
		}
	}()
	return w
}

func (w *statusWriter) offer(st *Status) {
	select {
	case w.jobs <- st:
	default:
	}
}

// stop waits for the status being written and ends the writer.
func (w *statusWriter) stop() {
	close(w.jobs)
	<-w.done
}

// writeStatus replaces path with st. Not synced: a status lost in a crash
// is stale anyway.
func writeStatus(path string, st *Status) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), StatusFile+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o640); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// logRing keeps the last error and warning records of the daemon's log.
type logRing struct {
	mu   sync.Mutex
	recs [lastErrors]LogRecord
	n    int
}

func (r *logRing) add(rec LogRecord) {
	r.mu.Lock()
	r.recs[r.n%len(r.recs)] = rec
	r.n++
	r.mu.Unlock()
}

// records returns the records kept, oldest first.
func (r *logRing) records() []LogRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []LogRecord{}
	for i := max(r.n-len(r.recs), 0); i < r.n; i++ {
		out = append(out, r.recs[i%len(r.recs)])
	}
	return out
}

// maxAttrs bounds the attributes kept of one record: an attacker may
// choose what some of them say.
const maxAttrs = 300

// ringHandler passes records on to the daemon's log and keeps the errors
// and warnings in a ring for the status.
type ringHandler struct {
	next  slog.Handler
	ring  *logRing
	pre   string // the attributes of WithAttrs, rendered
	group string // the groups of WithGroup, as a key prefix
}

func (h *ringHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

// render appends a=v to b, bounded.
func render(b *strings.Builder, group string, a slog.Attr) bool {
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(group)
	fmt.Fprintf(b, "%s=%v", a.Key, a.Value)
	return b.Len() < maxAttrs
}

func (h *ringHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		b.WriteString(h.pre)
		r.Attrs(func(a slog.Attr) bool { return render(&b, h.group, a) })
		attrs := b.String()
		if len(attrs) > maxAttrs {
			attrs = attrs[:maxAttrs] + "..."
		}
		h.ring.add(LogRecord{Time: r.Time.UTC(), Level: r.Level.String(), Message: r.Message, Attrs: attrs})
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *ringHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.pre)
	for _, a := range as {
		if !render(&b, h.group, a) {
			break
		}
	}
	return &ringHandler{next: h.next.WithAttrs(as), ring: h.ring, pre: b.String(), group: h.group}
}

func (h *ringHandler) WithGroup(name string) slog.Handler {
	return &ringHandler{next: h.next.WithGroup(name), ring: h.ring, pre: h.pre, group: h.group + name + "."}
}
