package replay

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a one-line bar on a terminal while a large file is read
// (for standard input, of unknown size, the amount read and the rate, once
// reading has taken a second). On anything but a terminal, or for a small
// file, it does nothing, so logs and pipes stay clean.
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
	if (size > 0 && size < minProgressSize) || !isTerminal(w) {
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
	rate := float64(p.read.n) / now.Sub(p.start).Seconds() / (1 << 20)
	if p.size <= 0 {
		if now.Sub(p.start) < time.Second {
			return
		}
		fmt.Fprintf(p.w, "\r%s: %d MiB read, %.0f MiB/s\033[K", p.name, p.read.n>>20, rate)
		p.shown = true
		return
	}
	frac := float64(p.read.n) / float64(p.size)
	if frac > 1 {
		frac = 1
	}
	const width = 30
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %.0f MiB/s\033[K", p.name, strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100, rate)
	p.shown = true
}

func (p *progress) done() {
	if p.w != nil && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
