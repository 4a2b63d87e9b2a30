package sources

import (
	"context"
	"sync/atomic"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// Source is an input of events. See the package documentation for the
// contract every implementation keeps.
type Source interface {
	// Name identifies the source in logs and metrics: "nflog:GROUP",
	// "file:PATH" or "kmsg".
	Name() string
	// Run sends events to out until ctx ends; it never closes out and
	// returns nil on cancellation.
	Run(ctx context.Context, out chan<- parsers.Event) error
	// Ready is closed once no event can be missed.
	Ready() <-chan struct{}
}

var (
	_ Source = (*FileSource)(nil)
	_ Source = (*KmsgSource)(nil)
	_ Source = (*NFLOGSource)(nil)
)

// outcomeCounters counts a source's inputs by parsers.Outcome; safe for
// concurrent use, so Stats can read while Run counts.
type outcomeCounters [parsers.NumOutcomes]atomic.Uint64

func (c *outcomeCounters) add(o parsers.Outcome) { c[o].Add(1) }

// load returns a snapshot.
func (c *outcomeCounters) load() (out [parsers.NumOutcomes]uint64) {
	for i := range c {
		out[i] = c[i].Load()
	}
	return out
}
