package sources

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// DefaultKmsgPath is the kernel log device.
const DefaultKmsgPath = "/dev/kmsg"

// ErrKmsgEnded is matched (errors.Is) by the error of a KmsgSource whose
// device returned end of file, as /dev/kmsg never does.
var ErrKmsgEnded = errors.New("kernel log device ended")

// KmsgConfig configures a KmsgSource.
type KmsgConfig struct {
	// Path is the kernel log device; default DefaultKmsgPath. A regular file
	// of records (one per line, as read from the device) is read from its
	// start to its end, for tests and replays.
	Path string
	// Logger receives the rate-limited warning about lost records and an
	// Info when the wall clock was stepped; nil discards them.
	Logger *slog.Logger
}

// KmsgStats are the counters of a KmsgSource.
type KmsgStats struct {
	// Records counts kernel log records read (continuation lines are part
	// of their record).
	Records uint64
	// Events counts Events sent to the output channel.
	Events uint64
	// Outcomes counts records by the parsers.Outcome of
	// parsers.LineParser.Parse; records written from user space (facility
	// other than kernel) are Skipped.
	Outcomes [parsers.NumOutcomes]uint64
	// Lost counts records the kernel overwrote in its ring buffer before
	// they were read: the gap in sequence numbers, at least one for each
	// read that failed with EPIPE.
	Lost uint64
}

// KmsgSource reads kernel log records from /dev/kmsg (Linux only: Run fails
// elsewhere) and turns firewall records into Events. Make it with
// NewKmsgSource; Stats may be called at any time from any goroutine.
type KmsgSource struct {
	cfg KmsgConfig
	log *slog.Logger

	records   atomic.Uint64
	events    atomic.Uint64
	outcomes  outcomeCounters
	lost      atomic.Uint64
	ready     chan struct{}
	readyOnce sync.Once

	// acceptUser takes records written to /dev/kmsg from user space as
	// kernel ones. Tests only: it is how a test injects a firewall record.
	acceptUser bool
}

// NewKmsgSource returns a source for cfg with defaults filled in. It opens
// nothing: Run does.
func NewKmsgSource(cfg KmsgConfig) *KmsgSource {
	if cfg.Path == "" {
		cfg.Path = DefaultKmsgPath
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &KmsgSource{cfg: cfg, log: log.With("input", "kmsg", "path", cfg.Path), ready: make(chan struct{})}
}

// Name returns "kmsg".
func (s *KmsgSource) Name() string { return "kmsg" }

// Ready is closed once Run has opened the device and moved to its end: a
// record logged from then on is read (or counted in Stats.Lost).
func (s *KmsgSource) Ready() <-chan struct{} { return s.ready }

// Stats returns a snapshot of the counters.
func (s *KmsgSource) Stats() KmsgStats {
	st := KmsgStats{
		Records:  s.records.Load(),
		Events:   s.events.Load(),
		Lost:     s.lost.Load(),
		Outcomes: s.outcomes.load(),
	}
	return st
}
