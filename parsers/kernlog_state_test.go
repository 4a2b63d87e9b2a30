package parsers

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// readAll parses lines with p and returns one string per line: its outcome
// and, for an event, the event.
func readAll(p *LineParser, lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		var ev Event
		o := p.Parse([]byte(l), &ev)
		out[i] = o.String()
		if o == Parsed {
			out[i] += " " + fmtEvent(ev)
		}
	}
	return out
}

// spanLines cross a turn of the year (with a late Dec 31 line after it),
// mix records without a timestamp in, some before any dated line, and
// interleave formats that carry their year and do not touch the inferred
// one.
var spanLines = []string{
	"gw kernel: SENTRY " + synV4,
	"Dec 30 10:00:00 gw kernel: SENTRY " + synV4,
	"Dec 30 10:00:00 gw sshd[1]: hello",
	"gw kernel: SENTRY " + synV6,
	"2026-06-01T00:00:00Z gw kernel: SENTRY " + synV4,
	"gw kernel: SENTRY " + synV4,
	"Dec 31 23:59:59 gw kernel: SENTRY " + synV4,
	"Jan  1 00:00:01 gw kernel: SENTRY " + synV4,
	"Dec 31 23:59:58 gw kernel: SENTRY " + synV6,
	"gw kernel: SENTRY " + synV4,
	"Jan  1 00:00:02 gw kernel: SENTRY " + synV4,
	"[12345.678901] SENTRY " + synV4,
	"gw kernel: SENTRY " + synV4,
	"Feb  3 04:05:06 gw kernel: SENTRY " + synV4,
	"Feb  3 04:05:07 gw kernel: SENTRY " + synV4,
	"Nox 24 15:58:19 gw kernel: SENTRY " + synV4,
	"gw kernel: SENTRY " + synV4,
	"Aug  3 04:05:06 gw kernel: SENTRY " + synV4,
	"Jan  3 04:05:06 gw kernel: SENTRY " + synV4,
}

// TestSpanAfter reads spanLines in two pieces, the second from a guess of
// the state the first leaves, and checks Span.After against reading them
// in one piece: where After says the second piece reads the same, it
// must, with the same state after it; where it says not, reading the piece
// again from the true state must give the one-piece result.
func TestSpanAfter(t *testing.T) {
	opts := LineOptions{Reference: time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC), Boot: testBoot, Location: time.UTC, Undated: testRef}
	whole := NewLineParser(opts)
	want := readAll(whole, spanLines)
	var states []LineState
	{
		p := NewLineParser(opts)
		states = append(states, p.State())
		for _, l := range spanLines {
			p.Parse([]byte(l), new(Event))
			states = append(states, p.State())
		}
	}
	agreed, refused := 0, 0
	for cut := 0; cut <= len(spanLines); cut++ {
		for g, guess := range states {
			name := fmt.Sprintf("cut %d, guess after %d lines", cut, g)
			p := NewLineParser(opts)
			p.Resume(guess)
			got := readAll(p, spanLines[cut:])
			sp := p.Span()
			after, same := sp.After(NewLineParser(opts), states[cut])
			if !same {
				refused++
				p.Resume(states[cut])
				got = readAll(p, spanLines[cut:])
				after = p.State()
				if g == cut {
					t.Errorf("%s: After refused the true state", name)
				}
			} else {
				agreed++
			}
			for i := range got {
				if got[i] != want[cut+i] {
					t.Errorf("%s: line %d reads %s, in one piece %s", name, cut+i, got[i], want[cut+i])
				}
			}
			if after != states[len(spanLines)] {
				t.Errorf("%s: state after %+v, in one piece %+v", name, after, states[len(spanLines)])
			}
			if same {
				if u, w := sp.Undated(), countUndated(opts, spanLines, cut); u != w {
					t.Errorf("%s: %d undated, in one piece %d", name, u, w)
				}
			}
		}
	}
	// Both answers must come up, or the test says nothing about one.
	if agreed == 0 || refused == 0 {
		t.Errorf("After agreed %d times, refused %d times", agreed, refused)
	}
}

// countUndated counts the undated records among lines[cut:], read after
// lines[:cut].
func countUndated(opts LineOptions, lines []string, cut int) uint64 {
	p := NewLineParser(opts)
	readAll(p, lines[:cut])
	before := p.UndatedRecords()
	readAll(p, lines[cut:])
	return p.UndatedRecords() - before
}

// parseFresh parses line with p as if p had not kept the last line's
// header and the last event's prefix.
func parseFresh(p *LineParser, line []byte, ev *Event) Outcome {
	p.same = p.same[:0]
	p.prefixStr = ""
	return p.Parse(line, ev)
}

// checkHeaderReuse reads lines with two parsers, one of which forgets the
// last header before each line, and fails t where they differ.
func checkHeaderReuse(t testing.TB, opts LineOptions, lines [][]byte) {
	t.Helper()
	a, b := NewLineParser(opts), NewLineParser(opts)
	for i, l := range lines {
		var ea, eb Event
		oa, ob := a.Parse(l, &ea), parseFresh(b, l, &eb)
		if oa != ob || !sameEvent(ea, eb) || a.State() != b.State() {
			t.Fatalf("line %d %q: %v %s, without the last header %v %s", i, l, oa, fmtEvent(ea), ob, fmtEvent(eb))
		}
	}
}

