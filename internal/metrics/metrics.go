// Package metrics exposes the daemon's counters in the Prometheus text
// format through a file for node_exporter's textfile collector: metrics
// without a socket. The file is replaced atomically, so the collector never
// reads half of it.
package metrics

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Input is one input's counters at a point in time.
type Input struct {
	// Name identifies the input: "nflog:7", "file:/var/log/kern.log", "kmsg".
	Name      string
	Events    uint64
	Malformed map[string]uint64 // by reason
	Overruns  uint64
	// Failures counts the times the input failed and was restarted (for
	// a followed file, also the times its path was found not to be a
	// regular file).
	Failures uint64
	// Unspecified counts records of packets from 0.0.0.0 or :: (DHCP,
	// IGMP): normal traffic, never evidence, and not malformed either.
	Unspecified uint64
	// SkippedBytes counts bytes of a followed file known to be skipped
	// unread (lines over 1 MiB, what a rotated file that is gone held past
	// the saved position); nil for inputs that are not files.
	SkippedBytes *uint64
}

// Snapshot is the state of the daemon's cumulative counters, taken by the
// goroutine that owns them.
type Snapshot struct {
	Inputs     []Input
	RuleEvents map[string]uint64
	BansActive int
	Tracked    int
	// Fleet is fleet mode's figures; nil without fleet mode.
	Fleet *Fleet
	// StrikeFull counts, per first-strike counting set, the probes dropped
	// unanswered because the set was full; StrikeFullNow says which sets
	// are full now (since the last check, before they were emptied).
	StrikeFull    map[string]uint64
	StrikeFullNow map[string]bool
	// StrikeEvictions counts the times full counting sets were emptied;
	// UnconfirmedStrikes the kernel strikes the daemon did not confirm.
	StrikeEvictions, UnconfirmedStrikes uint64
	// ClockJumps counts events whose time disagreed with the engine's
	// clock (rules.ClockSkew).
	ClockJumps uint64
}

// Metrics holds the registry. Decision and ObserveReaction may be called
// from any goroutine; Update replaces the snapshot the collector reports.
type Metrics struct {
	reg       *prometheus.Registry
	decisions *prometheus.CounterVec
	reaction  prometheus.Histogram
	// propagation is fleet mode's, nil until EnableFleet.
	propagation prometheus.Histogram

	mu   sync.Mutex
	snap Snapshot
}

var (
	descEvents    = prometheus.NewDesc("sentry_nflog_input_events_total", "Events read, by input.", []string{"input"}, nil)
	descMalformed = prometheus.NewDesc("sentry_nflog_input_malformed_total", "Firewall records that were broken, by input and reason; never taken as data.", []string{"input", "reason"}, nil)
	descOverruns  = prometheus.NewDesc("sentry_nflog_nflog_overruns_total", "NFLOG socket overruns (ENOBUFS): the kernel dropped log messages.", []string{"input"}, nil)
	descFailures  = prometheus.NewDesc("sentry_nflog_input_failures_total", "Times an input failed and was restarted (the others go on).", []string{"input"}, nil)
	descUnspec    = prometheus.NewDesc("sentry_nflog_input_unspecified_source_total", "Records of packets from 0.0.0.0 or :: (DHCP, IGMP): never evidence, not malformed.", []string{"input"}, nil)
	descSkipped   = prometheus.NewDesc("sentry_nflog_input_skipped_bytes_total", "Bytes of a followed file skipped unread: lines over 1 MiB, and the rest of a rotated file gone before it was read.", []string{"input"}, nil)
	descRule      = prometheus.NewDesc("sentry_nflog_rule_events_total", "Events matched, by rule.", []string{"rule"}, nil)
	descBans      = prometheus.NewDesc("sentry_nflog_bans_active", "Elements in the ban sets.", nil, nil)
	descTracked   = prometheus.NewDesc("sentry_nflog_tracked_sources", "Sources the engine holds evidence for.", nil, nil)
	descFullDrops = prometheus.NewDesc("sentry_nflog_first_strike_full_drops_total", "Probes first strike dropped unanswered because its counting set was full, by set.", []string{"set"}, nil)
	descFullNow   = prometheus.NewDesc("sentry_nflog_first_strike_set_full", "1 when a first-strike counting set filled up since the last check (it is then emptied).", []string{"set"}, nil)
	descEvictions = prometheus.NewDesc("sentry_nflog_first_strike_evictions_total", "Times full first-strike counting sets were emptied.", nil, nil)
	descUnconf    = prometheus.NewDesc("sentry_nflog_first_strike_unconfirmed_total", "Kernel strikes the daemon's rules did not confirm.", nil, nil)
	descJumps     = prometheus.NewDesc("sentry_nflog_clock_jumps_total", "Events whose time disagreed with the engine's clock by more than its skew.", nil, nil)
)

