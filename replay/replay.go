package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/report"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// Options configure a Replayer.
type Options struct {
	// Engine decides; the Replayer steps it in the logs' own time.
	Engine *rules.Engine
	// Line configures the line parser: the zone of zone-less timestamps,
	// the boot time of dmesg and kmsg records. Its Reference, when zero,
	// is each file's modification time (the year of classic syslog lines
	// is inferred back from it).
	Line parsers.LineOptions
	// Act receives each decision (a report, printed or JSON).
	Act actions.Action
	// Collector, when set, is fed every event and decision for the HTML
	// report.
	Collector *report.Collector
	// Progress is where a progress bar is drawn when it is a terminal and
	// the input is large; nil draws none.
	Progress io.Writer
}

// Replayer runs the rules over saved logs, one file after the other,
// counting what the summary reports.
type Replayer struct {
	opts  Options
	stats Stats
}

// Stats is what a replay counted.
type Stats struct {
	// Lines counts the lines read, Outcomes them by what the parser made
	// of them, TooLong those over 1 MiB (skipped), Undated the firewall
	// records without a timestamp.
	Lines    uint64
	Outcomes [parsers.NumOutcomes]uint64
	TooLong  uint64
	Undated  uint64
	// Bytes is how much was read (compressed size for .gz).
	Bytes int64

	sources *sourceTable
}

// New returns a Replayer.
func New(opts Options) *Replayer {
	return &Replayer{opts: opts, stats: Stats{sources: newSourceTable(opts.Engine)}}
}

// Stats returns what has been counted so far (the per-source counts stay
// inside; Summary reports them).
func (r *Replayer) Stats() Stats { return r.stats }

// File replays one file: name "-" reads stdin. A gzip file is read
// transparently. It returns when the file is done, ctx ends (nil) or
// reading or acting fails.
func (r *Replayer) File(ctx context.Context, name string, stdin io.Reader) error {
	opts := r.opts.Line
	var in io.Reader
	var size int64
	var mapped *mapping
	if name == "-" {
		in = stdin
		// A record without a timestamp before any dated line takes the
		// file's modification time; a pipe's is now.
		opts.Undated = time.Now()
	} else {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		size = fi.Size()
		if opts.Reference.IsZero() {
			opts.Reference = fi.ModTime()
		}
		opts.Undated = fi.ModTime()
		in = f
		// A plain file is parsed where it lies, mapped into memory; a
		// compressed one, and anything mapFile cannot map, is read.
		var magic [2]byte
		if n, _ := f.ReadAt(magic[:], 0); fi.Mode().IsRegular() && (n < 2 || magic != [2]byte{0x1f, 0x8b}) {
			if mapped, err = mapFile(f, size); err == nil {
				defer mapped.close()
			}
		}
	}
	counted := &countingReader{r: in}
	var rd io.Reader
	if mapped == nil {
		// The pipeline reads whole chunks, which a bufio.Reader passes
		// through once its buffer is empty: this one is for the peek.
		br := bufio.NewReaderSize(counted, 64<<10)
		rd = br
		if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
			zr, err := gzip.NewReader(br)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			defer zr.Close()
			rd = zr
		}
	}
	bar := newProgress(r.opts.Progress, name, size, counted)
	defer bar.done()

	// The engine steps events on this goroutine, a core's worth of work:
	// parsing gets the other cores. One more worker than that only takes
	// turns with the engine on a core, each evicting the other's data from
	// its caches (on 2 cores: 10% more CPU and a slower replay).
	pl := newPipeline(opts, bar, max(1, runtime.GOMAXPROCS(0)-1), mapped)
	if mapped != nil {
		go pl.readMapped(ctx, counted)
	} else {
		go pl.read(ctx, rd, name == "-")
	}
	st, engine, col, srcs := &r.stats, r.opts.Engine, r.opts.Collector, r.stats.sources
	var actErr error
	// Act takes a decision's address through an interface, so the
	// variable it gets is on the heap: one for the whole file, written by
	// the engine only when there is a decision.
	var d rules.Decision
	for c := range pl.merged() {
		st.Lines += c.lines
		st.TooLong += c.tooLong
		for i, n := range c.outcomes {
			st.Outcomes[i] += n
		}
		st.Undated += c.span.Undated()
		counted := srcs.chunk(engine, c.events)
		for i := range c.events {
			ev := &c.events[i]
			if !counted {
				srcs.event(engine, ev.Src)
			}
			if col != nil {
				col.Event(ev)
			}
			if engine.StepInto(ev, &d) && actErr == nil {
				if actErr = r.opts.Act.Act(&d); actErr == nil {
					srcs.decided(&d)
					if col != nil {
						col.Decision(&d)
					}
				}
			}
		}
	}
	if actErr != nil {
		return actErr
	}
	if err := pl.err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	st.Bytes += counted.n
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
