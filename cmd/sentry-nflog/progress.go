package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a one-line bar on a terminal while a large file is read.
// On anything but a terminal, or for a small or unsized input, it does
// nothing, so logs and pipes stay clean.
type progress struct {
	w     io.Writer
	name  string
	size  int64
	read  *countingReader
	start time.Time
	last  time.Time
	shown bool
}

// minProgressSize is the input size from which a bar is worth drawing.
const minProgressSize = 32 << 20

func newProgress(w io.Writer, name string, size int64, read *countingReader) *progress {
	p := &progress{w: w, name: name, size: size, read: read, start: time.Now()}
	if size < minProgressSize || !isTerminal(w) {
		p.w = nil
	}
	return p
}

func (p *progress) tick() {
	if p.w == nil {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	frac := float64(p.read.n) / float64(p.size)
	if frac > 1 {
		frac = 1
	}
	const width = 30
	n := int(frac * width)
	rate := float64(p.read.n) / now.Sub(p.start).Seconds() / (1 << 20)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %.0f MiB/s", p.name, strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100, rate)
	p.shown = true
}

func (p *progress) done() {
	if p.w != nil && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
