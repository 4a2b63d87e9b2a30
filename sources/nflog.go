package sources

import (
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// Defaults of NFLOGConfig, chosen by measurement between two network
// namespaces (see the report in nflog_measure_linux_test.go).
const (
	// DefaultNFLOGCopyRange copies the IP and L4 headers with room for IPv4
	// options or a few IPv6 extension headers.
	DefaultNFLOGCopyRange = 128
	// DefaultNFLOGQueueThreshold makes the kernel hand over every packet at
	// once: single probes arrive within about 100 us instead of waiting for
	// a batch to fill or a timer (10 ms at best) to fire. Floods switch to
	// batches (see NFLOGConfig.QueueThreshold).
	DefaultNFLOGQueueThreshold = 1
	// DefaultNFLOGReadBuffer absorbs floods while the reader catches up.
	DefaultNFLOGReadBuffer = 8 << 20
	// nflogOverrunLogInterval rate-limits the overrun warning: an attacker
	// controls how often the socket overruns.
	nflogOverrunLogInterval = 10 * time.Second
	// nflogMaxPrefixes bounds the prefix intern table; rules set few prefixes.
	nflogMaxPrefixes = 64
)

// ErrNFLOGGroupBusy is matched (errors.Is) by the error NFLOGSource.Run
// returns when another socket already reads the group in the namespace.
var ErrNFLOGGroupBusy = errors.New("NFLOG group already bound")

// NFLOGConfig configures an NFLOG input. The zero value of every field but
// Group selects a default.
type NFLOGConfig struct {
	// Group is the NFLOG group the firewall rule logs to ("log group N").
	Group uint16
	// CopyRange is how many bytes of each packet the kernel copies to
	// userspace; default DefaultNFLOGCopyRange (headers only).
	CopyRange uint16
	// QueueThreshold is how many packets the kernel batches before it sends
	// them; default DefaultNFLOGQueueThreshold (1: every packet at once). A
	// rule's own "queue-threshold" lowers it further, never raises it. With
	// 1, unless FixedBatching is set, the source raises the kernel's
	// threshold to 32 with a 10 ms flush timeout while packets arrive at
	// 2.5k/s or more, and returns to 1 once they fall below 1k/s for a
	// second: per-packet reaction when calm; under a stream of probes, no
	// loss and a few us of CPU per event instead of a wakeup per packet.
	QueueThreshold uint32
	// FixedBatching keeps QueueThreshold and FlushTimeout as configured.
	FixedBatching bool
	// FlushTimeout is how long the kernel holds a batch that has not reached
	// QueueThreshold, rounded up to the kernel's 10 ms unit; 0 keeps the
	// kernel default (1 s). Irrelevant with QueueThreshold 1.
	FlushTimeout time.Duration
	// ReadBuffer is the socket receive buffer in bytes, forced past
	// net.core.rmem_max (root); default DefaultNFLOGReadBuffer.
	ReadBuffer int
	// NetNS is an optional network namespace file descriptor the socket is
	// opened in; 0 is the current namespace.
	NetNS int
	// Logger receives the rate-limited overrun warning and setup warnings;
	// nil discards them.
	Logger *slog.Logger
}

// NFLOGStats are the counters of an NFLOGSource.
type NFLOGStats struct {
	// Received counts packets delivered by the kernel.
	Received uint64
	// Events counts Events sent to the output channel.
	Events uint64
	// Malformed counts received packets that gave no event, by the
	// parsers.Outcome of parsers.DecodePacket (Skipped and ReservedSource
	// included; Parsed is 0). Received minus Events minus these is what was
	// cut off at shutdown.
	Malformed [parsers.NumOutcomes]uint64
	// Overruns counts socket overruns (ENOBUFS): each means the kernel
	// dropped one or more log messages because the reader fell behind.
	Overruns uint64
	// LastOverrun is when the last overrun was seen; zero if none.
	LastOverrun time.Time
	// ClockSteps counts packets whose kernel timestamp disagreed with the
	// monotonic clock by more than NFLOGClockTolerance (a wall clock
	// stepped): they were stamped from the monotonic clock instead.
	ClockSteps uint64
}

// NFLOGSource reads packets logged to an NFLOG group and turns them into
// Events. Make it with NewNFLOGSource; Stats may be called at any time from
// any goroutine.
type NFLOGSource struct {
	cfg NFLOGConfig
	log *slog.Logger

	received    atomic.Uint64
	events      atomic.Uint64
	outcomes    outcomeCounters
	overruns    atomic.Uint64
	clockSteps  atomic.Uint64
	lastOverrun atomic.Int64 // Unix nanoseconds; 0 if none
	ready       chan struct{}
	readyOnce   sync.Once
}

// Name returns "nflog:" and the group number.
func (s *NFLOGSource) Name() string { return "nflog:" + strconv.Itoa(int(s.cfg.Group)) }

// Ready is closed once Run has bound the group: from then on every packet
// the firewall logs to it is delivered (or counted as an overrun). Packets
// logged before that are lost, so callers wait for it before reporting
// that they are running.
func (s *NFLOGSource) Ready() <-chan struct{} { return s.ready }

// NewNFLOGSource returns a source for cfg with defaults filled in. It opens
// nothing: Run does.
func NewNFLOGSource(cfg NFLOGConfig) *NFLOGSource {
	if cfg.CopyRange == 0 {
		cfg.CopyRange = DefaultNFLOGCopyRange
	}
	if cfg.QueueThreshold == 0 {
		cfg.QueueThreshold = DefaultNFLOGQueueThreshold
	}
	if cfg.ReadBuffer == 0 {
		cfg.ReadBuffer = DefaultNFLOGReadBuffer
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &NFLOGSource{cfg: cfg, log: log.With("input", "nflog", "group", cfg.Group), ready: make(chan struct{})}
}

// Stats returns a snapshot of the counters.
func (s *NFLOGSource) Stats() NFLOGStats {
	st := NFLOGStats{
		Received:   s.received.Load(),
		Events:     s.events.Load(),
		Overruns:   s.overruns.Load(),
		Malformed:  s.outcomes.load(),
		ClockSteps: s.clockSteps.Load(),
	}
	st.Malformed[parsers.Parsed] = 0 // Parsed is no malformation; Events counts those
	if ns := s.lastOverrun.Load(); ns != 0 {
		st.LastOverrun = time.Unix(0, ns)
	}
	return st
}

// nflogTimeoutUnits converts d to the kernel's 1/100 s, rounding up so a
// short timeout is not turned into "kernel default".
func nflogTimeoutUnits(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	u := (d + 10*time.Millisecond - 1) / (10 * time.Millisecond)
	if u > 1<<31 {
		u = 1 << 31
	}
	return uint32(u)
}

// nflogTrimPrefix removes what rule writers append to a log prefix to make
// kernel log lines readable: trailing spaces and one colon ("SENTRY: ").
func nflogTrimPrefix(p string) string {
	p = strings.TrimRight(p, " ")
	p = strings.TrimSuffix(p, ":")
	return strings.TrimRight(p, " ")
}

// nflogIntern maps each log prefix to one shared string, so events do not
// each carry a copy. It is bounded: prefixes come from the rule set and are
// few; past the bound a prefix is returned as a fresh string (safe to
// keep). Not safe for concurrent use.
type nflogIntern struct {
	m   map[string]string
	max int
}

func newNFLOGIntern(max int) *nflogIntern {
	return &nflogIntern{m: make(map[string]string), max: max}
}

// getBytes is get for a prefix in a read buffer; a hit does not allocate.
func (in *nflogIntern) getBytes(b []byte) string {
	trim := func(b []byte) []byte {
		for len(b) > 0 && b[len(b)-1] == ' ' {
			b = b[:len(b)-1]
		}
		return b
	}
	b = trim(b)
	if len(b) > 0 && b[len(b)-1] == ':' {
		b = trim(b[:len(b)-1])
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	return in.get(string(b))
}

// get returns the interned, trimmed form of the raw prefix p. A hit does not
// allocate.
func (in *nflogIntern) get(p string) string {
	p = nflogTrimPrefix(p)
	if s, ok := in.m[p]; ok {
		return s
	}
	if len(in.m) >= in.max {
		return p
	}
	s := strings.Clone(p)
	in.m[s] = s
	return s
}

// NFLOGClockTolerance is how far a packet's kernel timestamp (the wall
// clock's) may stray from the monotonic clock before the source stamps
// the packet from the monotonic clock instead: a wall clock stepped back an
// hour must not make the engine see every packet an hour old.
const NFLOGClockTolerance = 10 * time.Second

// nflogClock stamps packets: with the kernel's timestamp while it agrees
// with a wall clock carried forward on the monotonic clock from the start,
// else with that clock. The first disagreement is logged; each is counted.
// Not safe for concurrent use.
type nflogClock struct {
	base   time.Time // wall and monotonic reading at start
	logged bool
}

func newNFLOGClock() *nflogClock { return &nflogClock{base: time.Now()} }

// stamp returns the time of a packet the kernel stamped ts (has false: no
// stamp).
func (c *nflogClock) stamp(ts time.Time, has bool, s *NFLOGSource) time.Time {
	mono := c.base.Add(time.Since(c.base))
	if !has {
		return mono
	}
	if d := ts.Sub(mono); d > NFLOGClockTolerance || d < -NFLOGClockTolerance {
		s.clockSteps.Add(1)
		if !c.logged {
			c.logged = true
			s.log.Warn("the kernel's packet timestamps disagree with the monotonic clock (a wall clock step?): stamping packets from the monotonic clock",
				"kernel", ts, "monotonic", mono, "by", d.Round(time.Millisecond).String())
		}
		return mono
	}
	return ts
}