// New returns an empty set of metrics.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentry_nflog_decisions_total", Help: "Decisions, by action (ban, ignored, rate-limited, throttled) and rule.",
		}, []string{"action", "rule"}),
		reaction: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sentry_nflog_reaction_seconds",
			Help:    "From the kernel's timestamp of the packet that crossed a threshold to the ban in place.",
			Buckets: []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1},
		}),
	}
	m.reg.MustRegister(m.decisions, m.reaction, (*collector)(m))
	return m
}

// Decision counts one decision.
func (m *Metrics) Decision(action, rule string) { m.decisions.WithLabelValues(action, rule).Inc() }

// ObserveReaction records one reaction time.
func (m *Metrics) ObserveReaction(d time.Duration) { m.reaction.Observe(d.Seconds()) }

// Update replaces the snapshot of cumulative counters.
func (m *Metrics) Update(s Snapshot) {
	m.mu.Lock()
	m.snap = s
	m.mu.Unlock()
}

// WriteTextfile writes every metric to path in the Prometheus text format,
// through a temporary file renamed over path.
func (m *Metrics) WriteTextfile(path string) error {
	return prometheus.WriteToTextfile(path, m.reg)
}

// Registry returns the registry, for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// collector reports the snapshot as constant metrics.
type collector Metrics

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEvents, descMalformed, descOverruns, descFailures, descUnspec, descSkipped, descRule, descBans, descTracked,
		descFleetConnected, descFleetPublished, descFleetDropped, descFleetReceived, descFleetApplied, descFleetRefused, descFleetActive,
		descFullDrops, descFullNow, descEvictions, descUnconf, descJumps} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	s := c.snap
	c.mu.Unlock()
	for _, in := range s.Inputs {
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(in.Events), in.Name)
		ch <- prometheus.MustNewConstMetric(descOverruns, prometheus.CounterValue, float64(in.Overruns), in.Name)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(in.Failures), in.Name)
		ch <- prometheus.MustNewConstMetric(descUnspec, prometheus.CounterValue, float64(in.Unspecified), in.Name)
		if in.SkippedBytes != nil {
			ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(*in.SkippedBytes), in.Name)
		}
		for _, reason := range sortedKeys(in.Malformed) {
			ch <- prometheus.MustNewConstMetric(descMalformed, prometheus.CounterValue, float64(in.Malformed[reason]), in.Name, reason)
		}
	}
	for _, rule := range sortedKeys(s.RuleEvents) {
		ch <- prometheus.MustNewConstMetric(descRule, prometheus.CounterValue, float64(s.RuleEvents[rule]), rule)
	}
	ch <- prometheus.MustNewConstMetric(descBans, prometheus.GaugeValue, float64(s.BansActive))
	ch <- prometheus.MustNewConstMetric(descTracked, prometheus.GaugeValue, float64(s.Tracked))
	collectFleet(ch, s.Fleet)
	for _, set := range sortedKeys(s.StrikeFull) {
		ch <- prometheus.MustNewConstMetric(descFullDrops, prometheus.CounterValue, float64(s.StrikeFull[set]), set)
		full := 0.0
		if s.StrikeFullNow[set] {
			full = 1
		}
		ch <- prometheus.MustNewConstMetric(descFullNow, prometheus.GaugeValue, full, set)
	}
	ch <- prometheus.MustNewConstMetric(descEvictions, prometheus.CounterValue, float64(s.StrikeEvictions))
	ch <- prometheus.MustNewConstMetric(descUnconf, prometheus.CounterValue, float64(s.UnconfirmedStrikes))
	ch <- prometheus.MustNewConstMetric(descJumps, prometheus.CounterValue, float64(s.ClockJumps))
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
