package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Fleet is fleet mode's figures at a point in time.
type Fleet struct {
	// Connected says whether the link to a server is up.
	Connected bool
	// Published counts this host's bans (and pardons) stored in the
	// stream; PublishDropped those given up.
	Published, PublishDropped uint64
	// Received counts other hosts' bans and pardons that arrived;
	// Applied the remote bans inserted into the sets.
	Received, Applied uint64
	// Refused counts remote bans not applied, by reason (ignored,
	// accept_from, too_wide, length, valve, cap, expired, pardoned,
	// invalid, error).
	Refused map[string]uint64
	// RemoteActive is the remote bans held now.
	RemoteActive int
}

var (
	descFleetConnected = prometheus.NewDesc("sentry_nflog_fleet_connected", "1 while the link to a NATS server is up.", nil, nil)
	descFleetPublished = prometheus.NewDesc("sentry_nflog_fleet_published_total", "This host's bans and pardons stored in the fleet's stream.", nil, nil)
	descFleetDropped   = prometheus.NewDesc("sentry_nflog_fleet_publish_dropped_total", "This host's bans never published: expired before a server took them, queue full, or queued at stop.", nil, nil)
	descFleetReceived  = prometheus.NewDesc("sentry_nflog_fleet_received_total", "Other hosts' bans and pardons received.", nil, nil)
	descFleetApplied   = prometheus.NewDesc("sentry_nflog_fleet_applied_total", "Remote bans inserted into this host's sets.", nil, nil)
	descFleetRefused   = prometheus.NewDesc("sentry_nflog_fleet_refused_total", "Remote bans not applied, by reason.", []string{"reason"}, nil)
	descFleetActive    = prometheus.NewDesc("sentry_nflog_fleet_remote_bans_active", "Remote bans held in this host's sets.", nil, nil)
)

// EnableFleet adds fleet mode's metrics: the snapshot's Fleet figures and
// the propagation histogram. Call it once, before the first write.
func (m *Metrics) EnableFleet() {
	m.propagation = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sentry_nflog_fleet_propagation_seconds",
		Help:    "From the origin's decision to the remote ban in this host's set (clocks of both hosts).",
		Buckets: []float64{250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1, 5, 30},
	})
	m.reg.MustRegister(m.propagation)
}

// ObservePropagation records one remote ban's propagation delay.
func (m *Metrics) ObservePropagation(d time.Duration) {
	if m.propagation != nil {
		m.propagation.Observe(max(d, 0).Seconds())
	}
}

func collectFleet(ch chan<- prometheus.Metric, f *Fleet) {
	if f == nil {
		return
	}
	connected := 0.0
	if f.Connected {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(descFleetConnected, prometheus.GaugeValue, connected)
	ch <- prometheus.MustNewConstMetric(descFleetPublished, prometheus.CounterValue, float64(f.Published))
	ch <- prometheus.MustNewConstMetric(descFleetDropped, prometheus.CounterValue, float64(f.PublishDropped))
	ch <- prometheus.MustNewConstMetric(descFleetReceived, prometheus.CounterValue, float64(f.Received))
	ch <- prometheus.MustNewConstMetric(descFleetApplied, prometheus.CounterValue, float64(f.Applied))
	for _, r := range sortedKeys(f.Refused) {
		ch <- prometheus.MustNewConstMetric(descFleetRefused, prometheus.CounterValue, float64(f.Refused[r]), r)
	}
	ch <- prometheus.MustNewConstMetric(descFleetActive, prometheus.GaugeValue, float64(f.RemoteActive))
}