// A line that starts with the last line's header, up to its kernel tag,
// reads as if its header had been read afresh; a message that starts with
// the last event's prefix as if it had been searched for its record.
func TestHeaderReuse(t *testing.T) {
	opts := LineOptions{Reference: testRef, Boot: testBoot, Location: time.UTC, Undated: testRef}
	var lines [][]byte
	for _, l := range append(append(append([]string(nil), spanLines...), allocLines...), formatLines...) {
		lines = append(lines, []byte(l))
	}
	for _, l := range []string{
		"Dec 31 23:59:59 gw kernel: SENTRY " + synV4,
		"Dec 31 23:59:59 gw kernel: SENTRY " + synV4,
		"Dec 31 23:59:59 gw kernel:SENTRY " + synV4,
		"Dec 31 23:59:59 gw kernel: [ 12.5] SENTRY " + synV4,
		"Dec 31 23:59:59 gw kernel: [ 12.] SENTRY " + synV4,
		"Dec 31 23:59:59 gw kernel:",
		"Dec 31 23:59:59 gw kernel",
		"Jan  1 00:00:01 gw kernel: SENTRY " + synV4,
		"Dec 31 23:59:59 gw kernel: SENTRY " + synV4,
		"Jan  1 00:00:01 gw kernel: SENTRY " + synV4,
		"Jan  1 00:00:01 gw sshd[1]: hello",
		"Jan  1 00:00:01 gw kernel: SENTRY " + synV4,
		"",
		"Jan  1 00:00:01 gw kernel: SENTRY " + synV4,
		"Jan  1 00:00:01 kernel: SENTRY " + synV4,
		"Jan  1 00:00:01 kernel: SENTRY " + synV4,
		"Jan  1 00:00:01 gw kernel: SENTRY " + synV4,
		"<4>Jan  1 00:00:01 gw kernel: SENTRY " + synV4,
		"Jan  1 00:00:01 gw kernel: SENTRY " + synV4,
		"Jan  1 00:00:01 gw kernel: SENTRYX " + synV4,
		"Jan  1 00:00:01 gw kernel: SENTRY " + synV4,
		"Jan  1 00:00:01 gw kernel: SENTRY XIN=a OUT= " + synV4,
		"Jan  1 00:00:01 gw kernel: SENTRY " + synV4,
		"Jan  1 00:00:01 gw kernel: SENTRY IN=eth0 OUT",
		"Jan  1 00:00:01 gw kernel: SENTRY IN=eth0OUT= " + synV4,
		"Jan  1 00:00:01 gw kernel: SENTRY " + synV4,
		"Jan  1 00:00:01 gw kernel: SENTRY" + synV4,
		"Jan  1 00:00:01 gw kernel: SENTRY" + synV4,
		"Jan  1 00:00:01 gw kernel: " + synV4,
		"Jan  1 00:00:01 gw kernel: " + synV4,
		"Jan  1 00:00:01 gw kernel: SENTRY " + synV4,
		"gw kernel: OTHER " + synV4,
		"Jan  1 00:00:01 gw kernel: SENTRY " + synV4,
		"<13>Jan  1 00:00:01 UCG-Max SENTRY " + synV4,
		"0 6 PVEFW-HOST-IN 24/Nov/2026:15:58:19 +0000 policy DROP: IN=vmbr0 PHYSIN=enp3s0 SRC=198.51.100.7 DST=192.0.2.10 LEN=60 TOS=0x00 PREC=0x00 TTL=49 ID=1 PROTO=TCP SPT=40000 DPT=22 SEQ=1 ACK=0 WINDOW=1024 SYN ",
		"Jan  1 00:00:01 gw kernel: SENTRY " + synV4,
		"Jan  1 00:00:01 gw kernel: [UFW BLOCK] " + synV4,
		"Jan  1 00:00:01 gw kernel: [UFW BLOCK] " + synV4,
	} {
		lines = append(lines, []byte(l))
	}
	for _, name := range []string{"kern.log", "rollover.log", "ufw.log", "broken.log", "real/relays.log", "real/cut.log"} {
		forEachLine(t, name, func(_ int, line []byte) { lines = append(lines, line) })
	}
	checkHeaderReuse(t, opts, lines)
}

// FuzzHeaderReuse reads two lines (the input split at its first line end)
// with one parser, and the second again with a parser that forgot the
// first's header.
func FuzzHeaderReuse(f *testing.F) {
	for _, l := range append(append([]string(nil), allocLines...), spanLines...) {
		f.Add([]byte(l + "\n" + l))
	}
	f.Add([]byte("Dec 31 23:59:59 gw kernel: SENTRY " + synV4 + "\nDec 31 23:59:59 gw kernel:[1.5]SENTRY " + synV4))
	opts := LineOptions{Reference: testRef, Boot: testBoot, Location: time.UTC, Undated: testRef}
	f.Fuzz(func(t *testing.T, in []byte) {
		first, second, _ := bytes.Cut(in, []byte("\n"))
		checkHeaderReuse(t, opts, [][]byte{first, second, second})
	})
}
