package parsers

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// FuzzParseLine feeds arbitrary lines to a parser and checks that it never
// panics, that a Parsed event obeys Event's contract, and that the event
// does not alias the input.
func FuzzParseLine(f *testing.F) {
	for _, l := range append(allocLines, formatLines...) {
		f.Add([]byte(l))
	}
	// The sample logs are in the seed corpus under testdata/fuzz too; these
	// are the shapes that sit on the edges of the grammar.
	for _, l := range []string{
		"",
		"[",
		"[ 1.]",
		"4,1,2,;",
		"Nov 24 15:58:19 gw kernel: [ IN= OUT= SRC=",
		"Nov 24 15:58:19 gw kernel: IN= OUT= SRC=1.2.3.4 DST=1.2.3.5 PROTO=6 SPT=1 DPT=2 ",
		"2026-11-24T15:58:19+00:00 gw kernel: IN=x OUT= SRC=::ffff:1.2.3.4 DST=::1 PROTO=ICMPv6 TYPE=1 CODE=0 [SRC=",
	} {
		f.Add([]byte(l))
	}
	// Undated is set so that records without a timestamp become events and
	// are checked too.
	opts := LineOptions{Reference: testRef, Boot: testBoot, Location: time.UTC, Undated: testRef}
	f.Fuzz(func(t *testing.T, line []byte) {
		p := NewLineParser(opts)
		buf := bytes.Clone(line)
		var ev Event
		o := p.Parse(buf, &ev)
		if o >= Outcome(NumOutcomes) {
			t.Fatalf("outcome %d out of range", o)
		}
		// A second parser agrees: the outcome depends on the line, not on
		// leftovers of the first call.
		var ev2 Event
		if o2 := NewLineParser(opts).Parse(line, &ev2); o2 != o {
			t.Fatalf("outcome %v then %v", o, o2)
		}
		if o != Parsed {
			if ev != (Event{}) {
				t.Fatalf("%v, but *ev was written: %+v", o, ev)
			}
			return
		}
		if !sameEvent(ev, ev2) {
			t.Fatalf("events differ: %s, %s", fmtEvent(ev), fmtEvent(ev2))
		}
		prefix, iface := strings.Clone(ev.Prefix), strings.Clone(ev.InIface)
		for i := range buf {
			buf[i] = 0
		}
		if ev.Prefix != prefix || ev.InIface != iface {
			t.Fatalf("event aliases the line: %q %q", ev.Prefix, ev.InIface)
		}
		checkEvent(t, &ev)
	})
}

// checkEvent checks the promises of Event's doc comment.
func checkEvent(t *testing.T, ev *Event) {
	t.Helper()
	switch {
	case !ev.Src.IsValid() || !ev.Dst.IsValid():
		t.Fatalf("invalid address: %s", fmtEvent(*ev))
	case ev.Src.Is4() != ev.Dst.Is4():
		t.Fatalf("families differ: %s", fmtEvent(*ev))
	case ev.Src.Is4In6() || ev.Dst.Is4In6():
		t.Fatalf("IPv4-mapped address: %s", fmtEvent(*ev))
	case ev.Src.Zone() != "" || ev.Dst.Zone() != "":
		t.Fatalf("zoned address: %s", fmtEvent(*ev))
	case reservedSource(ev.Src):
		t.Fatalf("reserved source: %s", fmtEvent(*ev))
	case !HasPorts(ev.Proto) && (ev.SrcPort != 0 || ev.DstPort != 0):
		t.Fatalf("ports on a portless protocol: %s", fmtEvent(*ev))
	case ev.Proto != ProtoTCP && ev.Flags != 0:
		t.Fatalf("TCP flags on another protocol: %s", fmtEvent(*ev))
	case ev.Proto != ProtoICMP && ev.Proto != ProtoICMPv6 && (ev.ICMPType != 0 || ev.ICMPCode != 0):
		t.Fatalf("ICMP type on another protocol: %s", fmtEvent(*ev))
	case strings.HasSuffix(ev.Prefix, " "):
		t.Fatalf("prefix not trimmed: %q", ev.Prefix)
	case strings.ContainsRune(ev.InIface, ' '):
		t.Fatalf("interface with a space: %q", ev.InIface)
	case ev.Time.IsZero():
		t.Fatalf("zero time: %s", fmtEvent(*ev))
	case ev.NoL4Header && (ev.SrcPort != 0 || ev.DstPort != 0 || ev.Flags != 0 || ev.ICMPType != 0 || ev.ICMPCode != 0):
		t.Fatalf("transport fields without a transport header: %s", fmtEvent(*ev))
	}
}
