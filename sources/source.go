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
	// Run sends items to out until ctx ends; it never closes out and
	// returns nil on cancellation.
	Run(ctx context.Context, out chan<- Item) error
	// Ready is closed once no event can be missed.
	Ready() <-chan struct{}
}

var (
	_ Source = (*FileSource)(nil)
	_ Source = (*KmsgSource)(nil)
	_ Source = (*NFLOGSource)(nil)
)

// Item is what a source sends: one event and, from a source whose position
// is saved across restarts (a FileSource), the Mark of where the event's
// line ends.
//
// The mark travels with the event rather than being kept by the source
// because only the consumer knows when an event has been decided, and
// every source shares one channel: the mark says which source and which
// place in which file, so the consumer needs no other bookkeeping. It is a
// value (no allocation per event); sources without a position send the
// zero Mark.
type Item struct {
	Event parsers.Event
	Mark  Mark
}

// Mark is a place in a followed file just after one line. Commit it once
// the event it came with has been decided: the source's Position moves
// there, so that a position saved with the state the decisions produced
// covers exactly those decisions (a restart neither reads a decided line
// again nor skips one that was not). The zero Mark commits nothing.
type Mark struct {
	src *FileSource
	at  filePoint
}

// Commit tells the mark's source that every event it sent up to this one
// has been decided. Marks of one source must be committed in the order
// their items were received (one consumer reading one channel does). It
// may be called from any goroutine; it takes a lock and does not allocate.
func (m Mark) Commit() {
	if m.src != nil {
		m.src.commit(m.at)
	}
}

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
