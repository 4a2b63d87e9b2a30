package replay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"iter"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/sentry-nflog/sentry-nflog/parsers"
)

// chunkSize is how much input a chunk holds, in whole lines. It is also the
// longest line read: a line that does not fit in one (no kernel log line is
// 1 MiB long) is skipped and counted.
const chunkSize = 1 << 20

// chunk is a run of whole lines and, once parsed, their events and counts.
type chunk struct {
	seq  uint64
	buf  []byte // chunkSize bytes, when the file is read
	data []byte // the lines, in buf or in the mapped file
	// end is where the chunk ends in a mapped file; fault says the file
	// shrank under the parse of its lines.
	end   int
	fault bool

	// tooLong counts the lines over chunkSize skipped before data.
	tooLong  uint64
	lines    uint64
	outcomes [parsers.NumOutcomes]uint64
	events   []parsers.Event
	// span says how the lines used the parser state they were read from.
	span parsers.Span
}

// pipeline reads a file in chunks on one goroutine, parses the chunks on
// as many goroutines as there are cores, and hands them back in file
// order, so that the engine sees events as one parser reading the file
// from start to end would have made them.
//
// A parser carries a little state from line to line (the year of classic
// syslog timestamps, the last line's time for records without one), which
// a chunk's worker cannot know before the chunks ahead of it are read. It
// starts from the state of the last chunk merged so far; at the merge,
// parsers.Span.After checks that the chunk's lines read the same after the
// true state (they nearly always do: the year changes at most once a year),
// and the chunk is read again, in order, when they would not.
type pipeline struct {
	opts    parsers.LineOptions
	bar     *progress
	workers int

	free    chan *chunk
	work    chan *chunk
	parsed  chan *chunk
	readErr error

	// mapped is the file, when it is mapped rather than read. A mapped
	// file that shrinks under the parse faults on the pages past its new
	// end: readFault says readMapped saw it, shrank that a chunk's parse
	// did.
	mapped    *mapping
	readFault bool
	shrank    bool

	// state is the parser state after the chunks merged so far: the
	// workers' starting guess.
	state atomic.Pointer[parsers.LineState]
}

// newPipeline starts the workers; read or readMapped starts the reading.
// m is the mapped file, nil when it is read.
func newPipeline(opts parsers.LineOptions, bar *progress, workers int, m *mapping) *pipeline {
	// Enough chunks for every worker to have one parsed and one to parse
	// while the merge waits for the next in order.
	n := 2*workers + 2
	pl := &pipeline{
		opts:    opts,
		bar:     bar,
		workers: workers,
		free:    make(chan *chunk, n),
		work:    make(chan *chunk, n),
		parsed:  make(chan *chunk, n),
		mapped:  m,
	}
	for range n {
		c := &chunk{}
		if m == nil {
			c.buf = make([]byte, chunkSize)
		}
		pl.free <- c
	}
	pl.state.Store(&parsers.LineState{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pl.parseChunks()
		}()
	}
	go func() {
		wg.Wait()
		close(pl.parsed)
	}()
	return pl
}

// err returns what ended the reading early, once merged is done.
func (pl *pipeline) err() error {
	if pl.readFault || pl.shrank {
		return errShrank
	}
	return pl.readErr
}

// errShrank is the error of a mapped file that shrank while it was read.
var errShrank = errors.New("the file shrank while it was read")

// read cuts in into chunks of whole lines until it ends or fails (readErr)
// or ctx ends (no error), then closes work. An eager read hands lines on
// as soon as a read brings fewer than asked for (see fill).
func (pl *pipeline) read(ctx context.Context, in io.Reader, eager bool) {
	defer close(pl.work)
	// carry is the start of a line that did not end in the last chunk.
	var carry []byte
	skipping := false // inside a line over chunkSize
	for seq := uint64(0); ; seq++ {
		if ctx.Err() != nil {
			return
		}
		c := <-pl.free
		c.seq, c.tooLong = seq, 0
		n := copy(c.buf, carry)
		carry = carry[:0]
		m, err := fill(in, c.buf[n:], eager)
		n += m
		end := err != nil
		if errors.Is(err, io.EOF) {
			err = nil
		}
		data := c.buf[:n]
		if skipping {
			if nl := bytes.IndexByte(data, '\n'); nl >= 0 {
				data, skipping = data[nl+1:], false
			} else {
				data = nil
			}
		}
		if !skipping && !end {
			switch last := bytes.LastIndexByte(data, '\n'); {
			case last >= 0:
				carry = append(carry, data[last+1:]...)
				data = data[:last+1]
			case len(data) == chunkSize:
				// A whole chunk without a line end: skip to the end of
				// this line, as a line too long to be one of ours.
				c.tooLong, skipping, data = 1, true, nil
			default:
				carry = append(carry, data...)
				data = nil
			}
		}
		c.data = data
		pl.work <- c
		pl.bar.tick()
		if end {
			pl.readErr = err
			return
		}
	}
}

