package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/sentry-nflog/sentry-nflog/actions"
	"github.com/sentry-nflog/sentry-nflog/parsers"
	"github.com/sentry-nflog/sentry-nflog/report"
	"github.com/sentry-nflog/sentry-nflog/rules"
)

// maxCountedSources bounds the per-source event counts of the summary, so
// a replay of a forged flood stays small too.
const maxCountedSources = 100000

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

	bySource  map[netip.Prefix]*sourceCount
	uncounted uint64
}

type sourceCount struct {
	events    uint64
	decisions map[string]int
}

// New returns a Replayer.
func New(opts Options) *Replayer {
	return &Replayer{opts: opts, stats: Stats{bySource: map[netip.Prefix]*sourceCount{}}}
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
	}
	counted := &countingReader{r: in}
	br := bufio.NewReaderSize(counted, 1<<20)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	bar := newProgress(r.opts.Progress, name, size, counted)
	defer bar.done()

	// Reading and parsing run on their own goroutine, the engine on this
	// one, with batches of events passed between them: two cores replay
	// about twice as fast as one, and the engine still sees events in file
	// order.
	free := make(chan *lineBatch, 4)
	full := make(chan *lineBatch, 4)
	for i := 0; i < cap(free); i++ {
		free <- &lineBatch{events: make([]parsers.Event, 0, batchEvents)}
	}
	var readErr error
	parser := parsers.NewLineParser(opts)
	go func() {
		defer close(full)
		readErr = readBatches(ctx, br, parser, bar, free, full)
	}()
	st, engine, col := &r.stats, r.opts.Engine, r.opts.Collector
	var actErr error
	for b := range full {
		st.Lines += b.lines
		st.TooLong += b.tooLong
		for i, n := range b.outcomes {
			st.Outcomes[i] += n
		}
		for i := range b.events {
			ev := &b.events[i]
			st.count(engine.Key(ev.Src))
			if col != nil {
				col.Event(ev)
			}
			if d, ok := engine.Step(ev); ok && actErr == nil {
				if actErr = r.opts.Act.Act(&d); actErr == nil {
					st.decided(&d)
					if col != nil {
						col.Decision(&d)
					}
				}
			}
		}
		free <- b
	}
	// The reader has returned (full is closed), so its parser is ours now.
	st.Undated += parser.UndatedRecords()
	if actErr != nil {
		return actErr
	}
	if readErr != nil {
		return fmt.Errorf("%s: %w", name, readErr)
	}
	st.Bytes += counted.n
	return nil
}

// batchEvents is how many events a batch carries between the reader and
// the engine.
const batchEvents = 512

// lineBatch is a run of lines read and parsed: their events and counts.
type lineBatch struct {
	events   []parsers.Event
	lines    uint64
	tooLong  uint64
	outcomes [parsers.NumOutcomes]uint64
}

// readBatches reads lines from br, parses them and sends full batches until
// the input ends (nil) or fails. It stops early, without error, when ctx
// ends.
func readBatches(ctx context.Context, br *bufio.Reader, parser *parsers.LineParser, bar *progress, free <-chan *lineBatch, full chan<- *lineBatch) error {
	b := <-free
	*b = lineBatch{events: b.events[:0]}
	flush := func() bool {
		full <- b
		if ctx.Err() != nil {
			return false
		}
		bar.tick()
		b = <-free
		*b = lineBatch{events: b.events[:0]}
		return true
	}
	var ev parsers.Event
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line over 1 MiB is no kernel log line: skip to its end.
			b.lines++
			b.tooLong++
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			line = nil
		}
		if len(line) > 0 {
			b.lines++
			out := parser.Parse(line, &ev)
			b.outcomes[out]++
			if out == parsers.Parsed {
				b.events = append(b.events, ev)
			}
			if (len(b.events) == cap(b.events) || b.lines >= 8*batchEvents) && !flush() {
				return nil
			}
		}
		if err == io.EOF {
			full <- b
			return nil
		}
		if err != nil {
			full <- b
			return err
		}
	}
}

func (st *Stats) count(k netip.Prefix) {
	c := st.bySource[k]
	if c == nil {
		if len(st.bySource) >= maxCountedSources {
			st.uncounted++
			return
		}
		c = &sourceCount{}
		st.bySource[k] = c
	}
	c.events++
}

func (st *Stats) decided(d *rules.Decision) {
	c := st.bySource[d.Key]
	if c == nil {
		// The key can be narrower than the event's (an ignored address
		// inside the /64), or uncounted.
		c = &sourceCount{}
		st.bySource[d.Key] = c
	}
	if c.decisions == nil {
		c.decisions = map[string]int{}
	}
	c.decisions[d.Action.String()+" "+d.Rule]++
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