// fill reads into buf until it is full or the input ends or fails. An eager
// fill also stops after a read that brought a line end and fewer bytes
// than asked for: lines that come slowly through a pipe are replayed as
// they come, while a file fills whole chunks.
func fill(in io.Reader, buf []byte, eager bool) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := in.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
		if eager && m > 0 && n < len(buf) && bytes.IndexByte(buf[n-m:n], '\n') >= 0 {
			return n, nil
		}
	}
	return n, nil
}

// parseChunks is a worker: it parses the chunks of work, each from the
// latest merged state, and sends them to parsed.
func (pl *pipeline) parseChunks() {
	p := parsers.NewLineParser(pl.opts)
	for c := range pl.work {
		pl.parseChunk(p, *pl.state.Load(), c)
		pl.parsed <- c
	}
}

// readMapped cuts the mapped file into chunks of whole lines, as read
// does, until it ends or ctx ends, then closes work. n counts the bytes
// handed out, for the progress bar.
func (pl *pipeline) readMapped(ctx context.Context, n *countingReader) {
	defer close(pl.work)
	debug.SetPanicOnFault(true)
	defer func() { pl.readFault = faulted(recover()) }()
	data := pl.mapped.data
	for off, seq := 0, uint64(0); off < len(data); seq++ {
		if ctx.Err() != nil {
			return
		}
		c := <-pl.free
		c.seq, c.tooLong = seq, 0
		end := len(data)
		if off+chunkSize <= len(data) {
			end = off + chunkSize
			if last := bytes.LastIndexByte(data[off:end], '\n'); last >= 0 {
				end = off + last + 1
			} else {
				// No line end within chunkSize of a line's start: a line
				// too long to be one of ours, skipped to its end.
				c.tooLong = 1
				if nl := bytes.IndexByte(data[end:], '\n'); nl >= 0 {
					end += nl + 1
				} else {
					end = len(data)
				}
				off = end
			}
		}
		c.data, c.end = data[off:end], end
		off = end
		n.n = int64(off)
		pl.work <- c
		pl.bar.tick()
	}
}

// faulted reports whether r, recovered, is the fault of a mapped page
// (with debug.SetPanicOnFault); it panics again with anything else.
func faulted(r any) bool {
	if r == nil {
		return false
	}
	if _, ok := r.(interface{ Addr() uintptr }); ok {
		return true
	}
	panic(r)
}

// parseChunk parses c from state s; in a mapped file, it notes in c.fault
// that the file shrank under the parse.
func (pl *pipeline) parseChunk(p *parsers.LineParser, s parsers.LineState, c *chunk) {
	c.fault = false
	if pl.mapped != nil {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() { c.fault = faulted(recover()) }()
	}
	parseChunk(p, s, c)
}

// parseChunk parses c's lines with p, as if the lines before them had left
// state s.
func parseChunk(p *parsers.LineParser, s parsers.LineState, c *chunk) {
	p.Resume(s)
	c.lines, c.outcomes = c.tooLong, [parsers.NumOutcomes]uint64{}
	// Events are parsed into their place in c.events, which is kept long
	// enough for one more; n counts those kept.
	evs, n := c.events[:cap(c.events)], 0
	for data := c.data; len(data) > 0; {
		line := data
		if nl := bytes.IndexByte(data, '\n'); nl >= 0 {
			line, data = data[:nl+1], data[nl+1:]
		} else {
			data = nil
		}
		if n == len(evs) {
			evs = append(evs, parsers.Event{})
			evs = evs[:cap(evs)]
		}
		c.lines++
		out := p.Parse(line, &evs[n])
		c.outcomes[out]++
		if out == parsers.Parsed {
			n++
		}
	}
	c.events = evs[:n]
	c.span = p.Span()
}

// merged yields the parsed chunks in file order, each read as one parser
// reading the whole file would have read it. A chunk goes back to the pool
// when the loop body returns.
func (pl *pipeline) merged() iter.Seq[*chunk] {
	return func(yield func(*chunk) bool) {
		// p reads again, in order, a chunk that its worker read from a
		// wrong guess of the state; it also fixes the first year.
		p := parsers.NewLineParser(pl.opts)
		state := p.State()
		ahead := make(map[uint64]*chunk)
		next := uint64(0)
		stopped := false
		for c := range pl.parsed {
			ahead[c.seq] = c
			for {
				c, ok := ahead[next]
				if !ok {
					break
				}
				delete(ahead, next)
				next++
				after, same := c.span.After(p, state)
				if !same && !c.fault {
					pl.parseChunk(p, state, c)
					after = p.State()
				}
				if c.fault {
					// The mapped file shrank under this chunk's parse:
					// it and what follows are not replayed.
					pl.shrank, stopped = true, true
				}
				state = after
				s := state
				pl.state.Store(&s)
				if !stopped && !yield(c) {
					stopped = true
				}
				if pl.mapped != nil && !stopped {
					pl.mapped.release(c.end)
				}
				pl.free <- c
			}
		}
	}
}
